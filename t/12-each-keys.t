use strict;
use warnings;
use Test::More;
use lib 't/lib';
use DHMSTest;

# Pins the whole-map readers (SPEC section 5): keys, values, items (flat
# k, v, ...), to_hash (a new hashref), each ((k, v), then () once at the end,
# after which it starts over), iter_reset; removing the current entry during
# each is safe and every entry present throughout comes exactly once. Both
# calling styles.

my $N = 300;

for_each_variant {
    my ($v) = @_;
    for my $form (forms($v)) {
        my ($fname, $op) = @$form;
        subtest $fname => sub {
            my $m = $v->{class}->new(tmp_path($v->{name}), 10_000);

            # Empty map.
            is_deeply([ $op->{keys}->($m) ],   [], 'keys of an empty map');
            is_deeply([ $op->{values}->($m) ], [], 'values of an empty map');
            is_deeply([ $op->{items}->($m) ],  [], 'items of an empty map');
            is_deeply($op->{to_hash}->($m),    {}, 'to_hash of an empty map');
            is_deeply([ $op->{each}->($m) ],   [], 'each of an empty map is ()');
            is_deeply([ $op->{each}->($m) ],   [], '... again');

            my %want = map { (vkey($v, $_) => vval($v, $_)) } 0 .. $N - 1;
            $op->{put}->($m, vkey($v, $_), vval($v, $_)) for 0 .. $N - 1;

            my @k = $op->{keys}->($m);
            is(scalar(@k), $N, "keys: $N");
            is_deeply([ sort @k ], [ sort keys %want ], 'keys are the keys');
            my @vals = $op->{values}->($m);
            is_deeply([ sort @vals ], [ sort values %want ], 'values are the values');

            my @items = $op->{items}->($m);
            is(scalar(@items), 2 * $N, 'items is flat: 2 per entry');
            my %from_items;
            my $pairs_ok = 1;
            while (my ($ik, $iv) = splice @items, 0, 2) {
                $pairs_ok = 0 if exists $from_items{$ik} || !exists $want{$ik} || $want{$ik} ne $iv;
                $from_items{$ik} = $iv;
            }
            ok($pairs_ok, 'items pairs each key with its value, once');
            is_deeply(\%from_items, \%want, 'items cover the map');

            my $h = $op->{to_hash}->($m);
            is(ref $h, 'HASH', 'to_hash gives a hashref');
            is_deeply($h, \%want, 'to_hash equals the map');
            $h->{extra} = 1;
            my $h2 = $op->{to_hash}->($m);
            ok(!exists $h2->{extra}, 'to_hash gives a new hash each time');
            is($op->{size}->($m), $N, 'changing the copy leaves the map alone');

            # keys and values line up with each other entry by entry.
            my @k2 = $op->{keys}->($m);
            my @v2 = $op->{values}->($m);
            my @mis = grep { $want{ $k2[$_] } ne $v2[$_] } 0 .. $#k2;
            is(scalar(@mis), 0, 'keys and values come in the same order');

            # each: a full walk, then () once, then it starts over.
            $op->{iter_reset}->($m);
            my (%seen, $dups, $wrong);
            $dups = $wrong = 0;
            while (my ($ek, $ev) = $op->{each}->($m)) {
                $dups++ if $seen{$ek}++;
                $wrong++ if !exists $want{$ek} || $want{$ek} ne $ev;
                last if keys %seen > $N + 5;
            }
            is(scalar(keys %seen), $N, 'each walks every entry');
            is($dups, 0, '... once');
            is($wrong, 0, '... with its value');
            my @again = $op->{each}->($m);
            is(scalar(@again), 2, 'after the end, each starts over');
            ok(exists $want{ $again[0] }, '... with an entry of the map');

            # iter_reset mid-walk: the next walk is complete.
            $op->{each}->($m) for 1 .. 10;
            $op->{iter_reset}->($m);
            my %walk;
            while (my ($ek) = $op->{each}->($m)) { $walk{$ek}++; last if keys %walk > $N + 5 }
            is(scalar(keys %walk), $N, 'after iter_reset mid-walk, a full walk');
            ok(!(grep { $_ != 1 } values %walk), '... each entry once');

            # Removing the current entry during each is safe and exactly-once.
            $op->{iter_reset}->($m);
            my %gone;
            my $err = 0;
            while (my ($ek, $ev) = $op->{each}->($m)) {
                $err++ if $gone{$ek}++;
                $err++ unless $op->{remove}->($m, $ek);
                last if keys %gone > $N + 5;
            }
            is(scalar(keys %gone), $N, 'each with remove visits every entry')
                or diag 'capacity now ' . $op->{capacity}->($m) . ', ' . $op->{size}->($m) . ' entries never visited';
            is($err, 0, '... once each, and every remove succeeded');
            is($op->{size}->($m), 0, 'the map is empty');
            is_deeply([ $op->{each}->($m) ], [], 'each of the emptied map is ()');

            # Removing other entries during the walk: those present throughout come once.
            $op->{put}->($m, vkey($v, $_), vval($v, $_)) for 0 .. $N - 1;
            $op->{iter_reset}->($m);
            my %visit;
            my %removed;
            my $i = 0;
            while (my ($ek) = $op->{each}->($m)) {
                $visit{$ek}++;
                # remove an entry not yet visited, every third step
                if (++$i % 3 == 0) {
                    my ($victim) = grep { !$visit{$_} && !$removed{$_} } map { vkey($v, $_) } 0 .. $N - 1;
                    if (defined $victim) { $op->{remove}->($m, $victim); $removed{$victim} = 1 }
                }
                last if $i > 3 * $N;
            }
            my @stayed = grep { !$removed{$_} } keys %want;
            my @missed = grep { ($visit{$_} // 0) != 1 } @stayed;
            is(scalar(@missed), 0, 'entries present throughout the walk come exactly once')
                or diag "missed or repeated: @missed[0 .. ($#missed < 5 ? $#missed : 5)]";

            # Growth during the walk does not repeat entries present throughout.
            $op->{clear}->($m);
            $op->{put}->($m, vkey($v, $_), vval($v, $_)) for 0 .. 49;
            $op->{iter_reset}->($m);
            my %gw;
            my ($j, $steps) = (50, 0);
            while (my ($ek) = $op->{each}->($m)) {
                $gw{$ek}++;
                if ($j < 2000) {
                    $op->{put}->($m, vkey($v, $_), vval($v, $_)) for $j .. $j + 19;
                    $j += 20;
                }
                last if ++$steps > 10_000;
            }
            my @orig = map { vkey($v, $_) } 0 .. 49;
            my @bad = grep { ($gw{$_} // 0) != 1 } @orig;
            is(scalar(@bad), 0, 'while the table grows, the original 50 come exactly once')
                or diag join ', ', map { "$_ came " . ($gw{$_} // 0) . ' times' } @bad;
            my @twice = grep { $gw{$_} > 1 } sort keys %gw;
            is(scalar(@twice), 0, 'no entry comes twice') or diag "twice: @twice";
        };
    }
};

done_testing;
