use strict;
use warnings;
use Test::More;
use lib 't/lib';
use DHMSTest;
use DHMSRedis;

# Pins SPEC section 9 on a real server, for every variant:
# - every operation of section 5 (but the TTL ones: t/92-redis-ttl.t), in
#   both calling styles, through the suite's shared helper exercise_map;
# - the same on new_sharded over a location (each shard its own map, its
#   own hash tag), and the shard count recorded on the server;
# - exact max_entries (put false, counters croak "map is full"); int16 and
#   int32 range croaks, on values and on counter results (nothing stored);
#   int64 overflow of incr croaks; max/min as int64 at both ends;
# - the UTF-8 flag of keys and values round-trips; NUL and the empty string;
# - long values through every operation that returns one (the retry with a
#   bigger buffer must not run a take or a swap twice);
# - the variant is recorded on the server: another class croaks "variant
#   mismatch"; Class->unlink(location) and $map->unlink remove the map;
# - what a server cannot hold is refused at open (max_size, arena_cap,
#   new_readonly, rediss:// without TLS) or by the method (freeze), and
#   the messages say what to use instead.

my $base = redis_base();
diag 'server: ' . ($ENV{DHMS_TEST_REDIS} ? "DHMS_TEST_REDIS=$ENV{DHMS_TEST_REDIS}" : server_version());
eval "require $_->{class}; 1" or die $@ for @VARIANTS;

for_each_variant {
    my ($v) = @_;
    my $loc = map_location("ops-$v->{name}");
    my $m = $v->{class}->new($loc, 1000);
    is($m->max_entries, 1000, 'max_entries');
    is($m->path, $loc, 'path is the location');
    exercise_map($v, $m, 'on a server');
    ok($m->unlink, '$map->unlink removes the map');
    ok(!$v->{class}->unlink($loc), '... and Class->unlink finds nothing then');
};

for_each_variant {
    my ($v) = @_;
    my $loc = map_location("sharded-$v->{name}");
    my $m = $v->{class}->new_sharded($loc, 3, 400);
    exercise_map($v, $m, 'sharded over a server');
    my $n = 0;
    $m->put(vkey($v, $_), vval($v, $_)) and $n++ for 0 .. 299;
    is($n, 300, 'sharded: 300 stored');
    my $sum = 0;
    for my $i (0 .. 2) {
        my $s = $v->{class}->new("$loc.$i", 1);
        $sum += $s->size;
    }
    is($sum, 300, 'each shard is a map of its own on the server; sizes add up');
    like(croak_msg(sub { $v->{class}->new_sharded($loc, 4, 400) }), qr/shard count mismatch/,
        'another shard count croaks');
    $m->clear;
    ok($v->{class}->unlink("$loc.$_"), "unlink shard $_") for 0 .. 2;
} only => [qw(II SS IS SI16)];

subtest 'exact max_entries' => sub {
    my $loc = map_location('full');
    my $m = Data::HashMap::Shared::SI->new($loc, 5);
    ok($m->put("k$_", $_), "put $_") for 1 .. 5;
    ok(!$m->put('k6', 6), 'the 6th key: put is false');
    ok($m->put('k1', 10), 'overwriting is fine when full');
    ok(!$m->add('k7', 7), 'add false when full');
    is($m->swap('k1', 11), 10, 'swap of a present key when full');
    like(croak_msg(sub { $m->swap('k8', 1) }), qr/full|cannot store/, 'swap of a new key croaks when full');
    is($m->get_or_set('k9', 9), undef, 'get_or_set of a new key: undef when full');
    like(croak_msg(sub { $m->incr('k10') }), qr/map is full \(max_entries 5\)/, 'incr of a new key croaks');
    is($m->incr('k2'), 3, 'incr of a present key when full');
    is($m->set_multi(map { ("n$_", $_) } 1 .. 3), 0, 'set_multi stores nothing new when full');
    is($m->size, 5, 'size 5');
    $m->remove('k5');
    is($m->set_multi(n1 => 1, n1 => 2, n2 => 3, k1 => 4), 3, 'set_multi near full: a key repeated in the batch takes one place; the rest is refused');
    is($m->get('n1'), 2, '... the last value of the repeated key');
    ok(!$m->exists('n2'), '... no room for the next new key');
    is($m->get('k1'), 4, '... an existing key is still overwritten');
    $m->remove('n1');
    ok($m->put('k6', 6), 'room again after a remove');
    $m->unlink;
};

subtest 'ranges' => sub {
    for my $c ([ I16 => 'int16', 32767 ], [ I32 => 'int32', 2147483647 ], [ SI16 => 'int16', 32767 ], [ SI32 => 'int32', 2147483647 ]) {
        my ($name, $kind, $max) = @$c;
        my $class = "Data::HashMap::Shared::$name";
        my $m = $class->new(map_location("range-$name"), 100);
        my $k = $name =~ /^S/ ? 'k' : 7;
        like(croak_msg(sub { $m->put($k, $max + 1) }), qr/does not fit $kind/, "$name: put out of range croaks");
        ok(!$m->exists($k), '... nothing stored');
        $m->put($k, $max - 1);
        is($m->incr($k), $max, "$name: incr to the top");
        like(croak_msg(sub { $m->incr($k) }), qr/incr would overflow $kind/, "$name: incr past the top croaks");
        is($m->get($k), $max, '... value unchanged');
        like(croak_msg(sub { $m->incr_by($k, -2 * $max - 2) }), qr/incr_by would overflow $kind/, "$name: incr_by below the bottom croaks");
        is($m->incr_by($k, -2 * $max - 1), -$max - 1, "$name: incr_by to the bottom");
        like(croak_msg(sub { $m->max($k, $max + 1) }), qr/does not fit $kind/, "$name: max with an out-of-range value croaks");
        $m->unlink;
    }
    my $m = Data::HashMap::Shared::II->new(map_location('range-ii'), 100);
    is($m->incr_by(1, 9223372036854775807), 9223372036854775807, 'II: incr_by to int64 max, exact');
    like(croak_msg(sub { $m->incr(1) }), qr/incr would overflow int64/, 'II: overflow croaks');
    is($m->get(1), 9223372036854775807, '... unchanged');
    is($m->decr(2), -1, 'decr of a new key');
    is($m->incr_by(2, -9223372036854775807), -9223372036854775808, 'II: to int64 min, exact');
    like(croak_msg(sub { $m->decr(2) }), qr/decr would overflow int64/, 'II: underflow croaks');
    is($m->max(3, 9223372036854775806), 9223372036854775806, 'max of a new key');
    is($m->max(3, 9223372036854775807), 9223372036854775807, 'max compares int64 exactly (no doubles)');
    is($m->min(3, 9223372036854775806), 9223372036854775806, 'min compares int64 exactly');
    is($m->min(3, -5), -5, 'min with a negative');
    is($m->max(3, -4), -4, 'max across signs');
    is($m->max(3, -10), -4, 'max keeps the larger negative');
    ok($m->cas(3, -4, 12345678901234567), 'cas on an int64');
    is($m->get(3), 12345678901234567, '... exact');
    $m->unlink;
};

subtest 'UTF-8 flags, NUL, empty strings, long values' => sub {
    my $m = Data::HashMap::Shared::SS->new(map_location('bytes'), 100);
    my $uk = "cl\x{e9}\x{263a}";
    my $uv = "v\x{263a}";
    ok($m->put($uk, $uv), 'put a UTF-8 key and value');
    my ($k) = $m->keys;
    ok(utf8::is_utf8($k), 'keys: the key comes back with its flag');
    is($k, $uk, '... same string');
    ok(utf8::is_utf8($m->get($uk)), 'get: the value has its flag');
    my $bytes = "cl\x{e9}";
    ok($m->put($bytes, $bytes), 'a byte string key');
    ok(!utf8::is_utf8($m->get($bytes)), '... its value has no flag');
    my %h = %{ $m->to_hash };
    is(scalar keys %h, 2, 'to_hash: both');
    ok($m->put('', ''), 'the empty key and value');
    is($m->get(''), '', '... read back');
    ok($m->put("a\0b", "\0\x{ff}\0"), 'NUL bytes');
    is($m->get("a\0b"), "\0\x{ff}\0", '... preserved');
    my $long = 'L' x 100_000;
    $m->put('long', $long);
    is(length $m->get('long'), 100_000, 'get of a long value');
    is($m->swap('long', 'short'), $long, 'swap returns the long value (once)');
    is($m->get('long'), 'short', '... and stored the new one');
    $m->put('long', $long);
    is($m->take('long'), $long, 'take of a long value');
    ok(!$m->exists('long'), '... removed once');
    $m->put('long', $long);
    is($m->cas_take('long', $long), $long, 'cas_take of a long value');
    is($m->get_or_set('long2', $long), $long, 'get_or_set stores a long default');
    is($m->get_or_set('long2', 'x'), $long, '... and returns it later');
    my @gt = $m->get_with_ttl('long2');
    is(length $gt[0], 100_000, 'get_with_ttl of a long value');
    my %seen;
    $m->iter_reset;
    while (my ($ek, $ev) = $m->each) { $seen{$ek} = length $ev }
    is($seen{long2}, 100_000, 'each returns the long value');
    $m->unlink;
};

subtest 'variant recorded; refusals' => sub {
    my $loc = map_location('variant');
    my $m = Data::HashMap::Shared::SS->new($loc, 10);
    $m->put('a', 'b');
    like(croak_msg(sub { Data::HashMap::Shared::II->new($loc, 10) }), qr/variant mismatch: map is SS, opened as II/,
        'another variant croaks');
    my $again = Data::HashMap::Shared::SS->new($loc, 99);
    is($again->max_entries, 10, 'attaching ignores the sizing arguments');
    is($again->get('a'), 'b', 'a second handle sees the data');
    like(croak_msg(sub { Data::HashMap::Shared::SS->new(map_location('lru'), 10, 5) }),
        qr/max_size .*cannot be held on a server.*TTL.*maxmemory-policy/, 'max_size is refused, saying what to use');
    like(croak_msg(sub { Data::HashMap::Shared::SS->new(map_location('arena'), 10, 0, 0, 0, 1 << 20) }),
        qr/arena_cap cannot be held on a server/, 'arena_cap is refused');
    like(croak_msg(sub { Data::HashMap::Shared::SS->new_readonly($loc) }), qr/new_readonly needs a frozen map file/,
        'new_readonly is refused');
    like(croak_msg(sub { $m->freeze }), qr/freeze is not available for a map on a server/, 'freeze is refused');
    ok(!$m->frozen, 'not frozen');
    is($m->memfd, -1, 'memfd -1');
    like(croak_msg(sub { Data::HashMap::Shared::SS->new('rediss://localhost:1#m', 10) }), qr/TLS support not built/,
        'rediss:// croaks: no TLS in this build');
    like(croak_msg(sub { Data::HashMap::Shared::SS->new('redis://localhost:1', 10) }), qr/must end with #NAME/,
        'a location without #MAP croaks');
    like(croak_msg(sub { Data::HashMap::Shared::SS->new("$base?timeout=x#m", 10) }), qr/timeout must be a number of seconds/,
        'a bad timeout croaks');
    ok(Data::HashMap::Shared::SS->unlink($loc), 'Class->unlink(location)');
    ok(!Data::HashMap::Shared::SS->unlink($loc), '... false the second time');
    ok(!Data::HashMap::Shared::SS->unlink('redis://127.0.0.1:1#nothing'), 'unlink never dies (unreachable: false)');
};

subtest 'cursor_seek on a server' => sub {
    my $m = Data::HashMap::Shared::SS->new(map_location('seek'), 1000);
    my %want = map { ("k$_" => "v$_") } 1 .. 700;
    $m->set_multi(%want);
    my $c = $m->cursor;
    my @first = map { [ $c->next ] } 1 .. 100;
    ok($c->seek('k500'), 'seek a present key mid-walk');
    my $pairs = walk_pairs(sub { $c->next }, 5000);
    is($pairs->[0][0], 'k500', 'the next step returns it');
    exactly_once_ok($pairs, \%want, 'then every other entry, each once (a new walk from k)');
    ok(!$c->seek('nope'), 'seek of a missing key is false');
    is_deeply([ $c->next ], [], '... and leaves the cursor where it was (at the end)');
    $m->unlink;
};

subtest 'verify finds foreign data' => sub {
    my $loc = map_location('verify');
    my $m = Data::HashMap::Shared::II->new($loc, 10);
    $m->put(1, 2);
    ok($m->verify, 'verify: a good map');
    my ($name) = $loc =~ /#(.*)/;
    my $sock = $base =~ m{^redis\+unix://([^?#]+)} ? $1 : undef;
    SKIP: {
        skip 'needs the unix socket of the server for redis-cli', 1 unless $sock && `redis-cli -v 2>/dev/null`;
        my $out = `redis-cli -s '$sock' HSET 'dhms:{$name}:data' x y 2>&1`;
        $? == 0 or die "redis-cli failed: $out";
        like(croak_msg(sub { $m->verify }), qr/verify: key is not an integer: x/, 'verify names the problem');
    }
    $m->unlink;
};

done_testing;
