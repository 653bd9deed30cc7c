use strict;
use warnings;
use Test::More;
use POSIX ();
use lib 't/lib';
use DHMSTest;

# Pins new_sharded (SPEC section 3, and section 5 on a sharded map):
# - files "$prefix.0" .. "$prefix.(N-1)" and no other; path undef, memfd -1,
#   unlink false; shards from 1 to 1024;
# - max_entries, max_size and arena_cap apply to each shard, as in the C
#   implementation (4 shards of 1000 hold 4000 entries; each shard fills up
#   on its own: a 4-shard map of 10 holds exactly 40), and max_entries,
#   max_size, arena_cap, mmap_size and stats report the sums; ttl, lru_skip
#   and file_mode apply to every shard;
# - the shard count is recorded: attaching with another count croaks "shard
#   count mismatch"; attaching with the same count ignores the other
#   arguments;
# - every operation works, in both calling styles, on all ten variants;
# - keys are routed by hash over every shard, and each shard file is a map
#   of its own whose numbers add up to the sharded map's: size, capacity,
#   tombstones, mmap_size, arena_used, stat_evictions, stat_expired (and
#   stats agrees with the methods);
# - each and cursors chain across the shards with the exactly-once
#   guarantee while this process inserts and removes many other keys (the
#   tables grow and shrink), and while it removes the keys it walks;
# - batches route per key: get_multi returns values in argument order;
#   pop/drain empty the map, every entry exactly once;
# - two writer processes (inherited and own handle) each doing 20,000 incr
#   on keys spread over the shards lose nothing, nor do writers of
#   distinct keys; sync and verify cover every shard; clear empties every
#   shard.

eval "require $_->{class}; 1" or die $@ for @VARIANTS;

my @SOME = qw(II SS IS SI16);

sub shard_files { my ($prefix, $n) = @_; map { "$prefix.$_" } 0 .. $n - 1 }

# Each shard file attached as a map of its own.
sub shards_of {
    my ($v, $prefix, $n) = @_;
    return map { $v->{class}->new($_, 1) } shard_files($prefix, $n);
}

sub sum { my $t = 0; $t += $_ for @_; $t }

# ---------------------------------------------------------------------------
for_each_variant {
    my ($v) = @_;
    my $prefix = tmp_path("sh-$v->{name}");
    my $m = $v->{class}->new_sharded($prefix, 4, 1000);
    isa_ok($m, $v->{class});
    ok((grep { -f $_ } shard_files($prefix, 4)) == 4, 'files $prefix.0 .. $prefix.3 exist');
    ok(!-e "$prefix.4" && !-e $prefix, '... and no other');
    is($m->path, undef, 'path is undef');
    ok(!$m->unlink, 'unlink returns false');
    ok((grep { -f $_ } shard_files($prefix, 4)) == 4, '... and removes nothing');
    is($m->memfd, -1, 'memfd is -1');
    is($m->max_entries, 4000, 'max_entries 4000 (4 shards x 1000)');
    ok($m->sync, 'sync returns true');

    $m->put(vkey($v, $_), vval($v, $_)) for 0 .. 399;
    my @sh = shards_of($v, $prefix, 4);
    my @sizes = map { $_->size } @sh;
    is(sum(@sizes), 400, 'the shard files hold the 400 entries between them');
    ok(!(grep { $_ == 0 } @sizes), "every shard got some keys (@sizes)");
    is($m->size, 400, 'size is the sum');
    is($m->capacity, sum(map { $_->capacity } @sh), 'capacity is the sum');
    is($m->tombstones, sum(map { $_->tombstones } @sh), 'tombstones is the sum');
    is($m->arena_used, sum(map { $_->arena_used } @sh), 'arena_used is the sum');
    is($m->mmap_size, sum(map { -s $_ } shard_files($prefix, 4)), 'mmap_size is the sum of the file sizes');
    is_deeply([ map { $_->max_entries } @sh ], [ (1000) x 4 ], 'each shard has max_entries 1000');
    my $st = $m->stats;
    is($st->{$_}, $m->$_, "stats $_ agrees") for qw(size capacity tombstones mmap_size arena_used arena_cap
        max_entries max_size ttl stat_evictions stat_expired stat_recoveries);
    is($st->{frozen}, 0, 'stats frozen 0');
    is($st->{readonly}, 0, 'stats readonly 0');

    croaks_ok($v, sub { $v->{class}->new_sharded($prefix, 3, 1000) }, qr/shard count mismatch/, 'attaching as 3 shards croaks');
    croaks_ok($v, sub { $v->{class}->new_sharded($prefix, 5, 1000) }, qr/shard count mismatch/, 'attaching as 5 shards croaks');
    croaks_ok($v, sub { $v->{class}->new_sharded($prefix, 1, 1000) }, qr/shard count mismatch/, 'attaching as 1 shard croaks');
    my $again = $v->{class}->new_sharded($prefix, 4, 50, 10, 60);
    is($again->max_entries, 4000, 'attaching with the same count ignores the sizes');
    is($again->max_size, 0, '... max_size from the files');
    is($again->ttl, 0, '... ttl from the files');
    is($again->size, 400, '... and sees the entries');
    my @bad = grep { ($again->get(vkey($v, $_)) // '') ne vval($v, $_) } 0 .. 399;
    is_deeply(\@bad, [], '... every one, routed to the same shard');
    ok($m->verify, 'verify');
    $m->clear;
    is($m->size, 0, 'clear');
    is_deeply([ map { $_->size } @sh ], [ 0, 0, 0, 0 ], '... empties every shard');

    # Sizing is per shard, exact.
    my $sp = tmp_path("small-$v->{name}");
    my $small = $v->{class}->new_sharded($sp, 4, 10);
    is($small->max_entries, 40, 'new_sharded(4 shards, 10): max_entries 40');
    my $stored = grep { $small->put(vkey($v, $_), vval($v, $_)) } 0 .. 399;
    is($stored, 40, '... each shard fills up on its own: exactly 40 of 400 keys stored');
    is($small->size, 40, '... size 40');
    is_deeply([ map { $_->size } shards_of($v, $sp, 4) ], [ (10) x 4 ], '... 10 in every shard');

    my $p3 = tmp_path("args-$v->{name}");
    my $a = $v->{class}->new_sharded($p3, 3, 1000, 100, 60, 5, 1 << 20, 0640);
    is($a->max_entries, 3000, '3 shards of 1000: max_entries 3000');
    is($a->max_size, 300, '... max_size 300');
    is($a->ttl, 60, '... ttl 60');
    is($a->arena_cap, 3 << 20, '... arena_cap 3 x 2**20');
    is($a->stats->{$_}, $a->$_, "... stats $_ is the sum too") for qw(max_entries max_size arena_cap mmap_size);
    is($a->stats->{lru_skip}, 5, '... lru_skip 5');
    is_deeply([ map { sprintf '%04o', (stat $_)[2] & 07777 } shard_files($p3, 3) ], [ ('0640') x 3 ], '... every file mode 0640');
    my @s3 = shards_of($v, $p3, 3);
    is_deeply([ map { [ $_->max_entries, $_->max_size, $_->ttl, $_->arena_cap ] } @s3 ],
        [ ([ 1000, 100, 60, 1 << 20 ]) x 3 ], '... every shard: 1000 entries, max_size 100, ttl 60, arena_cap 2**20');
} only => \@SOME;

subtest 'shard counts' => sub {
    my $v = variant('SS');
    for my $n (0, 1025, -1, 'x', 2.5) {
        my $p = tmp_path('count');
        croaks_ok($v, sub { $v->{class}->new_sharded($p, $n, 100) }, qr/shards/, "$n shards croaks");
        ok(!-e "$p.0", '... and creates no file');
    }
    my $one = $v->{class}->new_sharded(tmp_path('one'), 1, 100);
    ok($one->put('a', 'b') && $one->get('a') eq 'b', '1 shard works');
    my $p = tmp_path('many');
    my $many = $v->{class}->new_sharded($p, 64, 100);
    $many->put("k$_", "v$_") for 1 .. 1000;
    is($many->size, 1000, '64 shards hold 1000 keys');
    ok(-e "$p.63" && !-e "$p.64", '... in 64 files');
    is(scalar(my @k = $many->keys), 1000, '... keys returns them all');
};

# ---------------------------------------------------------------------------
# Every operation, both calling styles, all ten variants.
for_each_variant {
    my ($v) = @_;
    my $m = $v->{class}->new_sharded(tmp_path("ops-$v->{name}"), 4, 1000);
    exercise_map($v, $m, 'sharded map: every operation');
    my $one = $v->{class}->new_sharded(tmp_path("ops1-$v->{name}"), 1, 1000);
    exercise_map($v, $one, '1 shard: every operation');
};

# ---------------------------------------------------------------------------
# Statistics add up: LRU evictions and TTL expiry happen per shard.
my $EXPIRY_PREFIX = {};
for_each_variant {
    my ($v) = @_;
    my $lru = $v->{class}->new_sharded(tmp_path("lru-$v->{name}"), 4, 100, 2);
    is($lru->max_size, 8, 'LRU 4 shards, max_size 2 each: max_size 8');
    $lru->put(vkey($v, $_), vval($v, $_)) for 0 .. 199;
    is($lru->size, 8, '200 inserts: size 8 (2 per shard)');
    is($lru->stat_evictions, 192, 'stat_evictions is the sum: 192');
    is($lru->stats->{stat_evictions}, 192, '... stats agrees');

    my $prefix = tmp_path("ttl-$v->{name}");
    my $t = $v->{class}->new_sharded($prefix, 4, 1000, 0, 3600);
    $t->put_ttl(vkey($v, $_), vval($v, $_), 1) for 0 .. 39;
    $t->put(vkey($v, $_), vval($v, $_)) for 40 .. 49;
    $EXPIRY_PREFIX->{ $v->{name} } = [ $t, $prefix ];
} only => \@SOME;

sleep 2;    # the 1-second entries above are expired now

for_each_variant {
    my ($v) = @_;
    my ($t, $prefix) = @{ $EXPIRY_PREFIX->{ $v->{name} } };
    my @gone = grep { defined $t->get(vkey($v, $_)) } 0 .. 39;
    is_deeply(\@gone, [], 'expired entries are invisible on every shard');
    is($t->flush_expired, 40, 'flush_expired removes the 40 expired entries of all shards');
    is($t->stat_expired, 40, 'stat_expired is the sum: 40');
    is($t->size, 10, 'size 10');
    is(sum(map { $_->stat_expired } shards_of($v, $prefix, 4)), 40, '... the shard files agree');
    ok($t->verify, 'verify');
} only => \@SOME;

# ---------------------------------------------------------------------------
# each and cursors chain across shards, exactly once, while this process
# inserts and removes many other keys.

my $BASE = 2000;
sub base_want { my ($v) = @_; +{ map { (vkey($v, $_) => '' . vval($v, $_)) } 0 .. $BASE - 1 } }

# walk_with_churn($v, $m, $next): the pairs of a walk during which every
# 100 steps 200 new keys are put and the previous 200 removed, and at two
# points 4,000 keys are put and removed again (the tables grow, then shrink).
sub walk_with_churn {
    my ($v, $m, $next) = @_;
    my (@pairs, @live, %allowed);
    my $j = 10_000;
    my ($grew, $cap0) = (0, $m->capacity);
    my $put = sub {
        my $k = vkey($v, $j);
        $m->put($k, vval($v, $j)) or die "churn put $j failed\n";
        $allowed{$k} = '' . vval($v, $j);
        $j++;
        return $k;
    };
    while (my ($k, $x) = $next->()) {
        push @pairs, [ $k, $x ];
        last if @pairs > 20 * $BASE;
        my $n = @pairs;
        if ($n % 100 == 0) {
            $m->remove($_) or die "churn remove failed\n" for @live;
            @live = map { $put->() } 1 .. 200;
        }
        if ($n == 500 || $n == 1500) {
            my @big = map { $put->() } 1 .. 4000;
            $grew++ if $m->capacity > $cap0;
            $m->remove($_) or die "churn remove failed\n" for @big;
        }
    }
    $m->remove($_) for @live;
    return (\@pairs, \%allowed, $grew);
}

for_each_variant {
    my ($v) = @_;
    my $m = $v->{class}->new_sharded(tmp_path("walk-$v->{name}"), 4, 5_000);
    $m->put(vkey($v, $_), vval($v, $_)) for 0 .. $BASE - 1;
    my $want = base_want($v);
    my $ops = kw_ops($v);
    my $cnext = kw_compile($v, 'shm_PFX_cursor_next $_[0]');
    my %walks = (
        'each (method)'    => sub { $m->iter_reset; my $f = sub { $m->each }; $f },
        'each (keyword)'   => sub { $ops->{iter_reset}->($m); my $f = sub { $ops->{each}->($m) }; $f },
        'cursor (method)'  => sub { my $c = $m->cursor; sub { $c->next } },
        'cursor (keyword)' => sub { my $c = $m->cursor; sub { $cnext->($c) } },
    );
    for my $name (sort keys %walks) {
        my ($pairs, $allowed, $grew) = walk_with_churn($v, $m, $walks{$name}->());
        exactly_once_ok($pairs, $want, "$name: every base entry exactly once while 13,000 other keys came and went", $allowed);
        ok($grew, "$name: ... the tables grew during the walk");
        is($m->size, $BASE, "$name: ... and only the base entries are left");
    }

    # Removing the walked keys: still each exactly once, and the map ends empty.
    $m->iter_reset;
    my @pairs;
    while (my ($k, $x) = $m->each) {
        push @pairs, [ $k, $x ];
        last if @pairs > 2 * $BASE;
        $m->remove($k) or die "remove $k failed";
    }
    exactly_once_ok(\@pairs, $want, 'each while removing each returned key: every entry once');
    is($m->size, 0, '... the map is empty');
    $m->put(vkey($v, $_), vval($v, $_)) for 0 .. $BASE - 1;
    my $c = $m->cursor;
    @pairs = ();
    while (my ($k, $x) = $c->next) {
        push @pairs, [ $k, $x ];
        last if @pairs > 2 * $BASE;
        $m->remove($k) or die "remove $k failed";
    }
    exactly_once_ok(\@pairs, $want, 'cursor while removing each returned key: every entry once');
    is($m->size, 0, '... the map is empty');

    # Two cursors and each are independent; seek reaches keys of every shard.
    $m->put(vkey($v, $_), vval($v, $_)) for 0 .. $BASE - 1;
    my ($c1, $c2) = ($m->cursor, $m->cursor);
    $m->iter_reset;
    my (@p1, @p2, @p3);
    for (1 .. 3 * $BASE) {
        my @a = $c1->next;
        push @p1, [@a] if @a;
        if ($_ % 2) { my @b = $c2->next; push @p2, [@b] if @b }
        if ($_ % 3 == 0) { my @e = $m->each; push @p3, [@e] if @e }
        last if !@a && @p2 == $BASE && @p3 == $BASE;
    }
    exactly_once_ok(\@p1, $want, 'interleaved: cursor 1 every entry once');
    exactly_once_ok(\@p2, $want, 'interleaved: cursor 2 every entry once');
    exactly_once_ok(\@p3, $want, 'interleaved: each every entry once');
    my @miss = grep {
        my $k = vkey($v, $_);
        !($c1->seek($k) && do { my ($gk, $gx) = $c1->next; defined $gk && "$gk" eq "$k" && "$gx" eq vval($v, $_) })
    } map { $_ * 37 } 0 .. 53;
    is_deeply(\@miss, [], 'cursor seek finds 54 keys spread over the shards; next returns each');
    ok(!$c1->seek(vkey($v, 9999)), 'seek of a missing key is false');
} only => \@SOME;

# ---------------------------------------------------------------------------
# Batches route per key; pop and drain empty the map.
for_each_variant {
    my ($v) = @_;
    my $m = $v->{class}->new_sharded(tmp_path("batch-$v->{name}"), 4, 1000);
    is($m->set_multi(map { (vkey($v, $_), vval($v, $_)) } 0 .. 299), 300, 'set_multi of 300 pairs over 4 shards: 300');
    is($m->size, 300, 'size 300');
    my @ask = map { $_ % 7 == 3 ? 500 + $_ : ($_ * 13) % 300 } 0 .. 399;
    my @got = $m->get_multi(map { vkey($v, $_) } @ask);
    is(scalar @got, 400, 'get_multi of 400 keys: 400 values');
    is_deeply([ map { defined $_ ? "$_" : undef } @got ], [ map { $_ >= 500 ? undef : '' . vval($v, $_) } @ask ],
        '... in argument order, undef for the missing ones');
    is_deeply([ $m->get_multi ], [], 'get_multi of nothing');
    is($m->remove_multi(map { vkey($v, $_) } 0 .. 99, 600 .. 620, 0 .. 9), 100, 'remove_multi: 100 removed (missing and repeated keys not counted)');
    is($m->size, 200, 'size 200');

    my $want = { map { (vkey($v, $_) => '' . vval($v, $_)) } 100 .. 299 };
    my @pairs;
    my @d = $m->drain(30);
    is(scalar @d, 60, 'drain 30: 30 pairs');
    push @pairs, map { [ @d[ 2 * $_, 2 * $_ + 1 ] ] } 0 .. 29;
    while (my @p = $m->pop) { push @pairs, [@p]; last if @pairs > 400 }
    exactly_once_ok(\@pairs, $want, 'drain then pop until (): every entry exactly once');
    is($m->size, 0, '... the map is empty');
    is_deeply([ $m->drain(10) ], [], 'drain of an empty map: ()');
    $m->set_multi(map { (vkey($v, $_), vval($v, $_)) } 0 .. 49);
    @d = $m->drain(1000);
    is(scalar @d, 100, 'drain more than size: everything (50 pairs)');
    @d = ();
    $m->set_multi(map { (vkey($v, $_), vval($v, $_)) } 0 .. 49);
    my @s;
    while (my @p = $m->shift) { push @s, [@p]; last if @s > 100 }
    exactly_once_ok(\@s, { map { (vkey($v, $_) => '' . vval($v, $_)) } 0 .. 49 }, 'shift until (): every entry exactly once');
} only => \@SOME;

# ---------------------------------------------------------------------------
# Two writer processes, 20,000 incr each on 64 keys over the shards.
for_each_variant {
    my ($v) = @_;
    my $prefix = tmp_path("incr-$v->{name}");
    my $m = $v->{class}->new_sharded($prefix, 4, 1000);
    my $ops = kw_ops($v);
    children_ok(2, sub {
        my ($i) = @_;
        my $h = $i ? $v->{class}->new_sharded($prefix, 4, 1) : $m;    # own and inherited handles
        for my $n (0 .. 19_999) {
            if ($n % 2) { $ops->{incr}->($h, vkey($v, $n % 64)) }
            else        { $h->incr(vkey($v, $n % 64)) }
        }
    }, '2 processes x 20,000 incr', alarm => 60);
    my @vals = map { $m->get(vkey($v, $_)) // 0 } 0 .. 63;
    my @exp = (0) x 64;
    $exp[ $_ % 64 ] += 2 for 0 .. 19_999;
    is_deeply(\@vals, \@exp, 'every key counted exactly (626 or 624)');
    is(sum(@vals), 40_000, 'total 40,000');
    my @sizes = map { $_->size } shards_of($v, $prefix, 4);
    ok(!(grep { $_ == 0 } @sizes), "the keys are spread over every shard (@sizes)");
    ok($m->verify, 'verify');
} only => [qw(II SI)];

for_each_variant {
    my ($v) = @_;
    my $prefix = tmp_path("writers-$v->{name}");
    my $m = $v->{class}->new_sharded($prefix, 4, 2_500);
    children_ok(2, sub {
        my ($c) = @_;
        my $h = $c ? $v->{class}->new_sharded($prefix, 4, 1) : $m;
        for my $j (0 .. 1999) {
            my $i = $c * 2000 + $j;
            $h->put(vkey($v, $i), vval($v, $i)) or die "put $i failed\n";
            $h->remove(vkey($v, $i - 1)) or die "remove failed\n" if $j % 3 == 1;
        }
    }, '2 writers of distinct keys', alarm => 60);
    my %gone = map { ($_ - 1 => 1) } grep { $_ % 2000 % 3 == 1 } 0 .. 3999;
    my @bad = grep { my $g = $m->get(vkey($v, $_)); $gone{$_} ? defined $g : ($g // '') ne vval($v, $_) } 0 .. 3999;
    is_deeply(\@bad, [], 'every entry as its writer left it');
    is($m->size, 4000 - keys %gone, 'size agrees');
} only => [qw(SS IS)];

done_testing;
