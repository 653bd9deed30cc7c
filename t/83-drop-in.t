use strict;
use warnings;
use Test::More;
use Fcntl qw(O_RDWR);
use lib 't/lib';
use DHMSTest;

# Pins what makes this module a drop-in replacement for the C
# implementation of Data::HashMap::Shared (0.17-0.23) (SPEC sections 3, 5,
# 8 and 10), on all ten variants, in both calling styles, plain and sharded:
# - new_sharded sizes each shard: every shard gets max_entries, max_size and
#   arena_cap, exactly (4 shards of 25 hold exactly 100 entries, 25 in each);
#   max_entries, max_size, arena_cap, mmap_size and stats report the sums;
#   reserve is true up to the sum;
# - a permanent entry stays permanent under every write that is not a TTL
#   write (put, swap, cas, update, get_or_set, incr, decr, incr_by, max, min,
#   set_multi), while put, swap, cas, update and set_multi still refresh an
#   entry with a lifetime to the default; put_ttl, update_ttl, set_ttl and
#   persist change a lifetime;
# - readonly is true for every handle of a frozen map: the one that froze
#   it, one opened before, one opened after, one in another process, a
#   sharded map's;
# - reserve on a frozen map croaks "map is frozen" whatever its argument
#   (also above max_entries, where it would otherwise return false);
# - messages carry the phrases code written for the C implementation
#   matches: "TTL-enabled", "num_shards", "path_prefix", "not frozen",
#   "increment failed" / "decrement failed" / "incr_by failed", and "too
#   small" or "magic" for a file or descriptor that is not a map;
# - the version sorts after 0.23 (decimal and dotted), in every module;
# - the POD has a MIGRATING section naming every deliberate difference.

eval "require $_->{class}; 1" or die $@ for @VARIANTS;
require Data::HashMap::Shared;

my %TTL_OPS = (
    put_ttl => 4, add_ttl => 4, update_ttl => 4, ttl_remaining => 2, persist => 2, set_ttl => 3,
    swap => 3, cas => 4, add => 3, update => 3,
);

# forms() plus the TTL, conditional and (integer values) max/min keywords.
sub all_forms {
    my ($v) = @_;
    return forms_with($v, %TTL_OPS, ($v->{counters} ? (max => 3, min => 3) : ()));
}

sub shard_files { my ($prefix, $n) = @_; map { "$prefix.$_" } 0 .. $n - 1 }
sub sum { my $t = 0; $t += $_ for @_; $t }

# A plain and a sharded map, made by $make->($path_or_prefix, $is_sharded).
sub both_kinds {
    my ($v, $tag, @args) = @_;
    return (
        [ plain   => $v->{class}->new(tmp_path("$tag-$v->{name}"), @args) ],
        [ sharded => $v->{class}->new_sharded(tmp_path("$tag-sh-$v->{name}"), 3, @args) ],
    );
}

# ===========================================================================
# 1. Sharded sizing is per shard.
for_each_variant {
    my ($v) = @_;
    for my $form (forms($v)) {
        my ($style, $op) = @$form;
        my $prefix = tmp_path("size-$style-$v->{name}");
        my $m = $v->{class}->new_sharded($prefix, 4, 25, 0, 0, 0, 1 << 20);
        is($op->{max_entries}->($m), 100, "$style: 4 shards of 25: max_entries 100");
        is($op->{arena_cap}->($m), 4 << 20, "$style: ... arena_cap 4 x 2**20");
        ok($op->{reserve}->($m, 100), "$style: ... reserve 100 is true");
        ok(!$op->{reserve}->($m, 101), "$style: ... reserve 101 is false");
        my $stored = grep { $op->{put}->($m, vkey($v, $_), vval($v, $_)) } 0 .. 399;
        is($stored, 100, "$style: ... exactly 100 of 400 new keys stored");
        is($op->{size}->($m), 100, "$style: ... size 100");
        my @sh = map { $v->{class}->new($_, 1) } shard_files($prefix, 4);
        is_deeply([ map { [ $_->size, $_->max_entries, $_->arena_cap ] } @sh ], [ ([ 25, 25, 1 << 20 ]) x 4 ],
            "$style: ... every shard holds exactly its max_entries 25, arena_cap 2**20");
        is($op->{mmap_size}->($m), sum(map { -s $_ } shard_files($prefix, 4)), "$style: ... mmap_size is the sum of the files");
        my $st = $m->stats;
        is_deeply([ @$st{qw(max_entries max_size arena_cap size mmap_size)} ],
            [ 100, 0, 4 << 20, 100, $op->{mmap_size}->($m) ], "$style: ... stats reports the sums");

        my $lru = $v->{class}->new_sharded(tmp_path("lru-$style-$v->{name}"), 4, 100, 10);
        is($op->{max_size}->($lru), 40, "$style: 4 shards, max_size 10: max_size 40");
        is($op->{max_entries}->($lru), 400, "$style: ... max_entries 400");
        is($lru->stats->{max_size}, 40, "$style: ... stats max_size 40");
    }
};

# ===========================================================================
# 2. A permanent entry stays permanent.
for_each_variant {
    my ($v) = @_;
    my ($k, $x, $y) = (vkey($v, 1), vval($v, 1), vval($v, 2));
    for my $form (all_forms($v)) {
        my ($style, $op) = @$form;
        for my $kind (both_kinds($v, "perm-$style", 1000, 0, 100)) {
            my ($what, $m) = @$kind;
            my $t = "$style, $what";
            # [name, sub { write to key $k, which holds $x }, value afterwards]
            my @writes = (
                [ put        => sub { $op->{put}->($m, $k, $y) }, $y ],
                [ swap       => sub { $op->{swap}->($m, $k, $y) }, $y ],
                [ cas        => sub { $op->{cas}->($m, $k, $x, $y) }, $y ],
                [ update     => sub { $op->{update}->($m, $k, $y) }, $y ],
                [ get_or_set => sub { $op->{get_or_set}->($m, $k, $y) }, $x ],
                [ set_multi  => sub { $m->set_multi($k, $y) }, $y ],
            );
            push @writes, (
                [ incr    => sub { $op->{incr}->($m, $k) }, $x + 1 ],
                [ decr    => sub { $op->{decr}->($m, $k) }, $x - 1 ],
                [ incr_by => sub { $op->{incr_by}->($m, $k, 3) }, $x + 3 ],
                [ max     => sub { $op->{max}->($m, $k, $x + 5) }, $x + 5 ],
                [ min     => sub { $op->{min}->($m, $k, $x - 5) }, $x - 5 ],
            ) if $v->{counters};
            for my $w (@writes) {
                my ($name, $code, $after) = @$w;
                for my $make ([ 'put_ttl 0' => sub { $op->{put_ttl}->($m, $k, $x, 0) } ],
                              [ persist => sub { $op->{put_ttl}->($m, $k, $x, 50); $op->{persist}->($m, $k) } ]) {
                    my ($how, $mk) = @$make;
                    $mk->() or die "$how failed";
                    $code->();
                    is($op->{ttl_remaining}->($m, $k), 0, "$t: permanent by $how, then $name: still permanent");
                    is($op->{get}->($m, $k), $after, "$t: ... $name took effect");
                }
            }
            # A write that is not a TTL write still refreshes a lifetime
            # (SPEC section 5), the counters and max/min included.
            for my $w (grep { $_->[0] =~ /\A(?:put|swap|cas|update|set_multi|incr|decr|incr_by|max|min)\z/ } @writes) {
                my ($name, $code) = @$w;
                $op->{put_ttl}->($m, $k, $x, 5) or die 'put_ttl failed';
                $code->();
                my $left = $op->{ttl_remaining}->($m, $k);
                ok(defined $left && $left > 5 && $left <= 100, "$t: an entry with 5 s left, then $name: the default lifetime")
                    or diag('ttl_remaining ' . ($left // 'undef'));
            }
            # The TTL writes change a lifetime.
            $op->{put_ttl}->($m, $k, $x, 0);
            ok($op->{put_ttl}->($m, $k, $y, 7), "$t: put_ttl 7 of a permanent entry");
            ok(($op->{ttl_remaining}->($m, $k) // 0) >= 1 && $op->{ttl_remaining}->($m, $k) <= 7, "$t: ... 1..7 s left");
            $op->{persist}->($m, $k);
            ok($op->{update_ttl}->($m, $k, $x, 7), "$t: update_ttl 7 of a permanent entry");
            ok(($op->{ttl_remaining}->($m, $k) // 0) >= 1 && $op->{ttl_remaining}->($m, $k) <= 7, "$t: ... 1..7 s left");
            $op->{persist}->($m, $k);
            ok($op->{set_ttl}->($m, $k, 7), "$t: set_ttl 7 of a permanent entry");
            ok(($op->{ttl_remaining}->($m, $k) // 0) >= 1 && $op->{ttl_remaining}->($m, $k) <= 7, "$t: ... 1..7 s left");
            my $k2 = vkey($v, 2);
            ok($op->{add_ttl}->($m, $k2, $x, 0), "$t: add_ttl 0 of a new key");
            $op->{put}->($m, $k2, $y);
            is($op->{ttl_remaining}->($m, $k2), 0, "$t: ... permanent, and put keeps it so");
            $op->{put}->($m, vkey($v, 3), $y);
            my $left = $op->{ttl_remaining}->($m, vkey($v, 3));
            ok(defined $left && $left > 90 && $left <= 100, "$t: put of a new key gives the default lifetime");
            ok($m->verify, "$t: verify");
        }
    }
};

# ===========================================================================
# 3. readonly is true for every handle of a frozen map.
for_each_variant {
    my ($v) = @_;
    my $path = tmp_path("ro-$v->{name}");
    my $m = $v->{class}->new($path, 100);
    my $before = $v->{class}->new($path, 1);
    $m->put(vkey($v, 1), vval($v, 1));
    ok(!$m->readonly && !$before->readonly, 'not readonly before the freeze');
    is($m->stats->{readonly}, 0, '... stats readonly 0');
    ok($m->freeze, 'freeze');
    ok($m->readonly, 'readonly on the handle that froze it');
    is($m->stats->{readonly}, 1, '... stats readonly 1');
    ok($before->readonly, 'readonly on a handle opened before the freeze');
    my $after = $v->{class}->new($path, 1);
    ok($after->readonly, 'readonly on a handle opened after the freeze');
    ok($v->{class}->new_readonly($path)->readonly, 'readonly on a new_readonly handle');
    my ($st, $out) = run_in_child(sub {
        my $own = $v->{class}->new($path, 1);
        join ',', map { $_->readonly ? 1 : 0 } $m, $own;
    }, alarm => 20);
    is($out, 'ok:1,1', 'readonly in another process, inherited and own handle');

    my $prefix = tmp_path("ro-sh-$v->{name}");
    my $sh = $v->{class}->new_sharded($prefix, 3, 100);
    ok(!$sh->readonly, 'sharded: not readonly before the freeze');
    $sh->freeze;
    ok($sh->readonly, 'sharded: readonly after the freeze');
    is($sh->stats->{readonly}, 1, 'sharded: ... stats readonly 1');
    ok($v->{class}->new_sharded($prefix, 3, 1)->readonly, 'sharded: ... and on a handle opened after');
};

# ===========================================================================
# 4. reserve on a frozen map croaks before any other check.
my $FROZEN = qr/map is frozen/;
for_each_variant {
    my ($v) = @_;
    for my $form (forms($v)) {
        my ($style, $op) = @$form;
        my $path = tmp_path("rsv-$style-$v->{name}");
        my $m = $v->{class}->new($path, 100);
        my $other = $v->{class}->new($path, 1);
        my $prefix = tmp_path("rsv-sh-$style-$v->{name}");
        my $sh = $v->{class}->new_sharded($prefix, 3, 100);
        $_->freeze for $m, $sh;
        for my $h ([ 'this handle' => $m ], [ 'another handle' => $other ], [ sharded => $sh ]) {
            my ($what, $x) = @$h;
            for my $n (2**20, 101, 301, 10, 0) {
                croaks_ok($v, sub { $op->{reserve}->($x, $n) }, $FROZEN, "$style, $what: reserve $n croaks 'map is frozen'");
            }
        }
    }
};

# ===========================================================================
# 5. Messages keep the phrases users match.
for_each_variant {
    my ($v) = @_;
    my ($k, $x) = (vkey($v, 1), vval($v, 1));
    for my $form (all_forms($v)) {
        my ($style, $op) = @$form;
        for my $kind (both_kinds($v, "msg-$style", 100)) {
            my ($what, $m) = @$kind;
            croaks_ok($v, sub { $op->{put_ttl}->($m, $k, $x, 5) }, qr/TTL-enabled/, "$style, $what: put_ttl without TTL: 'TTL-enabled'");
            croaks_ok($v, sub { $op->{add_ttl}->($m, $k, $x, 5) }, qr/TTL-enabled/, "$style, $what: add_ttl without TTL: 'TTL-enabled'");
            croaks_ok($v, sub { $op->{update_ttl}->($m, $k, $x, 5) }, qr/TTL-enabled/, "$style, $what: update_ttl without TTL: 'TTL-enabled'");
        }
        next unless $v->{counters};
        for my $kind (both_kinds($v, "full-$style", 2)) {
            my ($what, $m) = @$kind;
            # Fill every shard: a new key then cannot go anywhere.
            my $i = 10;
            $op->{put}->($m, vkey($v, $i), $x), $i++ while $op->{size}->($m) < $op->{max_entries}->($m) && $i < 1000;
            is($op->{size}->($m), $op->{max_entries}->($m), "$style, $what: the map is full");
            my $new = vkey($v, 5);
            croaks_ok($v, sub { $op->{incr}->($m, $new) }, qr/increment failed/, "$style, $what: incr into a full map: 'increment failed'");
            croaks_ok($v, sub { $op->{decr}->($m, $new) }, qr/decrement failed/, "$style, $what: decr into a full map: 'decrement failed'");
            croaks_ok($v, sub { $op->{incr_by}->($m, $new, 4) }, qr/incr_by failed/, "$style, $what: incr_by into a full map: 'incr_by failed'");
            ok(!$op->{exists}->($m, $new), "$style, $what: ... nothing stored");
        }
    }

    my $p = tmp_path("shards-$v->{name}");
    for my $n (0, 1025, -1, 'x', 2.5, undef) {
        croaks_ok($v, sub { $v->{class}->new_sharded($p, $n, 10) }, qr/num_shards/, 'new_sharded with ' . ($n // 'undef') . " shards: 'num_shards'");
    }
    $v->{class}->new_sharded($p, 2, 10);
    croaks_ok($v, sub { $v->{class}->new_sharded($p, 3, 10) }, qr/num_shards/, "re-attaching with another shard count: 'num_shards'");
    croaks_ok($v, sub { $v->{class}->new_sharded(undef, 2, 10) }, qr/path_prefix/, "new_sharded(undef): 'path_prefix'");
    croaks_ok($v, sub { $v->{class}->new_sharded('', 2, 10) }, qr/path_prefix/, "new_sharded(''): 'path_prefix'");

    my $live = tmp_path("live-$v->{name}");
    $v->{class}->new($live, 10);
    croaks_ok($v, sub { $v->{class}->new_readonly($live) }, qr/not frozen/, "new_readonly of a map that is not frozen: 'not frozen'");

    my $NOT_MAP = qr/not a Data::HashMap::Shared file.*(?:too small|magic)/;
    for my $junk ([ 'a 10-byte file' => "\x01" x 10 ], [ 'an empty file' => '' ],
                  [ 'a 64 KiB file of junk' => "junk" x 16384 ], [ 'a 4 KiB file of zeros' => "\0" x 4096 ]) {
        my ($what, $bytes) = @$junk;
        my $f = tmp_path('junk');
        spew($f, $bytes);
        croaks_ok($v, sub { $v->{class}->new_readonly($f) }, $NOT_MAP, "new_readonly of $what: 'too small' or 'magic'");
        sysopen my $fh, $f, O_RDWR or die "open $f: $!";
        croaks_ok($v, sub { $v->{class}->new_from_fd(fileno $fh) }, $NOT_MAP, "new_from_fd of $what: 'too small' or 'magic'");
        close $fh;
        next if $bytes eq '';    # new() makes a map in an empty file
        croaks_ok($v, sub { $v->{class}->new($f, 10) }, $NOT_MAP, "new of $what: 'too small' or 'magic'");
        is(slurp($f), $bytes, "... $what is left as it was");
    }
    sysopen my $null, '/dev/null', O_RDWR or die "/dev/null: $!";
    croaks_ok($v, sub { $v->{class}->new_from_fd(fileno $null) }, $NOT_MAP, "new_from_fd of /dev/null: 'too small' or 'magic'");
    pipe my $r, my $w or die "pipe: $!";
    croaks_ok($v, sub { $v->{class}->new_from_fd(fileno $r) }, $NOT_MAP, "new_from_fd of a pipe: 'too small' or 'magic'");
};

# A failed new_from_fd leaves nothing held: the same file opens at once after.
subtest 'a failed new_from_fd does not block the next open' => sub {
    my $v = variant('II');
    my $f = tmp_path('after-fd');
    spew($f, "\x01" x 10);
    sysopen my $fh, $f, O_RDWR or die "open $f: $!";
    croaks_ok($v, sub { $v->{class}->new_from_fd(fileno $fh) }, qr/too small/, 'new_from_fd of a 10-byte file croaks');
    my ($st, $out) = run_in_child(sub {
        my $e = croak_msg(sub { $v->{class}->new($f, 10) });
        $e =~ /too small/ ? 'croaked' : "unexpected: $e";
    }, alarm => 10);
    is($out, 'ok:croaked', '... a new() of that file (its descriptor still open) croaks at once, no wait');
    spew($f, '');
    my $m = eval { local $SIG{ALRM} = sub { die "timed out\n" }; alarm 10; my $x = $v->{class}->new($f, 10); alarm 0; $x };
    alarm 0;
    ok($m && $m->put(1, 2), 'and once emptied, new() makes a map in it, in this process too') or diag($@);
};

# ===========================================================================
# 6. The version sorts after the C implementation's last (0.23).
subtest 'version' => sub {
    my $ver = $Data::HashMap::Shared::VERSION;
    ok($ver > 0.23, "VERSION $ver > 0.23 as a decimal");
    ok(version->parse($ver) > version->parse('0.23'), '... and as a version object');
    ok(version->parse("v$ver") > version->parse('v0.23'), '... and dotted');
    my %bad = map { ($_->{class} => $_->{class}->VERSION) } grep { ($_->{class}->VERSION // '') ne $ver } @VARIANTS;
    is_deeply(\%bad, {}, 'every variant class has the same VERSION');
    require Data::HashMap::Shared::Tie;
    is(Data::HashMap::Shared::Tie->VERSION, $ver, 'Data::HashMap::Shared::Tie too');
    my ($top) = grep { /^\d/ } split /\n/, slurp('Changes');
    like($top, qr/\A\Q$ver\E\b/, 'Changes starts with this version');
};

# ===========================================================================
# 7. The POD says what changes for a user of the C implementation.
subtest 'MIGRATING' => sub {
    my $pod = slurp($INC{'Data/HashMap/Shared.pm'});
    my ($sec) = $pod =~ /^=head1 MIGRATING\b(.*?)^=head1 /ms;
    ok(defined $sec, 'the POD has a MIGRATING section') or return;
    for my $topic (qr/max_entries/, qr/range/, qr/arena_cap/, qr/swap/, qr/freeze/, qr/new_readonly/,
                   qr/file format/i, qr/pending/, qr/recover/i, qr/full (?:disk|file system)/i, qr/redis/i,
                   qr/new_sharded/, qr/permanent/, qr/readonly/, qr/reserve/, qr/file_mode/, qr/symbolic link/) {
        like($sec, $topic, "MIGRATING mentions $topic");
    }
};

done_testing;
