use strict;
use warnings;
use Test::More;
use lib 't/lib';
use DHMSTest;

# Pins: every operation of this issue on every variant, as documented in
# SPEC section 5 (return values of put/get/exists/remove/take/get_or_set,
# size and the sizing accessors, the diagnostics, stats, path), and that the
# method and the keyword form of each operation give the same answers.

my %BOOL = map { $_ => 1 } qw(put exists remove reserve);

# One scenario, run through one calling style on a fresh map; returns the
# transcript of (op, normalised result).
sub scenario {
    my ($v, $ops, $m) = @_;
    my @log;
    my $call = sub {
        my ($op, @args) = @_;
        my $r = $ops->{$op}->($m, @args);
        $r = $r ? 1 : 0 if $BOOL{$op};
        push @log, [ $op, $r ];
        return $r;
    };
    my ($k, $x) = (sub { vkey($v, $_[0]) }, sub { vval($v, $_[0]) });

    is($call->('size'), 0, 'new map is empty');
    is($call->('get', $k->(0)), undef, 'get of a missing key is undef');
    is($call->('exists', $k->(0)), 0, 'exists of a missing key is false');
    is($call->('remove', $k->(0)), 0, 'remove of a missing key is false');
    is($call->('take', $k->(0)), undef, 'take of a missing key is undef');

    is($call->('put', $k->(0), $x->(0)), 1, 'put of a new key is true');
    is($call->('get', $k->(0)), $x->(0), 'get returns what was put');
    is($call->('exists', $k->(0)), 1, 'exists is true');
    is($call->('size'), 1, 'size 1');

    is($call->('put', $k->(0), $x->(1)), 1, 'put overwriting is true');
    is($call->('get', $k->(0)), $x->(1), 'get returns the new value');
    is($call->('size'), 1, 'overwrite does not grow size');

    $call->('put', $k->($_), $x->($_)) for 1 .. 9;
    is($call->('size'), 10, 'size 10 after ten distinct keys');
    is($call->('get', $k->($_)), $x->($_), "get key $_") for 1 .. 9;

    is($call->('remove', $k->(1)), 1, 'remove of a present key is true');
    is($call->('exists', $k->(1)), 0, 'removed key is gone');
    is($call->('get', $k->(1)), undef, 'get of removed key is undef');
    is($call->('remove', $k->(1)), 0, 'second remove is false');
    is($call->('size'), 9, 'size 9');

    is($call->('take', $k->(2)), $x->(2), 'take returns the value');
    is($call->('exists', $k->(2)), 0, 'take removed the key');
    is($call->('take', $k->(2)), undef, 'second take is undef');
    is($call->('size'), 8, 'size 8');

    is($call->('get_or_set', $k->(3), $x->(99)), $x->(3), 'get_or_set of a present key returns it');
    is($call->('get', $k->(3)), $x->(3), '... and does not change it');
    is($call->('get_or_set', $k->(20), $x->(20)), $x->(20), 'get_or_set of a missing key returns the default');
    is($call->('get', $k->(20)), $x->(20), '... and stores it');
    is($call->('size'), 9, 'size 9');

    my @keys = $ops->{keys}->($m);
    is(scalar(@keys), 9, 'keys lists every entry');
    push @log, [ keys => join ',', sort @keys ];

    is($call->('max_entries'), 1000, 'max_entries is what new got');
    is($call->('max_size'), 0, 'max_size 0 by default');
    is($call->('ttl'), 0, 'ttl 0 by default');
    cmp_ok($call->('capacity'), '>=', 9, 'capacity >= size');
    cmp_ok($call->('tombstones'), '>=', 0, 'tombstones is a count');
    cmp_ok($call->('tombstones'), '<', $call->('capacity'), 'tombstones < capacity');
    cmp_ok($call->('mmap_size'), '>', 0, 'mmap_size > 0');
    cmp_ok($call->('arena_used'), '>=', 0, 'arena_used is a number');
    cmp_ok($call->('arena_cap'), '>=', 0, 'arena_cap is a number');
    is($call->('reserve', 500), 1, 'reserve below max_entries is true');
    cmp_ok($call->('capacity'), '>=', 500, '... and capacity fits 500');
    is($call->('reserve', 1001), 0, 'reserve above max_entries is false');
    is($call->('stat_evictions'), 0, 'no evictions');
    is($call->('stat_expired'), 0, 'no expiries');
    is($call->('stat_recoveries'), 0, 'no recoveries');

    $call->('clear');
    is($call->('size'), 0, 'clear empties the map');
    is($call->('get', $k->(0)), undef, 'get after clear is undef');
    is($call->('exists', $k->(3)), 0, 'exists after clear is false');
    is($call->('put', $k->(5), $x->(5)), 1, 'put after clear works');
    is($call->('get', $k->(5)), $x->(5), '... and get sees it');

    # Normalise what differs between two maps but not between the forms.
    for (@log) { $_->[1] = '<n>' if $_->[0] =~ /^(capacity|tombstones|mmap_size|arena_used|arena_cap)$/ }
    return \@log;
}

for_each_variant {
    my ($v) = @_;
    my %log;
    for my $form (forms($v)) {
        my ($fname, $ops) = @$form;
        my $path = tmp_path($v->{name});
        my $m = $v->{class}->new($path, 1000);
        subtest $fname => sub { $log{$fname} = scenario($v, $ops, $m) };
    }
    is_deeply($log{keyword}, $log{method}, 'method and keyword forms give the same transcript');

    # Both forms on one map, crossing.
    my $path = tmp_path($v->{name});
    my $m = $v->{class}->new($path, 1000);
    my ($kw, $me) = (kw_ops($v), meth_ops($v));
    ok($me->{put}->($m, vkey($v, 1), vval($v, 1)), 'method put');
    is($kw->{get}->($m, vkey($v, 1)), vval($v, 1), 'keyword get sees the method put');
    ok($kw->{put}->($m, vkey($v, 2), vval($v, 2)), 'keyword put');
    is($m->get(vkey($v, 2)), vval($v, 2), 'method get sees the keyword put');
    is($kw->{size}->($m), $m->size, 'size agrees');

    # path, stats.
    is($m->path, $path, 'path is the path given to new');
    my $st = $m->stats;
    is(ref $st, 'HASH', 'stats is a hashref');
    for my $key (qw(capacity tombstones mmap_size arena_used arena_cap
                    stat_evictions stat_expired stat_recoveries)) {
        ok(exists $st->{$key}, "stats has $key") or next;
        is($st->{$key}, $m->$key, "stats $key equals the accessor");
    }
    ok(exists $st->{$_}, "stats has $_") for qw(frozen readonly);
    ok(!$st->{frozen}, 'not frozen');
    ok(!$st->{readonly}, 'not readonly');

    # Two handles of one file in one process see each other.
    my $m2 = $v->{class}->new($path, 1000);
    is($m2->get(vkey($v, 1)), vval($v, 1), 'a second handle sees the first one\'s entries');
    ok($m2->put(vkey($v, 3), vval($v, 3)), 'second handle puts');
    is($m->get(vkey($v, 3)), vval($v, 3), 'first handle sees it');
    ok($m->remove(vkey($v, 1)), 'first handle removes');
    ok(!$m2->exists(vkey($v, 1)), 'second handle sees the removal');
    is($m2->size, 2, 'both see size 2');
    is($m->size, 2, 'both see size 2');
    undef $m2;
    is($m->get(vkey($v, 3)), vval($v, 3), 'destroying one handle leaves the other working');

    # A larger round: 2,000 entries survive growth and read back.
    my $big = $v->{class}->new(tmp_path($v->{name}), 5000);
    my $bad = 0;
    $big->put(vkey($v, $_), vval($v, $_)) or $bad++ for 0 .. 1999;
    is($bad, 0, '2,000 puts succeed');
    is($big->size, 2000, 'size 2000');
    my @wrong = grep { ($big->get(vkey($v, $_)) // '<undef>') ne vval($v, $_) } 0 .. 1999;
    is("@wrong[0 .. ($#wrong < 9 ? $#wrong : 9)]", '', 'every value reads back');
    $big->remove(vkey($v, $_)) for grep { $_ % 2 } 0 .. 1999;
    is($big->size, 1000, 'size 1000 after removing the odd ones');
    @wrong = grep { $_ % 2 ? $big->exists(vkey($v, $_)) : ($big->get(vkey($v, $_)) // '') ne vval($v, $_) } 0 .. 1999;
    is(scalar(@wrong), 0, 'the even ones remain, the odd ones are gone');
};

done_testing;
