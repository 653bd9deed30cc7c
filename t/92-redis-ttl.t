use strict;
use warnings;
use Test::More;
use Time::HiRes ();
use lib 't/lib';
use DHMSTest;
use DHMSRedis;

# Pins expiry (SPEC sections 5 and 6) on a server map:
# - the default TTL: an entry is invisible once its time is up (get, exists,
#   keys, each, cursors, size, get_multi), and removed by flush_expired,
#   which counts it in stat_expired;
# - put_ttl / add_ttl / update_ttl with an entry's own lifetime, 0 =
#   permanent; a write that is not a TTL write refreshes an entry's TTL to
#   the default and leaves a permanent entry permanent;
# - ttl_remaining, get_with_ttl, touch, persist, set_ttl;
# - flush_expired_partial(limit): (removed, done);
# - an expired entry does not count against max_entries;
# - on a map without TTL: the _ttl writers croak, touch/persist/set_ttl are
#   false, ttl_remaining is undef.

redis_base();
require Data::HashMap::Shared::SS;
require Data::HashMap::Shared::SI;

my $m = Data::HashMap::Shared::SS->new(map_location('ttl'), 10, 0, 2);
is($m->ttl, 2, 'ttl');
ok($m->put('a', 'A'), 'put (default TTL 2s)');
ok($m->put_ttl('p', 'P', 0), 'put_ttl 0: permanent');
ok($m->put_ttl('long', 'L', 100), 'put_ttl 100');
my $r = $m->ttl_remaining('a');
ok($r >= 1 && $r <= 2, "ttl_remaining of a fresh entry is 1..2 (got $r)");
is($m->ttl_remaining('p'), 0, 'ttl_remaining 0 for a permanent entry');
ok($m->ttl_remaining('long') > 90, 'ttl_remaining of the 100s entry');
is($m->ttl_remaining('nope'), undef, 'ttl_remaining undef for a missing key');
my ($gv, $gt) = $m->get_with_ttl('long');
is($gv, 'L', 'get_with_ttl value');
ok($gt > 90, 'get_with_ttl seconds');
is_deeply([ $m->get_with_ttl('nope') ], [], 'get_with_ttl of a missing key: ()');
ok($m->put('p', 'P2'), 'put over a permanent entry');
is($m->ttl_remaining('p'), 0, '... stays permanent');
ok($m->add_ttl('b', 'B', 1), 'add_ttl');
ok(!$m->add_ttl('b', 'B', 1), 'add_ttl of a present key is false');
ok($m->update_ttl('b', 'B2', 100), 'update_ttl');
ok($m->ttl_remaining('b') > 90, '... sets the lifetime');
ok(!$m->update_ttl('nope', 'x', 5), 'update_ttl of a missing key is false');
ok($m->persist('b'), 'persist');
is($m->ttl_remaining('b'), 0, '... permanent');
ok($m->set_ttl('b', 1), 'set_ttl');
ok($m->ttl_remaining('b') >= 1, '... has a lifetime again');
ok(!$m->persist('nope'), 'persist of a missing key is false');
ok($m->put('c', 'C'), 'c with the default TTL');

Time::HiRes::sleep(2.3);
is($m->get('a'), undef, 'expired: get undef');
ok(!$m->exists('a'), 'expired: exists false');
ok(!$m->touch('a'), 'expired: touch false');
is_deeply([ sort $m->keys ], [qw(long p)], 'keys skip expired entries');
is($m->size, 2, 'size counts live entries only');
my %each;
$m->iter_reset;
while (my ($k, $v) = $m->each) { $each{$k} = $v }
is_deeply(\%each, { long => 'L', p => 'P2' }, 'each skips expired entries');
my $c = $m->cursor;
my @ck;
while (my ($k) = $c->next) { push @ck, $k }
is_deeply([ sort @ck ], [qw(long p)], 'cursors skip expired entries');
is_deeply([ $m->get_multi(qw(a long b)) ], [ undef, 'L', undef ], 'get_multi skips expired entries');
is($m->flush_expired, 2, 'flush_expired removes the 2 expired entries left (touch removed the one it met)');
is($m->stat_expired, 3, 'stat_expired counts all 3');
is($m->flush_expired, 0, 'nothing left to flush');

ok($m->touch('long'), 'touch a live entry');
ok($m->ttl_remaining('long') <= 2, '... resets it to the default TTL');
ok($m->put_ttl("x$_", $_, 1), "x$_ for 1s") for 1 .. 5;
Time::HiRes::sleep(2.2);
my ($n1, $d1) = $m->flush_expired_partial(2);
is($n1, 2, 'flush_expired_partial(2) removes 2');
ok(!$d1, '... not done');
my ($n2, $d2) = $m->flush_expired_partial(100);
ok($n2 >= 3, "... the rest next ($n2)");
ok($d2, '... done');

# expired entries make room
my $f = Data::HashMap::Shared::SI->new(map_location('ttl-full'), 3, 0, 100);
ok($f->put_ttl("k$_", $_, 1), "k$_ for 1s") for 1 .. 3;
ok(!$f->put('k4', 4), 'full');
Time::HiRes::sleep(2.2);
ok($f->put('k4', 4), 'expired entries do not count against max_entries');
is($f->incr('k5'), 1, 'counters too');
is($f->size, 2, 'size 2');
my $t = $f->ttl_remaining('k5');
ok($t > 90, "a counter's new key gets the default TTL ($t)");
$f->unlink;

my $p = Data::HashMap::Shared::SS->new(map_location('nottl'), 10);
like(croak_msg(sub { $p->put_ttl('a', 'b', 5) }), qr/put_ttl needs a map created with a TTL/, 'put_ttl on a map without TTL croaks');
like(croak_msg(sub { $p->add_ttl('a', 'b', 5) }), qr/add_ttl needs a map created with a TTL/, 'add_ttl too');
$p->put('a', 'b');
ok(!$p->touch('a'), 'touch false without TTL');
ok(!$p->persist('a'), 'persist false without TTL');
ok(!$p->set_ttl('a', 5), 'set_ttl false without TTL');
is($p->ttl_remaining('a'), undef, 'ttl_remaining undef without TTL');
is_deeply([ $p->flush_expired_partial(10) ], [ 0, 1 ], 'flush_expired_partial without TTL: (0, done)');
$p->unlink;
$m->unlink;

done_testing;
