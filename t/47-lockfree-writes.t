use strict;
use warnings;
use Test::More;
use lib 't/lib';
use DHMSTest;
use Data::HashMap::Shared::II;
use Data::HashMap::Shared::I16;

# Pins SPEC section 7 for the writes that take no lock: on a map without
# LRU or TTL, a put of an integer value over an existing integer key, and
# incr/decr/incr_by of an existing key, change the value word in place
# under the process's counter flag (Map::counter_quick), while other
# processes insert and remove enough keys for the table to grow and shrink,
# moving every entry, step by step (a migration) or at once. No such write
# may be lost to an entry that moves under it, and none may land twice.
#
# One child churns: it inserts many other keys and removes them again,
# three times. Until it is done, another puts round numbers over 200 keys
# (through keywords and methods), and a third increments 20 counters.

for my $class (qw(Data::HashMap::Shared::II Data::HashMap::Shared::I16)) {
    my $short = $class =~ s/.*:://r;
    my $path = tmp_path("lockfree-$short");
    # The churn's keys are apart from the others: for I16, 30,000 keys
    # (its tables resize at once); for II, 100,000 (past 65,536 slots its
    # tables migrate step by step).
    my ($puts, $counters) = ([ 1 .. 200 ], [ 1001 .. 1020 ]);
    my ($churn_from, $churn) = $short eq 'II' ? (100_000, 100_000) : (-32768, 30_000);
    my $m = $class->new($path, $churn + 1000);
    $m->put($_, 0) for @$puts, @$counters;
    my $stop = 30_000;    # the churner puts it when it is done
    my $cap = $short eq 'I16' ? 30_000 : -1;    # rounds that fit the values

    my @res = run_in_children([
        sub {
            my $h = $class->new($path, 1);
            my $r = 0;
            until ($h->get($stop) || $r == $cap) {
                $r++;
                for my $k (@$puts) {
                    # both forms, both paths to the same engine entry point
                    if ($r % 2) { $h->put($k, $r) or die "put $k failed\n" }
                    elsif ($short eq 'II') { shm_ii_put $h, $k, $r or die "put $k failed\n" }
                    else { shm_i16_put $h, $k, $r or die "put $k failed\n" }
                }
            }
            return $r;
        },
        sub {
            my $n = 0;
            until ($m->get($stop) || $n == $cap) {
                $n++;
                for my $k (@$counters) {
                    if ($short eq 'II') { shm_ii_incr $m, $k } else { $m->incr_by($k, 1) }
                }
            }
            return $n;
        },
        sub {
            my $h = $class->new($path, 1);
            for (1 .. 3) {
                $h->put($churn_from + $_, $_ % 1000) or die "churn put failed\n" for 0 .. $churn - 1;
                $h->remove($churn_from + $_) for 0 .. $churn - 1;
            }
            $h->put($stop, 1);
            return 'churned';
        },
    ], alarm => 120);

    my @out = map { $_->[1] } @res;
    is_deeply([ map { describe_status($_->[0]) } @res ], [ ('exit 0') x 3 ],
        "$short: the three children finish") or diag "@out";
    my ($rounds, $incrs) = map { /^ok:(\d+)$/ ? $1 : 0 } @out[0, 1];
    cmp_ok($rounds, '>', 10, "$short: puts went on during the churn ($rounds rounds)");
    cmp_ok($incrs, '>', 10, "$short: increments went on during the churn ($incrs rounds)");
    is_deeply([ map { $m->get($_) } @$puts ], [ ($rounds) x @$puts ],
        "$short: every key holds the last round put over it");
    is_deeply([ map { $m->get($_) } @$counters ], [ ($incrs) x @$counters ],
        "$short: every counter counted every increment once");
    is($m->size, @$puts + @$counters + 1, "$short: only those keys are left");
    ok(eval { $m->verify; 1 }, "$short: verify passes") or diag $@;
    unlink $path;
}

done_testing;
