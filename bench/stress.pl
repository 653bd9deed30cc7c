#!/usr/bin/perl
# bench/stress.pl - multi-process scenarios on shared maps that check their
# own results; exits non-zero if a check fails.
#
#   perl -Mblib bench/stress.pl [--quick] [--seconds S] [--dir DIR] [scenario ...]
#
# Scenarios (default: all, in this order):
#   writers   4 processes put disjoint keys (SS and II) into maps that grow
#             from empty; afterwards every key is there with its value
#   torn      1 writer overwrites and removes keys (SS, values of random
#             length that encode their key and a checksum; the same on an
#             SS map with LRU (max_size half the keys) and TTL; II, values
#             that encode their key) while 3 readers check every value read
#   counter   8 processes incr one II key (and incr_by one SI key); the
#             final values equal the operations done
#   churn     4 processes put, overwrite and remove strings of random length
#             (each its own keys, mirrored in a Perl hash); afterwards every
#             process finds exactly its keys, verify() passes, and once every
#             key is removed arena_used is back near zero
#   lru       4 processes add random keys to an LRU map (max_size M) while
#             a 5th samples size; size never exceeds M and stat_evictions
#             equals adds - size
#   reads     read throughput with 1, 2 and 4 reader processes (SS, 25,000
#             keys); printed, not checked
# --quick makes the whole run take about 10 s; --seconds sets the length of
# every timed phase (default 5, quick 1.2). Every child has an alarm and
# leaves with POSIX::_exit.
use strict;
use warnings;
use File::Temp ();
use Getopt::Long qw(GetOptions);
use List::Util qw(max sum);
use POSIX ();
use Time::HiRes qw(CLOCK_MONOTONIC clock_gettime);

use Data::HashMap::Shared::II;
use Data::HashMap::Shared::SS;
use Data::HashMap::Shared::SI;

my %opt = (quick => 0);
GetOptions(\%opt, 'quick', 'seconds=f', 'dir=s', 'help') or usage(2);
usage(0) if $opt{help};
sub usage {
    print STDERR "usage: perl -Mblib $0 [--quick] [--seconds S] [--dir DIR] [scenario ...]\n",
                 "  scenarios: writers torn counter churn lru reads (default: all)\n";
    exit $_[0];
}
my @SCENARIOS = qw(writers torn counter churn lru reads);
my %known = map { $_ => 1 } @SCENARIOS;
$known{$_} or usage(2) for @ARGV;
my %run = map { $_ => 1 } @ARGV ? @ARGV : @SCENARIOS;

my $T     = $opt{seconds} // ($opt{quick} ? 1.2 : 5);    # seconds per timed phase
my $SCALE = $opt{quick} ? 1 : 10;                        # sizes
my $DIR   = File::Temp::tempdir('dhms-stress-XXXXXX', CLEANUP => 1,
    defined $opt{dir} ? (DIR => $opt{dir}) : -d '/dev/shm' && -w _ ? (DIR => '/dev/shm') : (TMPDIR => 1));
my @SIGNALS = qw(HUP INT PIPE TERM);
$SIG{$_} = sub { exit 1 } for @SIGNALS;
$| = 1;

sub now { clock_gettime(CLOCK_MONOTONIC) }
sub commify { my $n = sprintf '%.0f', shift; 1 while $n =~ s/^(\d+)(\d{3})/$1,$2/; $n }
my $seq = 0;
sub path { sprintf '%s/%s-%d.map', $DIR, $_[0], ++$seq }

# ---- checks ---------------------------------------------------------------

my (@failed, $scenario_failed);
sub check {
    my ($ok, $what) = @_;
    return 1 if $ok;
    print "    FAILED: $what\n";
    push @failed, $what;
    $scenario_failed = 1;
    return 0;
}

# ---- children --------------------------------------------------------------

# Forks one child per element of @$jobs (each a sub taking its index) and
# starts them together (a pipe barrier). A child returns a list of numbers
# or strings; spawn returns one arrayref per child. A child that dies, or
# exits non-zero, fails the scenario.
sub spawn {
    my ($jobs, $timeout) = @_;
    pipe(my $gate_r, my $gate_w) or die "pipe: $!";
    my (@pids, @readers);
    for my $i (0 .. $#$jobs) {
        pipe(my $r, my $w) or die "pipe: $!";
        my $pid = fork // die "fork: $!";
        if ($pid) { close $w; push @pids, $pid; push @readers, $r; next }
        # child
        $SIG{$_} = 'DEFAULT' for @SIGNALS;
        alarm($timeout // int($T * 4) + 60);
        close $gate_w;
        close $r;
        srand($$ ^ time);
        my @out;
        my $ok = eval {
            sysread $gate_r, my $buf, 1;    # EOF when the parent opens the gate
            @out = $jobs->[$i]->($i);
            1;
        };
        my $msg = $ok ? join("\t", map { $_ // '' } @out) : "ERROR\t$@";
        $msg =~ tr/\n/ /;
        syswrite $w, "$msg\n";
        POSIX::_exit($ok ? 0 : 1);
    }
    close $gate_r;
    close $gate_w;    # go
    my @results;
    for my $i (0 .. $#pids) {
        my $line = readline($readers[$i]) // '';
        chomp $line;
        waitpid $pids[$i], 0;
        my $status = $?;
        my @f = split /\t/, $line, -1;
        if (@f && $f[0] eq 'ERROR') {
            check(0, "child $i died: $f[1]");
            @f = ();
        }
        elsif ($status) {
            check(0, "child $i exited with status $status" . ($status & 127 ? ' (signal ' . ($status & 127) . ')' : ''));
        }
        push @results, \@f;
    }
    return @results;
}

# ---- writers: disjoint keys from 4 processes --------------------------------

sub writers {
    my $K = 25_000 * $SCALE;    # keys per process
    my $P = 4;
    my $ss_path = path('writers-ss');
    my $ii_path = path('writers-ii');
    my $ss = Data::HashMap::Shared::SS->new($ss_path, $P * $K);
    my $ii = Data::HashMap::Shared::II->new($ii_path, $P * $K);
    my $t0 = now();
    my @res = spawn([ map {
        sub {
            my ($i) = @_;
            my $ss = Data::HashMap::Shared::SS->new($ss_path, $P * $K);
            my $ii = Data::HashMap::Shared::II->new($ii_path, $P * $K);
            my $ok = 0;
            for my $j (1 .. $K) {
                $ok += !!shm_ss_put $ss, "w$i:$j", "v$i:$j:" . ('x' x ($j % 61));
                $ok += !!shm_ii_put $ii, $i * $K + $j, -($i * $K + $j);
            }
            return $ok;
        }
    } 1 .. $P ]);
    my $dt = now() - $t0;
    check(sum(map { $_->[0] // 0 } @res) == 2 * $P * $K, 'writers: every put succeeded');
    check($ss->size == $P * $K, "writers: SS size " . $ss->size . " == " . $P * $K);
    check($ii->size == $P * $K, "writers: II size " . $ii->size . " == " . $P * $K);
    my $bad = 0;
    for my $i (0 .. $P - 1) {
        for my $j (1 .. $K) {
            my $v = shm_ss_get $ss, "w$i:$j";
            $bad++ unless defined $v && $v eq "v$i:$j:" . ('x' x ($j % 61));
            my $n = shm_ii_get $ii, $i * $K + $j;
            $bad++ unless defined $n && $n == -($i * $K + $j);
        }
    }
    check($bad == 0, "writers: $bad keys missing or wrong");
    check(eval { $ss->verify && $ii->verify }, "writers: verify: $@");
    printf "    %d processes x %s keys x 2 maps in %.2fs (%s puts/s), capacity SS %s II %s\n",
        $P, commify($K), $dt, commify(2 * $P * $K / $dt), commify($ss->capacity), commify($ii->capacity);
}

# ---- torn: one writer, readers check every value ------------------------------

sub checksum { sprintf '%08x', unpack '%32C*', $_[0] }
my $PAD = join '', map { chr(97 + $_ % 11) } 0 .. 499;    # a..k
sub torn_value {    # key j, sequence s, payload of random length (0..499)
    my ($j, $s) = @_;
    my $body = "$j:$s:" . substr($PAD, int rand 50, int rand 450);
    return "$body:" . checksum($body);
}

sub torn {
    my $K = 1_000;    # few keys: every one is overwritten often
    my $ss_path = path('torn-ss');
    my $ii_path = path('torn-ii');
    my $lt_path = path('torn-lru-ttl');
    my $ss = Data::HashMap::Shared::SS->new($ss_path, 4 * $K);
    my $ii = Data::HashMap::Shared::II->new($ii_path, 4 * $K);
    my $lt = Data::HashMap::Shared::SS->new($lt_path, 4 * $K, $K / 2, 3600);
    $ss->put($_, torn_value($_, 0)) for 1 .. $K;
    $lt->put($_, torn_value($_, 0)) for 1 .. $K;
    $ii->put($_, $_ * 2**32) for 1 .. $K;
    my $writer = sub {
        my $ss = Data::HashMap::Shared::SS->new($ss_path, 4 * $K);
        my $ii = Data::HashMap::Shared::II->new($ii_path, 4 * $K);
        my $lt = Data::HashMap::Shared::SS->new($lt_path, 4 * $K);
        my ($n, $s, $end) = (0, 0, now() + $T);
        while (now() < $end) {
            for (1 .. 100) {
                my $j = 1 + int rand $K;
                $s++;
                if (rand() < 0.1) { shm_ss_remove $ss, $j; shm_ii_remove $ii, $j; shm_ss_remove $lt, $j }
                else {
                    shm_ss_put $ss, $j, torn_value($j, $s) or die "put failed\n";
                    shm_ii_put $ii, $j, $j * 2**32 + ($s & 0x7fffffff) or die "put failed\n";
                    shm_ss_put $lt, $j, torn_value($j, $s) or die "put failed\n";
                }
                $n += 3;
            }
        }
        return ($n, 0, 0, '');
    };
    my $reader = sub {
        my $ss = Data::HashMap::Shared::SS->new($ss_path, 4 * $K);
        my $ii = Data::HashMap::Shared::II->new($ii_path, 4 * $K);
        my $lt = Data::HashMap::Shared::SS->new($lt_path, 4 * $K);
        my ($n, $bad, $undef, $first, $end) = (0, 0, 0, '', now() + $T);
        while (now() < $end) {
            for (1 .. 200) {
                my $j = 1 + int rand $K;
                for my $v (scalar(shm_ss_get $ss, $j), scalar(shm_ss_get $lt, $j)) {
                    if (!defined $v) { $undef++ }
                    elsif (!($v =~ /^(\d+):(\d+):([a-k]*):([0-9a-f]{8})$/ && $1 == $j
                             && $4 eq checksum("$1:$2:$3"))) {
                        $bad++;
                        $first ||= "SS key $j: '" . substr($v, 0, 80) . "'";
                    }
                }
                my $w = shm_ii_get $ii, $j;
                if (!defined $w) { $undef++ }
                elsif (int($w / 2**32) != $j) { $bad++; $first ||= "II key $j: $w" }
                $n += 3;
            }
        }
        return ($n, $bad, $undef, $first);
    };
    my @res = spawn([ $writer, ($reader) x 3 ]);
    my ($w, @r) = @res;
    my $reads = sum(map { $_->[0] // 0 } @r);
    my $bad   = sum(map { $_->[1] // 0 } @r);
    check($bad == 0, "torn: $bad bad values read (first: " . join('', map { $_->[3] // '' } @r) . ")");
    check($reads > 0 && ($w->[0] // 0) > 0, 'torn: readers and the writer made progress');
    check(eval { $ss->verify && $ii->verify && $lt->verify }, "torn: verify: $@");
    check($lt->size <= $K / 2, 'torn: LRU map within max_size');
    printf "    3 maps; writer %s ops/s; 3 readers %s reads/s, %s undef (removed or evicted), 0 torn of %s\n",
        commify(($w->[0] // 0) / $T), commify($reads / $T), commify(sum(map { $_->[2] // 0 } @r)), commify($reads)
        if !$bad;
}

# ---- counter: 8 processes incr one key ---------------------------------------

sub counter {
    my $P = 8;
    my $ii_path = path('counter-ii');
    my $si_path = path('counter-si');
    my $ii = Data::HashMap::Shared::II->new($ii_path, 16);
    my $si = Data::HashMap::Shared::SI->new($si_path, 16);
    $ii->put(1, 0);    # an existing key: the lock-free path
    my @res = spawn([ map {
        sub {
            my $ii = Data::HashMap::Shared::II->new($ii_path, 16);
            my $si = Data::HashMap::Shared::SI->new($si_path, 16);
            my ($n, $m, $end) = (0, 0, now() + $T);
            while (now() < $end) {
                for (1 .. 1000) { shm_ii_incr $ii, 1 }
                $n += 1000;
                for (1 .. 100) { shm_si_incr_by $si, 'hits', 2 }    # the first creates the key
                $m += 100;
            }
            return ($n, $m);
        }
    } 1 .. $P ]);
    my $n = sum(map { $_->[0] // 0 } @res);
    my $m = sum(map { $_->[1] // 0 } @res);
    my $got = $ii->get(1);
    my $got_si = $si->get('hits') // 0;
    check($got == $n, "counter: II value $got == $n increments");
    check($got_si == 2 * $m, "counter: SI value $got_si == 2 x $m incr_by");
    printf "    %d processes: %s incr (%s/s) + %s incr_by, sums exact\n", $P, commify($n), commify($n / $T), commify($m)
        if $got == $n && $got_si == 2 * $m;
}

# ---- churn: strings of random length ----------------------------------------

sub rand_str { my $len = shift; join '', map { chr(97 + int rand 26) } 1 .. $len }

sub churn {
    my $P = 4;
    my $K = 2_000;    # key space of each process
    my $path = path('churn');
    my $map = Data::HashMap::Shared::SS->new($path, $P * $K);
    my @res = spawn([ map {
        sub {
            my ($i) = @_;
            my $map = Data::HashMap::Shared::SS->new($path, $P * $K);
            my (%mine, @keys);
            push @keys, "p$i:" . rand_str(int rand 60) . ":$_" for 1 .. $K;    # 5..70 bytes
            my ($ops, $peak, $end) = (0, 0, now() + $T);
            while (now() < $end) {
                for (1 .. 200) {
                    my $k = $keys[ rand @keys ];
                    my $r = rand;
                    if ($r < 0.35) {
                        my $removed = shm_ss_remove $map, $k;
                        die "remove $k: returned " . ($removed ? 'true' : 'false') . " but mirror says "
                          . (exists $mine{$k} ? 'present' : 'absent') . "\n" if !!$removed != exists $mine{$k};
                        delete $mine{$k};
                    }
                    else {
                        # mostly short values, some long ones (up to 4 KiB)
                        my $v = rand() < 0.9 ? rand_str(int rand 100) : 'L' x int(rand 4096);
                        shm_ss_put $map, $k, $v or die "put failed\n";
                        $mine{$k} = $v;
                    }
                    $ops++;
                }
                my $used = $map->arena_used;
                $peak = $used if $used > $peak;
            }
            my $wrong = 0;
            for my $k (@keys) {
                my $v = shm_ss_get $map, $k;
                $wrong++ if defined $v ? !exists $mine{$k} || $v ne $mine{$k} : exists $mine{$k};
            }
            return ($ops, $wrong, scalar keys %mine, $peak);
        }
    } 1 .. $P ]);
    my $ops   = sum(map { $_->[0] // 0 } @res);
    my $wrong = sum(map { $_->[1] // 0 } @res);
    my $held  = sum(map { $_->[2] // 0 } @res);
    my $peak  = max(map { $_->[3] // 0 } @res);
    check($wrong == 0, "churn: $wrong keys differ from the processes' mirrors");
    check($map->size == $held, "churn: size " . $map->size . " == $held entries the processes hold");
    check(eval { $map->verify }, "churn: verify after churn: $@");
    my $before = $map->arena_used;
    my @all = $map->keys;
    $map->remove($_) for @all;
    my $after = $map->arena_used;
    check($map->size == 0, 'churn: empty after removing every key');
    check(eval { $map->verify }, "churn: verify after removing all: $@");
    # "near zero": a few blocks of bookkeeping at most
    check($after <= max(4096, $peak / 1000), "churn: arena_used $after after removing all (peak $peak): near zero");
    printf "    %d processes: %s put/remove (%s/s); arena_used peak %s, before removal %s, after %s bytes\n",
        $P, commify($ops), commify($ops / $T), commify($peak), commify($before), commify($after);
}

# ---- lru: eviction under contention -----------------------------------------

sub lru {
    my $P = 4;
    my $M = 1_000 * $SCALE;    # max_size
    my $path = path('lru');
    my $map = Data::HashMap::Shared::SS->new($path, 20 * $M, $M);
    my $stop = "$DIR/lru-stop-$$";
    my $inserter = sub {
        my ($i) = @_;
        my $map = Data::HashMap::Shared::SS->new($path, 20 * $M, $M);
        my ($adds, $gets, $end) = (0, 0, now() + $T);
        while (now() < $end) {
            for (1 .. 100) {
                my $j = int rand 10 * $M;
                if (rand() < 0.5) { $adds += !!shm_ss_add $map, "key:$j", "value:$j" }
                else              { my $v = shm_ss_get $map, "key:$j"; $gets++ }
            }
        }
        return ($adds, $gets);
    };
    my $monitor = sub {
        my $map = Data::HashMap::Shared::SS->new($path, 20 * $M, $M);
        my ($samples, $most, $end) = (0, 0, now() + $T);
        while (now() < $end) {
            my $size = shm_ss_size $map;
            $most = $size if $size > $most;
            $samples++;
        }
        return (0, 0, $samples, $most);
    };
    my @res = spawn([ ($inserter) x $P, $monitor ]);
    my $mon  = pop @res;
    my $adds = sum(map { $_->[0] // 0 } @res);
    my $size = $map->size;
    my $ev   = $map->stat_evictions;
    check(($mon->[3] // 0) <= $M, "lru: size sampled up to " . ($mon->[3] // '?') . " <= max_size $M");
    check($size <= $M, "lru: final size $size <= max_size $M");
    check($ev == $adds - $size, "lru: stat_evictions $ev == adds $adds - size $size");
    check(eval { $map->verify }, "lru: verify: $@");
    printf "    %d processes: %s adds (%s/s), %s evictions, size %s (max_size %s; largest of %s samples %s)\n",
        $P, commify($adds), commify($adds / $T), commify($ev), commify($size), commify($M),
        commify($mon->[2] // 0), commify($mon->[3] // 0);
}

# ---- reads: scaling with processes -----------------------------------------

sub reads {
    my $N = 25_000;
    my $path = path('reads');
    my $map = Data::HashMap::Shared::SS->new($path, 2 * $N);
    my @keys = map { "key:$_" } 1 .. $N;
    $map->put($keys[$_ - 1], sprintf 'val:%016d', $_) for 1 .. $N;
    my $one;
    for my $P (1, 2, 4) {
        my @res = spawn([ map {
            sub {
                my ($i) = @_;
                my $map = Data::HashMap::Shared::SS->new($path, 2 * $N);
                my @mine = @keys[ $i * 97 % $N .. $N - 1, 0 .. $i * 97 % $N - 1 ];
                my ($n, $miss, $x) = (0, 0);
                my $t0 = now();
                my $end = $t0 + $T;
                while (now() < $end) {
                    for my $k (@mine) { $x = shm_ss_get $map, $k; $miss++ unless defined $x }
                    $n += @mine;
                }
                my $dt = now() - $t0;
                my ($user, $system) = times;
                return ($n / $dt, $miss, ($user + $system) / $dt);
            }
        } 1 .. $P ]);
        my $total = sum(map { $_->[0] // 0 } @res);
        check(sum(map { $_->[1] // 0 } @res) == 0, "reads: $P processes: misses");
        $one //= $total;
        printf "    %d process%-2s %12s reads/s  (%s; %.2fx of 1 process; cpu share %s)\n", $P, $P > 1 ? 'es' : '',
            commify($total), join(' ', map { commify($_->[0] // 0) } @res), $total / max($one, 1),
            join(' ', map { sprintf '%.0f%%', 100 * ($_->[2] // 0) } @res);
    }
    my $cpus = do { open my $fh, '<', '/proc/cpuinfo'; $fh ? scalar grep { /^processor\s*:/ } <$fh> : 0 };
    print "    ($cpus cpus: more processes than cpus share them)\n";
}

# ---- main ---------------------------------------------------------------------

my $cpus = do { open my $fh, '<', '/proc/cpuinfo'; $fh ? scalar grep { /^processor\s*:/ } <$fh> : 0 };
my $load = do { open my $fh, '<', '/proc/loadavg'; $fh ? (split ' ', <$fh>)[0] : '?' };
printf "Data::HashMap::Shared %s stress: %ss per timed phase%s; %d cpus, load %s; maps in %s\n",
    $Data::HashMap::Shared::VERSION // '?', $T, $opt{quick} ? ' (--quick)' : '', $cpus, $load, $DIR =~ s{/[^/]*$}{}r;
my %SUB = (writers => \&writers, torn => \&torn, counter => \&counter, churn => \&churn, lru => \&lru, reads => \&reads);
my $t_all = now();
for my $s (grep { $run{$_} } @SCENARIOS) {
    print "$s\n";
    $scenario_failed = 0;
    my $t0 = now();
    eval { $SUB{$s}->(); 1 } or check(0, "$s: $@");
    printf "  %s %s (%.1fs)\n", $s, $scenario_failed ? 'FAILED' : 'ok', now() - $t0;
    unlink glob "$DIR/*.map";
}
printf "%s in %.1fs\n", @failed ? scalar(@failed) . ' check(s) FAILED' : 'all checks passed', now() - $t_all;
exit(@failed ? 1 : 0);
