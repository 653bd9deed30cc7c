#!/usr/bin/perl
# bench/recovery.pl - how long a waiting writer waits once the lock holder dies.
#
#   perl -Mblib bench/recovery.pl [--smoke] [--size BYTES] [--entries N] [--batch B] [--lru] [ROUNDS]
#
# ROUNDS (default 200; --smoke: 10) rounds of:
#   1. a holder process attaches to the map and puts BYTES-long values
#      (default 4 MiB) in a loop; with --batch B, it calls set_multi with
#      B pairs instead (the keys batch:1 .. batch:B, their values replaced
#      by new strings each time), so the kill lands in a batch;
#   2. it is stopped (SIGSTOP) at a moment when the header's lock word says
#      the writer lock is held (retried until it is): a live holder that
#      holds the lock for as long as we like;
#   3. this process calls put and blocks on the lock; a killer process waits
#      until the lock word's waiters bit says so, sleeps a random 0-10 ms (a
#      random phase of the waiter's sleep), reads CLOCK_MONOTONIC and sends
#      the holder SIGKILL;
#   4. the latency is the time from just before that kill(2) call to the
#      return of our put: death detection plus recovery.
# A reader process runs all along, getting random entries without a lock
# and timing every get; for each round, its stall is the longest any get
# took after the kill (the part of it after the kill), so the report has
# the slowest reader get caused by each death as well as the writer's wait
# (the budget of the "no pause that grows with the map" issue: both <= 20
# ms at p99, with 1M and 10M entries).
# It prints min/median/p90/p99/max in ms, how many rounds met a held lock
# (the stat_recoveries delta; each round should), how many puts returned
# before the kill (a live holder taken for dead: must be 0), and the CPU time
# this process used while blocked (a waiter must sleep, not poll). The
# target (DESIGN.md) is p99 < 100 ms. --entries N (default 10000) fills the
# map first, so that recovery has a table and an arena to walk. --lru makes
# it an LRU map of max_size N: every put also relinks the recency list (the
# holder's first puts evict, the rest promote).
#
# The lock word is read from the file (pread at offset 256, layout.rs:
# bits 0..15 the owner slot + 1, bit 31 the waiters bit); only the benchmark
# looks at it, to set the scene, never while the latency is measured.
use strict;
use warnings;
use File::Temp ();
use Getopt::Long qw(GetOptions);
use List::Util qw(sum);
use POSIX ();
use Time::HiRes qw(CLOCK_MONOTONIC clock_gettime);
use Data::HashMap::Shared::SS;

my ($smoke, $size, $entries, $batch, $lru) = (0, 4 << 20, 10_000, 0, 0);
GetOptions('smoke' => \$smoke, 'size=i' => \$size, 'entries=i' => \$entries, 'batch=i' => \$batch,
    'lru' => \$lru)
    or die "usage: $0 [--smoke] [--size BYTES] [--entries N] [--batch B] [--lru] [ROUNDS]\n";
my $rounds = shift // ($smoke ? 10 : 200);
$entries = 1000 if $smoke && $entries > 1000;

my $dir  = File::Temp::tempdir('dhms-recovery-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $path = "$dir/map";
my $m = Data::HashMap::Shared::SS->new($path, $entries + $batch + 1000, $lru ? ($entries || 1) : 0);
$m->put("fill:$_", "value $_ " . ('f' x ($_ % 300))) for 1 .. $entries;

my $hdr;
sub open_header { open $hdr, '<:raw', $path or die "open $path: $!" }
open_header();
sub lock_word {
    sysseek($hdr, 256, 0) or die "seek: $!";
    sysread($hdr, my $b, 8) == 8 or die "read: $!";
    return unpack 'Q<', $b;
}
sub held    { (lock_word() & 0xffff) != 0 }
sub waiters { (lock_word() & (1 << 31)) != 0 }

sub now { clock_gettime(CLOCK_MONOTONIC) }

# The reader: gets random filled entries, timing each; the gets slower than
# 0.2 ms go to the parent at the end as (start, end) pairs.
pipe(my $rd_r, my $rd_w) or die "pipe: $!";
my $reader = fork // die "fork: $!";
if (!$reader) {
    alarm 3600;
    close $rd_r;
    my $r = Data::HashMap::Shared::SS->new($path, 1);
    my @slow;
    my $stop = 0;
    local $SIG{TERM} = sub { $stop = 1 };
    my $n = $entries || 1;
    until ($stop) {
        my $k = 'fill:' . (1 + int rand $n);
        my $a = clock_gettime(CLOCK_MONOTONIC);
        my $v = $r->get($k);
        my $b = clock_gettime(CLOCK_MONOTONIC);
        push @slow, $a, $b if $b - $a > 0.0002;
    }
    syswrite $rd_w, pack('d*', @slow);
    POSIX::_exit(0);
}
close $rd_w;
my @kills;    # [t0 kill, t1 put returned] per round

my (@lat, @wait, $met, $early, $cpu, $tries);
($met, $early, $cpu, $tries) = (0, 0, 0, 0);
my $value = 'h' x $size;
my $t_start = now();

for my $round (1 .. $rounds) {
    # 1. The holder.
    pipe(my $ready_r, my $ready_w) or die "pipe: $!";
    my $holder = fork // die "fork: $!";
    if (!$holder) {
        alarm 120;
        close $ready_r;
        my $h = Data::HashMap::Shared::SS->new($path, 1);
        my $n = 0;
        # two sets of pairs, so that every batch replaces each value
        my @pairs = map { my $v = $value . $_; [ map { ("batch:$_", $v) } 1 .. $batch ] } 0, 1;
        while (1) {
            if   ($batch) { $h->set_multi(@{ $pairs[ $n % 2 ] }) }
            else          { $h->put('big:' . ($n % 2), $value) }
            syswrite $ready_w, 'r' if ++$n == 2;
        }
    }
    close $ready_w;
    sysread($ready_r, my $b, 1) == 1 or die "the holder did not start\n";
    close $ready_r;

    # 2. Stopped while it holds the lock.
    while (1) {
        $tries++;
        kill 'STOP', $holder;
        waitpid($holder, POSIX::WUNTRACED()) == $holder or die "waitpid: $!";
        POSIX::WIFSTOPPED(${^CHILD_ERROR_NATIVE})
            or die "the holder was not stopped (wait status ${^CHILD_ERROR_NATIVE})\n";
        last if held();
        kill 'CONT', $holder;
        Time::HiRes::sleep(rand 0.002);
    }

    # 3. The killer, then our put.
    pipe(my $t_r, my $t_w) or die "pipe: $!";
    my $killer = fork // die "fork: $!";
    if (!$killer) {
        alarm 60;
        close $t_r;
        open_header();    # a description of its own: the offset is not shared
        Time::HiRes::sleep(0.0005) until waiters();
        Time::HiRes::sleep(rand 0.010);
        my $t0 = now();
        kill 'KILL', $holder;
        syswrite $t_w, pack('d', $t0);
        POSIX::_exit(0);
    }
    close $t_w;
    my $rec = $m->stat_recoveries;
    my @cpu0 = times;
    my $t_put = now();
    $m->put("after:$round", "round $round") or die "put failed in round $round\n";
    my $t1 = now();
    my @cpu1 = times;

    # 4. The numbers.
    sysread($t_r, my $tb, 8) == 8 or die "the killer did not report\n";
    my $t0 = unpack 'd', $tb;
    waitpid($killer, 0);
    waitpid($holder, 0);
    # the reader's window for this kill closes 50 ms after our put returned:
    # the next round's holder (whose writes also make gets wait) starts after it
    Time::HiRes::sleep(0.1);
    $met++ if $m->stat_recoveries > $rec;
    if ($t1 < $t0) { $early++; next }
    push @lat, ($t1 - $t0) * 1000;
    push @kills, [ $t0, $t1 ];
    push @wait, ($t1 - $t_put) * 1000;
    $cpu += ($cpu1[0] + $cpu1[1]) - ($cpu0[0] + $cpu0[1]);
}
my $elapsed = now() - $t_start;
$m->verify;

kill 'TERM', $reader;
my $slow_bytes = do { local $/; <$rd_r> } // '';
waitpid($reader, 0);
my @slow = unpack 'd*', $slow_bytes;
# per round: the longest part of a get after the kill, among the gets that
# were running between the kill and the end of the writer's put (+50 ms;
# the next round starts 100 ms after it)
my @stall = map {
    my ($k0, $k1) = @$_;
    my $worst = 0;
    for (my $i = 0; $i < @slow; $i += 2) {
        my ($a, $b) = @slow[ $i, $i + 1 ];
        next if $b < $k0 || $a > $k1 + 0.05;
        my $d = $b - ($a > $k0 ? $a : $k0);
        $worst = $d if $d > $worst;
    }
    $worst * 1000;
} @kills;

sub pct {
    my ($p, @s) = @_;
    return $s[ int(($#s) * $p / 100 + 0.5) ];
}
my @s = sort { $a <=> $b } @lat;
printf "recovery latency: kill(2) of a lock holder -> the waiting writer's put returns\n";
printf "  %d rounds (%.1f s), %d-byte values, %d entries, killed in %s; %d stop attempts\n",
    $rounds, $elapsed, $size, $entries,
    ($batch ? "set_multi of $batch pairs" : 'put') . ($lru ? ' (an LRU map)' : ''), $tries;
if (@s) {
    printf "  ms: min %.2f  median %.2f  p90 %.2f  p99 %.2f  max %.2f  (mean %.2f)\n",
        $s[0], pct(50, @s), pct(90, @s), pct(99, @s), $s[-1], sum(@s) / @s;
    printf "  waiter blocked %.0f ms in all, used %.0f ms of CPU (%.1f%%)\n",
        sum(@wait), $cpu * 1000, 100 * $cpu * 1000 / sum(@wait);
    my @r = sort { $a <=> $b } @stall;
    printf "reader stall: the slowest get in another process after each kill (0 = none over 0.2 ms)\n";
    printf "  ms: median %.2f  p90 %.2f  p99 %.2f  max %.2f\n", pct(50, @r), pct(90, @r), pct(99, @r), $r[-1];
    printf "  p99 of the writer and of the reader %s the 20 ms budget\n",
        pct(99, @s) <= 20 && pct(99, @r) <= 20 ? 'meet' : 'do NOT meet';
}
printf "  rounds that met a held lock (stat_recoveries grew): %d of %d\n", $met, $rounds;
printf "  puts that returned before the kill (a live holder taken for dead): %d\n", $early;
printf "  p99 %s the 100 ms target\n", @s && pct(99, @s) < 100 ? 'meets' : 'MISSES';
exit($early || $met < $rounds ? 1 : 0);
