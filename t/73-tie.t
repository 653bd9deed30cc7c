use strict;
use warnings;
use Test::More;
use lib 't/lib';
use DHMSTest;

# Pins: tie %h, <variant class>, <arguments of new> (or a map of that class)
# gives a Perl hash view of the map: fetch, store (croaking when full),
# exists, delete (returning the removed value), clear, keys/values/each
# (a cursor walk: every entry once), scalar (size); tied(%h)->map is the
# map; two ties of one file see each other at once, also across fork.

my @ONLY = qw(II SS IS SI I16);

for_each_variant {
    my ($v) = @_;
    my $class = $v->{class};
    my $path  = tmp_path($v->{name});
    my @k = map { vkey($v, $_) } 0 .. 19;
    my @x = map { vval($v, $_) } 0 .. 19;

    my $obj = tie my %h, $class, $path, 20;
    isa_ok($obj, 'Data::HashMap::Shared::Tie', 'tie returns');
    is(tied(%h), $obj, 'tied returns the same object');
    my $map = tied(%h)->map;
    isa_ok($map, $class, 'tied(%h)->map');
    is($map->max_entries, 20, 'tie passed the arguments of new');

    # store, fetch, exists
    $h{ $k[$_] } = $x[$_] for 0 .. 4;
    is($h{ $k[$_] }, $x[$_], "fetch $_") for 0 .. 4;
    is($map->get($k[2]), $x[2], 'a store is a put');
    ok(exists $h{ $k[3] }, 'exists: present');
    ok(!exists $h{ $k[9] }, 'exists: missing');
    is($h{ $k[9] }, undef, 'fetch of a missing key: undef');
    $h{ $k[0] } = $x[7];
    is($h{ $k[0] }, $x[7], 'overwrite');
    is(scalar(keys %h), 5, 'keys in scalar context');

    # delete returns the removed value
    is(delete $h{ $k[0] }, $x[7], 'delete returns the removed value');
    ok(!$map->exists($k[0]), 'and removes it');
    is(delete $h{ $k[0] }, undef, 'delete of a missing key: undef');
    is_deeply([ delete @h{ $k[1], $k[2] } ], [ $x[1], $x[2] ], 'delete of a slice');

    # scalar, boolean
    is(scalar(%h), 2, 'scalar(%h) is the size');
    ok(!!%h, 'a non-empty hash is true');

    # keys, values, each: every entry exactly once
    %h = map { ($k[$_] => $x[$_]) } 0 .. 11;
    is($map->size, 12, '%h = LIST clears, then stores');
    my @want_k = sort map { "$_" } @k[0 .. 11];
    my @want_v = sort map { "$_" } @x[0 .. 11];
    is_deeply([ sort map { "$_" } keys %h ], \@want_k, 'keys');
    is_deeply([ sort map { "$_" } values %h ], \@want_v, 'values');
    my %seen;
    while (my ($key, $value) = each %h) {
        $seen{$key}++;
        is($value, $map->get($key), "each: value of $key");
    }
    is_deeply([ sort keys %seen ], \@want_k, 'each: every key');
    ok(!grep({ $_ != 1 } values %seen), 'each: each key once');
    my %copy = %h;
    is_deeply(\%copy, { map { ($k[$_] => $x[$_]) } 0 .. 11 }, 'copying the hash');
    is_deeply(\%copy, $map->to_hash, 'the same as to_hash');

    # an interrupted each restarts with keys (FIRSTKEY resets the cursor)
    my ($first) = each %h;
    my ($second) = each %h;
    isnt($first, $second, 'each advances');
    is(scalar(() = keys %h), 12, 'keys resets the walk');
    my ($again) = each %h;
    is($again, $first, 'each starts over after keys');
    keys %h;

    # deleting the current entry while walking is safe
    my $n = 0;
    while (my ($key) = each %h) { delete $h{$key}; $n++ }
    is($n, 12, 'each with delete: every entry visited once');
    is(scalar(%h), 0, 'and all removed');
    ok(!%h, 'an empty hash is false');

    # clear
    $h{ $k[$_] } = $x[$_] for 0 .. 5;
    %h = ();
    is($map->size, 0, '%h = () clears');
    is_deeply([ keys %h ], [], 'no keys after clear');

    # errors are reported at the caller's line, the map unchanged
    $h{ $k[$_] } = $x[$_] for 0 .. 19;
    my $line = __LINE__ + 1;
    eval { $h{ vkey($v, 25) } = $x[0] };
    like($@, qr/\Q$class\E: cannot store key in tied hash: the map is full \(max_entries 20\) at \S+ line $line\.$/,
        'storing a new key into a full map croaks');
    is($map->size, 20, 'nothing stored');
    $h{ $k[3] } = $x[4];
    is($h{ $k[3] }, $x[4], 'overwriting in a full map works');
    $line = __LINE__ + 1;
    eval { $h{ $k[1] } = undef };
    like($@, qr/value is undef at \S+ line $line\.$/, 'storing undef croaks at the caller');
    if ($v->{int_key}) {
        eval { my $x = $h{'not a number'} };
        like($@, qr/is not an integer at \S+ line \d+\.$/, 'a non-integer key croaks');
    }
    if ($v->{int_val}) {
        eval { $h{ $k[1] } = 'not a number' };
        like($@, qr/is not an integer/, 'a non-integer value croaks');
    }

    # two ties of one file, and a tie of an open map, see each other
    tie(my %other, $class, $path, 20);
    tie(my %same, $class, $map);
    is(tied(%same)->map, $map, 'tie to a map object uses that object');
    %h = ();
    $h{ $k[1] } = $x[1];
    is($other{ $k[1] }, $x[1], 'the second tie sees a store at once');
    is($same{ $k[1] }, $x[1], 'the tie of the map object too');
    delete $other{ $k[1] };
    ok(!exists $h{ $k[1] }, 'the first sees a delete by the second');
    $other{ $k[2] } = $x[2];
    is_deeply([ keys %h ], [ $k[2] ], 'and its keys');

    # fork: a child's changes are visible to the parent, and the reverse
    $h{ $k[5] } = $x[5];
    my ($st, $out) = run_in_child(sub {
        die "child does not see the parent's entry\n" unless $h{ $k[5] } eq $x[5];
        tie my %mine, $class, $path, 20;       # a new tie in the child
        $mine{ $k[6] } = $x[6];
        $h{ $k[7] } = $x[7];                   # the inherited tie
        delete $h{ $k[5] };
        return join ',', map { "$_" } sort map { "$_" } keys %mine;
    });
    is($st, 0, 'child exited 0');
    is($out, 'ok:' . join(',', sort map { "$_" } $k[2], $k[6], $k[7]), 'the child saw the parent\'s entries');
    is($h{ $k[6] }, $x[6], 'the parent sees a store by the child\'s own tie');
    is($h{ $k[7] }, $x[7], 'and by the inherited tie');
    ok(!exists $h{ $k[5] }, 'and a delete');

    # untie leaves the map usable through other references
    undef $obj;
    untie %h;
    is($map->get($k[7]), $x[7], 'the map outlives untie');
    untie %other;
    untie %same;
    $map->unlink;
} only => \@ONLY;

# Every variant class can be tied (TIEHASH comes from one loop).
for my $v (@VARIANTS) {
    eval "require $v->{class}; 1" or die $@;
    ok($v->{class}->can('TIEHASH'), "$v->{name} can be tied");
    is(\&{"$v->{class}::TIEHASH"}, \&Data::HashMap::Shared::Tie::tiehash, "$v->{name}: the one TIEHASH");
}

# A TTL map: expired entries are not seen through the hash.
{
    require Data::HashMap::Shared::SS;
    my $path = tmp_path('ttl');
    tie my %h, 'Data::HashMap::Shared::SS', $path, 100, 0, 60;
    $h{keep} = 'a';
    tied(%h)->map->put_ttl('brief', 'b', 1);
    is_deeply([ sort keys %h ], [qw(brief keep)], 'both present');
    sleep 2;
    ok(!exists $h{brief}, 'expired: not exists');
    is($h{brief}, undef, 'expired: fetch gives undef');
    is_deeply([ keys %h ], ['keep'], 'expired: not in keys');
}

# Misuse.
{
    require Data::HashMap::Shared::II;
    my $line = __LINE__ + 1;
    eval { tie my %h, 'Data::HashMap::Shared::SS' };
    like($@, qr/^Usage: tie my %hash, 'Data::HashMap::Shared::SS', \$path, \$max_entries/,
        'tie without arguments croaks with usage');
    my $ii = Data::HashMap::Shared::II->new(tmp_path('ii'), 10);
    eval { tie my %h, 'Data::HashMap::Shared::SS', $ii };
    like($@, qr/Data::HashMap::Shared::SS/, 'tie of a map of another class croaks');
    eval { tie my %h, 'Data::HashMap::Shared::II', tmp_path('zero'), 0 };
    like($@, qr/max_entries must be an integer/, 'bad arguments croak as new does');
    $ii->unlink;
}

done_testing;
