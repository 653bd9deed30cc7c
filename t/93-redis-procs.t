use strict;
use warnings;
use Test::More;
use POSIX ();
use lib 't/lib';
use DHMSTest;
use DHMSRedis;

# Pins SPEC sections 7 and 9 for processes sharing a server map:
# - 4 processes x 2,500 incr on 8 shared keys (half through an inherited
#   handle, half through their own): the totals are exact; the same for
#   max (the largest value wins) and for cas loops (no update lost);
# - a forked child keeps using its parent's handle (the socket is never
#   shared: the child opens its own connection), while the parent uses it
#   too; both see each other's writes;
# - another process attaching by location sees the data at once;
# - each and cursors return every entry present for the whole walk exactly
#   once while another process inserts and removes thousands of keys (the
#   server's hash table grows, HSCAN may repeat entries: the handle
#   de-duplicates);
# - 4 processes draining one map with pop and drain take every entry
#   exactly once (a work queue across hosts);
# - the cookbook's request counters (eg/request-counters.pl) given a
#   location instead of a file: the same totals, with nothing else changed.

redis_base();
require Data::HashMap::Shared::SI;
require Data::HashMap::Shared::SS;
require Data::HashMap::Shared::IS;

my $loc = map_location('counters');
my $m = Data::HashMap::Shared::SI->new($loc, 1000);
$m->put('warm', 1);    # the parent's connection exists before the fork
children_ok(4, sub {
    my ($i) = @_;
    my $h = $i % 2 ? Data::HashMap::Shared::SI->new($loc, 1000) : $m;
    for my $n (1 .. 2500) {
        $h->incr('c' . ($n % 8));
        $h->max('top', $i * 10_000 + $n);
    }
}, '4 processes counting', alarm => 120);
my $sum = 0;
$sum += $m->get("c$_") for 0 .. 7;
is($sum, 10_000, '4 x 2,500 incr: exact total');
is($m->get('top'), 32_500, 'max: the largest value of any process');

children_ok(3, sub {
    my $h = Data::HashMap::Shared::SI->new($loc, 1000);
    for (1 .. 300) {
        while (1) {
            my $old = $h->get('cas') // 0;
            last if ($old == 0 && $h->add('cas', 1)) || $h->cas('cas', $old, $old + 1);
        }
    }
}, '3 processes in cas loops', alarm => 120);
is($m->get('cas'), 900, 'cas loops: no update lost');

# a forked child uses the parent's handle while the parent does too
my $pid = spawn_child(sub {
    for (1 .. 2000) { $m->incr('shared') }
    $m->put('from-child', $$);
}, alarm => 60);
$m->incr('shared') for 1 .. 2000;
waitpid($pid, 0);
is($?, 0, 'the child used the inherited handle without error');
is($m->get('shared'), 4000, 'parent and child on one handle: both counted');
is($m->get('from-child'), $pid, 'the parent sees the child\'s write');

my ($st, $out) = run_in_child(sub {
    my $h = Data::HashMap::Shared::SI->new($loc, 5);
    join ',', $h->get('shared'), $h->max_entries, $h->size;
});
is($out, 'ok:4000,1000,' . $m->size, 'another process attaching by location sees the data (and the sizing)');
$m->unlink;

# exactly once while another process churns
my $il = map_location('iterate');
my $s = Data::HashMap::Shared::SS->new($il, 100_000);
my %want = map { ("stable$_" => "v$_") } 1 .. 3000;
is($s->set_multi(%want), 3000, 'set_multi of 3,000 stable entries');
my %allowed = map { ("churn$_" => "c$_") } 1 .. 30_000;
pipe(my $r, my $w) or die $!;
my $churn = start_child(sub {
    close $r;
    my $h = Data::HashMap::Shared::SS->new($il, 1);
    syswrite $w, 'go';
    close $w;
    my $n = 0;
    for my $round (1 .. 3) {
        for my $i (1 .. 30_000) {
            $h->put("churn$i", "c$i");
            $h->remove('churn' . ($i - 500)) if $i > 500 && $i % 3;
            $n++;
        }
        $h->remove_multi(map { "churn$_" } 1 .. 30_000);
    }
    $n;
}, alarm => 300);
close $w;
sysread $r, my $go, 2;
my ($walks, $ok) = (0, 1);
for my $round (1 .. 3) {
    $s->iter_reset;
    $ok &&= exactly_once_ok(walk_pairs(sub { $s->each }, 200_000), \%want, "each round $round: stable entries exactly once", \%allowed);
    my $c = $s->cursor;
    $ok &&= exactly_once_ok(walk_pairs(sub { $c->next }, 200_000), \%want, "cursor round $round: stable entries exactly once", \%allowed);
    $walks += 2;
}
my ($cst, $cout) = finish_child($churn);
is($cst, 0, 'the churning process ended well');
like($cout, qr/^ok:\d+/, "... after $cout writes");
$s->unlink;

# a work queue: 4 processes drain one map, every entry taken exactly once
my $ql = map_location('queue');
my $q = Data::HashMap::Shared::IS->new($ql, 10_000);
is($q->set_multi(map { ($_ => "job$_") } 1 .. 2000), 2000, '2,000 jobs queued');
pipe(my $jr, my $jw) or die $!;
children_ok(4, sub {
    my ($i) = @_;
    close $jr;
    my $h = $i % 2 ? Data::HashMap::Shared::IS->new($ql, 1) : $q;
    my @got;
    while (1) {
        my @kv = $i % 2 ? $h->drain(7) : $h->pop;
        last unless @kv;
        push @got, $kv[ 2 * $_ ] . '=' . $kv[ 2 * $_ + 1 ] for 0 .. @kv / 2 - 1;
    }
    syswrite $jw, join('', map { "$_\n" } @got);
}, '4 processes draining', alarm => 120);
close $jw;
my @taken = map { chomp; $_ } <$jr>;
my %count;
$count{$_}++ for @taken;
is(scalar @taken, 2000, 'pop and drain took 2,000 entries in all');
is(scalar(grep { $count{"$_=job$_"} != 1 } grep { $count{"$_=job$_"} } 1 .. 2000) + scalar(grep { !$count{"$_=job$_"} } 1 .. 2000), 0,
    '... every job exactly once, with its value');
is($q->size, 0, 'the queue is empty');
$q->unlink;

# the cookbook recipe, moved to the server by one string
my $rl = map_location('recipe');
my @out = `$^X -Mblib eg/request-counters.pl '$rl' 2>&1`;
is($?, 0, 'eg/request-counters.pl with a location exits 0') or diag @out;
ok((grep { /^requests: 10000$/ } @out), 'the recipe counts 10,000 requests on the server') or diag @out;
ok((grep { /^worker:4: 2500$/ } @out), '... per worker too');
is(Data::HashMap::Shared::SI->new($rl, 1)->get('requests'), 10_000, 'the totals are on the server for any process');
ok(Data::HashMap::Shared::SI->unlink($rl), 'removed');

done_testing;
