use strict;
use warnings;
use Test::More;
use Time::HiRes ();
use lib 't/lib';
use DHMSTest;
use DHMSRedis;

# Pins the failure model of SPEC section 9 (a failure is never a miss):
# - an unreachable location croaks at open, within the connect timeout,
#   naming the location with its password masked;
# - a server killed mid-run: every following call croaks (reads too: never
#   undef), naming the location; once a server is back on the same
#   address, the next call reconnects and works (the metadata is recreated
#   if the restart lost it);
# - a server that stops answering: the call croaks after the read timeout
#   (?timeout=SECONDS), and the handle recovers when it answers again;
# - a wrong password croaks without showing it; the right one works.

require Data::HashMap::Shared::SI;
my $class = 'Data::HashMap::Shared::SI';

my $srv = own_server();
my $base = "redis+unix://$srv->{sock}";

# unreachable
for my $case (
    [ 'refused TCP port', 'redis://user:hunter22@127.0.0.1:1/0?connect_timeout=2#m' ],
    [ 'missing socket',   "redis+unix://$srv->{dir}/nope.sock?pass=hunter22&connect_timeout=2#m" ],
    [ 'blackhole address', 'redis://user:hunter22@10.255.255.1:6379/0?connect_timeout=1#m' ],
) {
    my ($name, $loc) = @$case;
    my $t0 = Time::HiRes::time();
    my $err = croak_msg(sub { under_alarm(30, sub { $class->new($loc, 10) }) });
    my $took = Time::HiRes::time() - $t0;
    like($err, qr/^\Q$class\E: .*cannot connect/, "$name: croaks at open");
    unlike($err, qr/hunter22/, '... without the password');
    like($err, qr/\*\*\*/, '... which is masked');
    ok($took < 10, sprintf '... within the timeout (%.2fs)', $took);
}

# killed and restarted
my $loc = "$base?timeout=3#restart";
my $m = $class->new($loc, 100);
ok($m->put('a', 1), 'put before the crash');
is($m->incr('n'), 1, 'incr before the crash');
DHMSRedis::kill_server($srv);
for my $op (
    [ get => sub { $m->get('a') } ],
    [ exists => sub { $m->exists('a') } ],
    [ size => sub { $m->size } ],
    [ put => sub { $m->put('b', 2) } ],
    [ incr => sub { $m->incr('n') } ],
    [ keys => sub { my @k = $m->keys } ],
    [ each => sub { my @kv = $m->each } ],
) {
    my $err = croak_msg(sub { under_alarm(30, $op->[1]) });
    like($err, qr/^\Q$class\E: \Q$base\E.*#restart: .*(connection lost|cannot connect)/, "server down: $op->[0] croaks naming the location");
}
DHMSRedis::restart_server($srv);
is($m->get('a'), undef, 'server back (it saved nothing): the next call reconnects and works');
ok($m->put('a', 5), 'writes work again');
is($m->incr('n'), 1, 'counters start over on the empty server');
is($m->max_entries, 100, 'the metadata was recreated');
my $again = $class->new($loc, 1);
is($again->max_entries, 100, '... so another process attaches to it');

# a server that stops answering
my $slow = $class->new("$base?timeout=1#stall", 10);
$slow->put('x', 1);
kill 'STOP', $srv->{pid};
my $t0 = Time::HiRes::time();
my $err = croak_msg(sub { under_alarm(30, sub { $slow->get('x') }) });
my $took = Time::HiRes::time() - $t0;
kill 'CONT', $srv->{pid};
like($err, qr/no reply within the timeout \(1s/, 'a stalled server: the read croaks after the timeout');
ok($took >= 0.9 && $took < 10, sprintf '... after %.2fs', $took);
is($slow->get('x'), 1, 'the next call reconnects and works');

# passwords
system("redis-cli -s $srv->{sock} CONFIG SET requirepass Sekrit-99 >/dev/null") == 0
    or BAIL_OUT('redis-cli CONFIG SET requirepass failed');
$err = croak_msg(sub { $class->new("$base?pass=wrong-pass-77#pw", 10) });
like($err, qr/\Q$class\E: .*pass=\*\*\*/, 'a wrong password croaks, masked');
unlike($err, qr/wrong-pass-77/, '... the password is not shown');
my $pw = $class->new("$base?pass=Sekrit-99#pw", 10);
ok($pw->put('k', 1), 'the right password works');
is($pw->get('k'), 1, '... reads back');
my $oops = croak_msg(sub { $pw->incr_by('k', 9223372036854775807) });
unlike($oops, qr/Sekrit-99/, 'no message of that handle shows the password');
system("redis-cli -s $srv->{sock} -a Sekrit-99 --no-auth-warning CONFIG SET requirepass '' >/dev/null");

done_testing;
