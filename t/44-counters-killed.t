use strict;
use warnings;
use Test::More;
use List::Util qw(shuffle sum0);
use POSIX ();
use Time::HiRes ();
use lib 't/lib';
use DHMSTest;

# Pins SPEC section 7 for the lock-free counters: processes SIGKILLed in the
# middle of incr_by loops (which raise a per-process "active" flag that a
# writer waits on) never block the others and lose no finished increment.
#
# 16 processes loop over incr_by(shared, 1) then incr_by(own, 1), so that
# after each finished pair the own counters sum to the shared one. Odd ones
# also remove and put again a key of their own now and then (the writer
# lock, so that some kills land while it is held). They are SIGKILLed one
# by one at random moments over ~2 s. Then:
# a put from this process gets through within a second (the one timing
# assertion: "a writer afterwards gets through within a second"), verify
# passes, and shared >= sum(own) >= shared - 16: a killed process may have
# finished its shared increment but not its own one; no finished increment is
# lost and none is counted twice. Afterwards the counters still add up exactly
# under concurrency.

require Data::HashMap::Shared::II;

my $N = 16;
srand($ENV{DHMS_SEED} // time ^ $$);

my $path = tmp_path('counters-killed');
my $m = Data::HashMap::Shared::II->new($path, 1000);
is($m->max_entries, 1000, 'a map of max_entries 1000');

for my $round (1 .. 2) {
    my $base   = $round * 100;        # keys of this round: shared $base, own $base+1+$p, puts $base+50+$p
    my $shared = $base;
    $m->put($shared, 0);
    my $rec0 = $m->stat_recoveries;

    pipe(my $go_r, my $go_w) or die "pipe: $!";
    pipe(my $ready_r, my $ready_w) or die "pipe: $!";
    my @pids;
    for my $p (0 .. $N - 1) {
        push @pids, spawn_child(sub {
            close $go_w; close $ready_r;
            my $h = $p % 2 ? $m : Data::HashMap::Shared::II->new($path, 1);    # inherited and own handles
            my $b;
            sysread $go_r, $b, 1;    # EOF: go
            my $own = $base + 1 + $p;
            my $n = 0;
            while (1) {
                $h->incr_by($shared, 1);
                $h->incr_by($own, 1);
                $n++;
                if ($p % 2 && $n % 64 == 0) {
                    # a new key each time: an overwrite of an integer would
                    # be lock-free, like the counters
                    $h->remove($base + 50 + $p);
                    $h->put($base + 50 + $p, $n) or die "put failed\n";
                }
                syswrite $ready_w, 'r' if $n == 200;
            }
        }, alarm => 60);
    }
    close $go_r; close $ready_w;
    close $go_w;    # release them

    # Every process has finished 200 pairs before the first kill.
    my $ready = 0;
    my $until = Time::HiRes::time() + 30;
    while ($ready < $N && Time::HiRes::time() < $until) {
        my $got = sysread($ready_r, my $buf, $N);
        last unless $got;
        $ready += $got;
    }
    is($ready, $N, "round $round: all $N processes are incrementing");

    # Kill them one by one at random moments over ~2 s.
    my @when  = sort { $a <=> $b } map { rand 2 } 1 .. $N;
    my @order = shuffle 0 .. $N - 1;
    my $t0 = Time::HiRes::time();
    my @killed_by;
    for my $k (0 .. $N - 1) {
        my $wait = $t0 + $when[$k] - Time::HiRes::time();
        Time::HiRes::sleep($wait) if $wait > 0;
        my $pid = $pids[ $order[$k] ];
        kill 'KILL', $pid;
        waitpid($pid, 0);
        $killed_by[ $order[$k] ] = $?;
    }
    my @not_killed = grep { ($killed_by[$_] & 127) != 9 } 0 .. $N - 1;
    is(scalar(@not_killed), 0, "round $round: all $N processes were SIGKILLed while incrementing")
        or diag map { "process $_: " . describe_status($killed_by[$_]) . "\n" } @not_killed;

    # A writer afterwards gets through within a second.
    my $t = Time::HiRes::time();
    my $ok = eval { under_alarm(10, sub { $m->put($base + 99, 42) or die "put returned false\n" }) };
    my $dt = Time::HiRes::time() - $t;
    ok($ok, "round $round: a put after the kills succeeds") or diag $@;
    cmp_ok($dt, '<', 1, sprintf('round %d: ... within a second (%.1f ms)', $round, $dt * 1000));
    is($m->get($base + 99), 42, "round $round: ... and reads back");
    ok(eval { $m->verify }, "round $round: verify passes") or diag $@;

    my $total = $m->get($shared);
    my @own   = map { $m->get($base + 1 + $_) // 0 } 0 .. $N - 1;
    my $sum   = sum0 @own;
    cmp_ok(scalar(grep { $_ >= 200 } @own), '==', $N, "round $round: every process finished at least 200 pairs");
    cmp_ok($total, '>=', $sum, "round $round: no finished shared increment is lost (shared $total >= own sum $sum)");
    cmp_ok($total - $sum, '<=', $N, "round $round: at most one unpaired increment per killed process ("
        . ($total - $sum) . ')');
    my %seen = map { $_ => 1 } $m->keys;
    my @odd  = grep { $seen{$_} && ($_ % 100) >= 50 && ($_ % 100) < 50 + $N } keys %seen;
    is(scalar(keys %seen), $round * (1 + $N + 1) + @odd, "round $round: exactly the keys written are there");
    is($m->size, scalar(keys %seen), "round $round: size equals the number of keys");
    note sprintf 'round %d: shared %d, own sum %d, stat_recoveries %d -> %d',
        $round, $total, $sum, $rec0, $m->stat_recoveries;

    # The counters still add up exactly under concurrency afterwards.
    children_ok(4, sub {
        my ($i) = @_;
        my $h = $i % 2 ? $m : Data::HashMap::Shared::II->new($path, 1);
        $h->incr_by($shared, 1) for 1 .. 2000;
        $h->incr($base + 1 + $i) for 1 .. 500;
    }, "round $round: 4 processes increment afterwards", alarm => 30);
    is($m->get($shared), $total + 8000, "round $round: ... and no increment is lost");
    is($m->get($base + 1 + $_), $own[$_] + 500, "round $round: ... own counter $_ too") for 0 .. 3;
    ok(eval { $m->verify }, "round $round: verify passes at the end") or diag $@;
}

done_testing;
