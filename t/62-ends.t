use strict;
use warnings;
use Test::More;
use lib 't/lib';
use DHMSTest;

# Pins pop, shift and drain of SPEC section 5 on every variant, in both
# calling styles: on an LRU map (max_size > 0) pop removes and returns
# (k, v) from the least recently used end and shift from the most recently
# used end (section 6: updates move an entry to the most recent end);
# on other maps they remove some entry, so that popping until () returns
# every entry exactly once with its value and empties the map; () when
# empty; in scalar context the key. drain(n) removes up to n pairs in pop
# order and returns them as a flat list (in scalar context the number of
# pairs); drain of an empty map is (); drain(1e9) of a 10-entry map returns
# its 10 pairs without reserving room for 1e9 (run in a child, so that an
# out-of-memory death is a failed test).

eval "require $_->{class}; 1" or die $@ for @VARIANTS;

my %ARITY = (pop => 1, shift => 1, drain => 2);
sub xforms { forms_with($_[0], %ARITY) }

sub pair { my ($v, $i) = @_; [ vkey($v, $i), vval($v, $i) ] }
sub pairs_of {
    my @l = @_;
    my @r;
    push @r, [ splice @l, 0, 2 ] while @l;
    return \@r;
}

# ---- LRU order ------------------------------------------------------------------

for_each_variant {
    my ($v) = @_;
    for my $form (xforms($v)) {
        my ($fname, $op) = @$form;
        subtest $fname => sub {
            my $m = $v->{class}->new(tmp_path($v->{name}), 100, 10);
            $op->{put}->($m, vkey($v, $_), vval($v, $_)) for 1 .. 3;
            is_deeply([ $op->{pop}->($m) ], pair($v, 1), 'pop: the least recent entry (1), with its value');
            is_deeply([ $op->{shift}->($m) ], pair($v, 3), 'shift: the most recent entry (3)');
            is($op->{size}->($m), 1, '... both removed');
            is_deeply([ $op->{pop}->($m) ], pair($v, 2), 'pop: the last one (2)');
            is($op->{size}->($m), 0, 'empty');
            is_deeply([ $op->{pop}->($m) ], [], 'pop of an empty map: ()');
            is_deeply([ $op->{shift}->($m) ], [], 'shift of an empty map: ()');
            is_deeply([ $op->{drain}->($m, 5) ], [], 'drain of an empty map: ()');

            # Updates reorder.
            $op->{put}->($m, vkey($v, $_), vval($v, $_)) for 1 .. 4;
            $op->{put}->($m, vkey($v, 1), vval($v, 11));
            is_deeply([ $op->{shift}->($m) ], [ vkey($v, 1), vval($v, 11) ], 'an updated entry is the most recent: shift gives it');
            is_deeply([ $op->{pop}->($m) ], pair($v, 2), 'pop then gives 2');
            $op->{put}->($m, vkey($v, 3), vval($v, 3));
            is_deeply([ $op->{pop}->($m) ], pair($v, 4), 'after updating 3, pop gives 4');

            # Scalar context: the key, and the entry is removed.
            $op->{clear}->($m);
            $op->{put}->($m, vkey($v, $_), vval($v, $_)) for 1 .. 4;
            my $k = $op->{pop}->($m);
            is($k, vkey($v, 1), 'pop in scalar context: the key');
            ok(!$op->{exists}->($m, vkey($v, 1)), '... removed');
            $k = $op->{shift}->($m);
            is($k, vkey($v, 4), 'shift in scalar context: the key');
            ok(!$op->{exists}->($m, vkey($v, 4)), '... removed');
            is($op->{size}->($m), 2, 'size 2');

            # drain in pop order.
            $op->{clear}->($m);
            $op->{put}->($m, vkey($v, $_), vval($v, $_)) for 1 .. 6;
            is_deeply(pairs_of($op->{drain}->($m, 2)), [ pair($v, 1), pair($v, 2) ], 'drain 2: the two least recent, flat, in pop order');
            my $n = $op->{drain}->($m, 2);
            is($n, 2, 'drain in scalar context: the number of pairs');
            ok(!$op->{exists}->($m, vkey($v, 3)) && !$op->{exists}->($m, vkey($v, 4)), '... 3 and 4 removed');
            is_deeply([ $op->{drain}->($m, 0) ], [], 'drain 0: ()');
            is($op->{size}->($m), 2, '... removes nothing');
            is_deeply(pairs_of($op->{drain}->($m, 10)), [ pair($v, 5), pair($v, 6) ], 'drain 10 of 2 left: both');
            is($op->{size}->($m), 0, 'empty');
            is(scalar($op->{drain}->($m, 3)), 0, 'drain of an empty map in scalar context: 0');
        };
    }
};

# ---- any order on plain maps ---------------------------------------------------

my $N = 60;
for_each_variant {
    my ($v) = @_;
    my %want = map { ('' . vkey($v, $_) => vval($v, $_)) } 0 .. $N - 1;
    for my $form (xforms($v)) {
        my ($fname, $op) = @$form;
        subtest $fname => sub {
            my $m = $v->{class}->new(tmp_path($v->{name}), 1000);
            for my $end (qw(pop shift drain)) {
                $op->{put}->($m, vkey($v, $_), vval($v, $_)) for 0 .. $N - 1;
                my (%seen, $dup, $wrong, $size_ok);
                $dup = $wrong = 0;
                $size_ok = 1;
                my $left = $N;
                my $steps = 0;
                while (1) {
                    my @got = $end eq 'drain' ? $op->{drain}->($m, 7) : $op->{$end}->($m);
                    last unless @got;
                    last if ++$steps > $N + 5;
                    while (my ($k, $x) = splice @got, 0, 2) {
                        $dup++ if $seen{$k}++;
                        $wrong++ unless exists $want{$k} && $want{$k} eq $x;
                        $left--;
                    }
                    $size_ok = 0 if $op->{size}->($m) != $left;
                }
                is(scalar(keys %seen), $N, "$end until (): every entry came");
                is($dup, 0, '... once');
                is($wrong, 0, '... with its value');
                ok($size_ok, '... size went down by one per entry');
                is($op->{size}->($m), 0, '... the map is empty');
                is_deeply([ $end eq 'drain' ? $op->{drain}->($m, 1) : $op->{$end}->($m) ], [], "... and $end gives ()");
            }
            # Scalar context on a plain map: the key of an entry, removed.
            $op->{put}->($m, vkey($v, $_), vval($v, $_)) for 0 .. 2;
            my @ks;
            for (1 .. 3) { my $k = $op->{pop}->($m); push @ks, "$k" if defined $k }
            is_deeply([ sort @ks ], [ sort map { '' . vkey($v, $_) } 0 .. 2 ], 'scalar pop: each key once');
            ok(!defined scalar($op->{shift}->($m)), 'scalar shift of an empty map: undef');
            is($op->{size}->($m), 0, 'empty');
        };
    }
};

# ---- values come back whole: flags, empty strings ---------------------------------

for_each_variant {
    my ($v) = @_;
    my $m = $v->{class}->new(tmp_path($v->{name}), 100, 10);
    my $wide = "sm\x{263A}le";
    $m->put(vkey($v, 1), $wide);
    $m->put(vkey($v, 2), '');
    $m->put(vkey($v, 3), "caf\xe9");
    my @p = $m->pop;
    ok($p[1] eq $wide && utf8::is_utf8($p[1]), 'pop restores the UTF-8 flag of the value');
    my @s = $m->shift;
    ok($s[1] eq "caf\xe9" && !utf8::is_utf8($s[1]), 'shift: an unflagged value stays unflagged');
    my @d = $m->drain(5);
    ok(@d == 2 && defined $d[1] && $d[1] eq '', 'drain: an empty value comes back as ""');
} val => 'bytes';

for_each_variant {
    my ($v) = @_;
    my $m = $v->{class}->new(tmp_path($v->{name}), 100, 10);
    my $wide = "sm\x{263A}le";
    $m->put($wide, vval($v, 1));
    $m->put('', vval($v, 2));
    my @p = $m->pop;
    ok($p[0] eq $wide && utf8::is_utf8($p[0]), 'pop restores the UTF-8 flag of the key');
    my @s = $m->shift;
    is_deeply(\@s, [ '', vval($v, 2) ], 'shift: the empty key');
} key => 'bytes';

# ---- the drain bound ---------------------------------------------------------------

for_each_variant {
    my ($v) = @_;
    for my $lru (0, 10) {
        my $m = $v->{class}->new(tmp_path($v->{name}), 100, $lru);
        $m->put(vkey($v, $_), vval($v, $_)) for 1 .. 10;
        my %want = map { ('' . vkey($v, $_) => vval($v, $_)) } 1 .. 10;
        my ($st, $out) = run_in_child(sub {
            my @d = $m->drain(1e9);
            my %got;
            while (my ($k, $x) = splice @d, 0, 2) { $got{$k} = $x }
            return join ',', scalar(keys %got), (grep { !exists $want{$_} || $want{$_} ne $got{$_} } keys %got) ? 'bad' : 'good',
                $m->size;
        }, alarm => 20);
        is($st, 0, ($lru ? 'LRU map' : 'plain map') . ': drain(1e9) of 10 entries returns (no out-of-memory death)')
            or diag describe_status($st);
        is($out, 'ok:10,good,0', '... all 10 pairs with their values, and the map is empty');
        my @d = $m->drain(1e9);
        is(scalar(@d), 0, '... (the child drained the shared map: nothing left here)');
        $m->put(vkey($v, $_), vval($v, $_)) for 1 .. 10;
        is(scalar($m->drain(1e9)), 10, 'drain(1e9) here too: 10 pairs');
    }
};

done_testing;
