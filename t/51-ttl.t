use strict;
use warnings;
use Test::More;
use POSIX ();
use Time::HiRes ();
use lib 't/lib';
use DHMSTest;

# Pins the expiry of SPEC sections 3, 5 and 6 on every variant, in both
# calling styles: a map created with a TTL gives new entries that lifetime
# (put_ttl its own, 0 = permanent; put on an existing key resets it to the
# default, but a permanent entry stays permanent); an
# expired entry is invisible to every read at once but still counted by size
# until a write that meets it, flush_expired or flush_expired_partial removes
# it and counts it in stat_expired; ttl_remaining, touch, persist, set_ttl and
# get_with_ttl follow their true/false/undef rules, also on maps without TTL;
# the put_ttl writer croaks on a map without TTL and says what to do; the
# 4-argument keyword keeps its arguments in order; flush_expired_partial
# resumes from a position stored in the file, shared by every handle and
# process; an LRU+TTL map evicts an expired tail as expired; the TTL comes
# from the file header on reopen.
#
# Timing: TTLs are 1 second, stored as wall-clock seconds, so an entry put
# with TTL 1 lives until the next second boundary after one second has
# started. Every expiry check is set up in one window that starts just after
# a second boundary (so entries with TTL 1 are surely still alive while it is
# set up) and checked after one sleep of 2.1 s.

eval "require $_->{class}; 1" or die $@ for @VARIANTS;

my %XOPS = (
    touch => 2, put_ttl => 4, ttl_remaining => 2, persist => 2, set_ttl => 3,
    flush_expired => 1, flush_expired_partial => 2,
);
sub xforms {
    my ($v) = @_;
    my ($meth, $kw) = forms($v);
    my %me = %{ $meth->[1] };
    my %k  = %{ $kw->[1] };
    for my $op (sort keys %XOPS) {
        my $args = join ', ', map { "\$_[$_]" } 0 .. $XOPS{$op} - 1;
        $k{$op}  = kw_compile($v, "shm_PFX_$op $args");
        $me{$op} = sub { my $m = shift; $m->$op(@_) };
    }
    return ([ method => \%me ], [ keyword => \%k ]);
}

sub keyset { my ($op, $m) = @_; [ sort map { "$_" } $op->{keys}->($m) ] }
sub want   { my ($v, @i) = @_; [ sort map { '' . vkey($v, $_) } @i ] }

# ttl_remaining in [lo, hi]
sub remaining_ok {
    my ($got, $lo, $hi, $name) = @_;
    my $ok = defined $got && $got =~ /\A\d+\z/ && $got >= $lo && $got <= $hi;
    ok($ok, $name) or diag('got ' . ($got // 'undef') . ", expected $lo..$hi");
}

my $NO_TTL = qr/put_ttl needs a map created with a TTL \(the 4th argument of new, in seconds\); this map has none: use put, or create the map with a default TTL/;

# ==== part 1: no waiting (maps with a TTL of 100 s) ===========================

for_each_variant {
    my ($v) = @_;
    for my $form (xforms($v)) {
        my ($fname, $op) = @$form;
        subtest $fname => sub {
            my $m = $v->{class}->new(tmp_path($v->{name}), 100, 0, 100);
            my @k = map { vkey($v, $_) } 0 .. 9;
            my @v = map { vval($v, $_) } 0 .. 9;
            is($op->{ttl}->($m), 100, 'ttl 100');

            ok($op->{put}->($m, $k[1], $v[1]), 'put');
            remaining_ok($op->{ttl_remaining}->($m, $k[1]), 1, 100, 'a fresh entry has 1..100 s left');
            ok($op->{put_ttl}->($m, $k[2], $v[2], 0), 'put_ttl 0');
            is($op->{ttl_remaining}->($m, $k[2]), 0, '... permanent: ttl_remaining 0');
            is($op->{get}->($m, $k[2]), $v[2], '... stored');
            ok($op->{put_ttl}->($m, $k[3], $v[3], 5), 'put_ttl 5');
            remaining_ok($op->{ttl_remaining}->($m, $k[3]), 1, 5, '... 1..5 s left');
            is($op->{get}->($m, $k[3]), $v[3], '... stored');
            is($op->{ttl_remaining}->($m, $k[0]), undef, 'ttl_remaining of a missing key: undef');

            ok($op->{put}->($m, $k[3], $v[4]), 'put of an existing key with its own TTL');
            remaining_ok($op->{ttl_remaining}->($m, $k[3]), 6, 100, '... resets it to the default');
            is($op->{get}->($m, $k[3]), $v[4], '... new value');
            ok($op->{put}->($m, $k[2], $v[5]), 'put of an existing permanent key');
            is($op->{ttl_remaining}->($m, $k[2]), 0, '... it stays permanent (put is no TTL write)');
            is($op->{get}->($m, $k[2]), $v[5], '... new value');
            ok($op->{put_ttl}->($m, $k[2], $v[2], 7), 'put_ttl 7 of an existing permanent key');
            remaining_ok($op->{ttl_remaining}->($m, $k[2]), 1, 7, '... 1..7 s left');
            ok($op->{put_ttl}->($m, $k[2], $v[2], 0), 'put_ttl 0 of an existing key');
            is($op->{ttl_remaining}->($m, $k[2]), 0, '... makes it permanent');
            ok($op->{put_ttl}->($m, $k[2], $v[2], 7), 'put_ttl 7 of an existing key');
            remaining_ok($op->{ttl_remaining}->($m, $k[2]), 1, 7, '... 1..7 s left');

            # touch
            ok($op->{set_ttl}->($m, $k[1], 5), 'set_ttl 5: true');
            remaining_ok($op->{ttl_remaining}->($m, $k[1]), 1, 5, '... 1..5 s left');
            is($op->{get}->($m, $k[1]), $v[1], '... value unchanged');
            ok($op->{touch}->($m, $k[1]), 'touch: true');
            remaining_ok($op->{ttl_remaining}->($m, $k[1]), 6, 100, '... TTL back to the default');
            is($op->{get}->($m, $k[1]), $v[1], '... value unchanged');
            ok($op->{put_ttl}->($m, $k[4], $v[4], 0), 'put_ttl 0');
            ok($op->{touch}->($m, $k[4]), 'touch of a permanent entry: true');
            is($op->{ttl_remaining}->($m, $k[4]), 0, '... it stays permanent');
            ok(!$op->{touch}->($m, $k[0]), 'touch of a missing key: false');
            ok(!$op->{exists}->($m, $k[0]), '... and it does not create it');

            # persist and set_ttl
            ok($op->{persist}->($m, $k[1]), 'persist: true');
            is($op->{ttl_remaining}->($m, $k[1]), 0, '... permanent');
            is($op->{get}->($m, $k[1]), $v[1], '... value unchanged');
            ok($op->{persist}->($m, $k[1]), 'persist of a permanent entry: true');
            ok(!$op->{persist}->($m, $k[0]), 'persist of a missing key: false');
            ok($op->{set_ttl}->($m, $k[4], 7), 'set_ttl 7 of a permanent entry: true');
            remaining_ok($op->{ttl_remaining}->($m, $k[4]), 1, 7, '... 1..7 s left');
            ok($op->{set_ttl}->($m, $k[4], 0), 'set_ttl 0: true');
            is($op->{ttl_remaining}->($m, $k[4]), 0, '... permanent');
            ok(!$op->{set_ttl}->($m, $k[0], 7), 'set_ttl of a missing key: false');
            ok(!$op->{exists}->($m, $k[0]), '... and it does not create it');

            # new entries from get_or_set and incr take the default TTL
            is($op->{get_or_set}->($m, $k[5], $v[5]), $v[5], 'get_or_set of a new key');
            remaining_ok($op->{ttl_remaining}->($m, $k[5]), 1, 100, '... has the default TTL');
            if ($v->{counters}) {
                is($op->{incr}->($m, $k[6]), 1, 'incr of a new key');
                remaining_ok($op->{ttl_remaining}->($m, $k[6]), 1, 100, '... has the default TTL');
            }

            # get_with_ttl (a method in both forms)
            my @g = $m->get_with_ttl($k[3]);
            is(scalar @g, 2, 'get_with_ttl: two values in list context');
            is($g[0], $v[4], '... the value');
            remaining_ok($g[1], 1, 100, '... and the seconds left');
            @g = $m->get_with_ttl($k[1]);
            is_deeply(\@g, [ $v[1], 0 ], 'get_with_ttl of a permanent entry: (value, 0)');
            @g = $m->get_with_ttl($k[0]);
            is_deeply(\@g, [], 'get_with_ttl of a missing key: ()');
            my $s = $m->get_with_ttl($k[3]);
            is($s, $v[4], 'get_with_ttl in scalar context: the value');
            $s = $m->get_with_ttl($k[0]);
            is($s, undef, '... undef for a missing key');

            is($op->{size}->($m), $v->{counters} ? 6 : 5, 'size');
            is($op->{stat_expired}->($m), 0, 'nothing expired');
            is($op->{flush_expired}->($m), 0, 'flush_expired with nothing expired: 0');
            is($op->{size}->($m), $v->{counters} ? 6 : 5, '... size unchanged');
        };
    }
};

# The 4-argument keyword keeps its arguments in order, and items after the
# fourth belong to the enclosing list.
for_each_variant {
    my ($v) = @_;
    my $m = $v->{class}->new(tmp_path($v->{name}), 100, 0, 100);
    my ($k, $val) = (vkey($v, 1), vval($v, 2));
    my @l = kw_run($v, 'my @l = (shm_PFX_put_ttl $_[0], $_[1], $_[2], 0, "after", 7); return @l', $m, $k, $val);
    is(scalar @l, 3, 'shm_PFX_put_ttl $m, K, V, 0, "after", 7: a list of 3');
    ok($l[0], '... the first is its result');
    is_deeply([ @l[1, 2] ], [ 'after', 7 ], '... then the enclosing list');
    is($m->get($k), $val, 'the value stored is the third argument');
    is($m->ttl_remaining($k), 0, '... permanently (the fourth)');
    ok(!$m->exists($val), 'nothing stored under the value') if $v->{int_key} && $v->{int_val} && "$val" ne "$k";
    is($m->size, 1, 'size 1');
    ok(kw_run($v, 'shm_PFX_put_ttl $_[0], $_[1], $_[2], 50', $m, vkey($v, 3), vval($v, 4)), 'put_ttl with 50 s');
    is($m->get(vkey($v, 3)), vval($v, 4), '... value');
    remaining_ok($m->ttl_remaining(vkey($v, 3)), 1, 50, '... 1..50 s left');
    if ($v->{name} eq 'II') {
        my $code = kw_compile($v, 'shm_ii_put_ttl $_[0], 1, 2, 0');
        ok($code->($m), 'shm_ii_put_ttl $m, 1, 2, 0');
        is($m->get(1), 2, '... stores value 2 under key 1');
        is($m->ttl_remaining(1), 0, '... permanently');
        ok(!$m->exists(2) && !$m->exists(0), '... and nothing else');
    }
};

# Maps without TTL: a plain one and an LRU-only one.
for_each_variant {
    my ($v) = @_;
    for my $form (xforms($v)) {
        my ($fname, $op) = @$form;
        subtest $fname => sub {
            for my $kind ([ plain => 0 ], [ 'LRU-only' => 10 ]) {
                my ($kname, $max_size) = @$kind;
                my $m = $v->{class}->new(tmp_path($v->{name}), 100, $max_size);
                my ($k1, $k2) = (vkey($v, 1), vkey($v, 2));
                is($op->{ttl}->($m), 0, "$kname: ttl 0");
                ok($op->{put}->($m, $k1, vval($v, 1)), "$kname: put");
                croaks_ok($v, sub { $op->{put_ttl}->($m, $k2, vval($v, 2), 10) }, $NO_TTL, "$kname: put_ttl croaks, saying what to do");
                croaks_ok($v, sub { $op->{put_ttl}->($m, $k2, vval($v, 2), 0) }, $NO_TTL, "$kname: put_ttl with 0 s croaks too");
                croaks_ok($v, sub { $op->{put_ttl}->($m, $k1, vval($v, 3), 10) }, $NO_TTL, "$kname: put_ttl of an existing key croaks");
                ok(!$op->{exists}->($m, $k2), "$kname: ... nothing stored");
                is($op->{get}->($m, $k1), vval($v, 1), "$kname: ... nothing changed");
                is($op->{size}->($m), 1, "$kname: ... size 1");
                is($op->{ttl_remaining}->($m, $k1), undef, "$kname: ttl_remaining of a present key: undef");
                is($op->{ttl_remaining}->($m, $k2), undef, "$kname: ttl_remaining of a missing key: undef");
                ok(!$op->{persist}->($m, $k1), "$kname: persist: false");
                ok(!$op->{set_ttl}->($m, $k1, 10), "$kname: set_ttl: false");
                ok(!$op->{set_ttl}->($m, $k2, 10), "$kname: set_ttl of a missing key: false");
                is($op->{get}->($m, $k1), vval($v, 1), "$kname: ... value unchanged");
                my @g = $m->get_with_ttl($k1);
                is(scalar @g, 2, "$kname: get_with_ttl: two values");
                is($g[0], vval($v, 1), "$kname: ... the value");
                is($g[1], undef, "$kname: ... and undef for the TTL");
                @g = $m->get_with_ttl($k2);
                is_deeply(\@g, [], "$kname: get_with_ttl of a missing key: ()");
                is($op->{flush_expired}->($m), 0, "$kname: flush_expired: 0");
                my ($removed) = $op->{flush_expired_partial}->($m, 10);
                is($removed, 0, "$kname: flush_expired_partial: 0 removed");
                is($op->{size}->($m), 1, "$kname: size 1");
                if ($max_size) {
                    ok($op->{touch}->($m, $k1), "$kname: touch of a present key: true");
                    ok(!$op->{touch}->($m, $k2), "$kname: touch of a missing key: false");
                }
                else {
                    ok(!$op->{touch}->($m, $k1), "$kname: touch of a present key: false (neither LRU nor TTL)");
                    ok(!$op->{touch}->($m, $k2), "$kname: touch of a missing key: false");
                }
                is($op->{get}->($m, $k1), vval($v, 1), "$kname: ... value unchanged");
                ok(!$op->{exists}->($m, $k2), "$kname: ... nothing created");
            }
        };
    }
};

# ==== part 2: expiry ===========================================================

# Sleep until just after the next second boundary.
sub align_second {
    my $t = Time::HiRes::time();
    Time::HiRes::sleep(1 - ($t - int $t) + 0.05);
    return Time::HiRes::time();
}

my %S;          # per-variant state between setup and check
my $L_DIV = 8;  # flush_expired_partial scans capacity/8 slots per call

my $t0 = align_second();

for_each_variant {
    my ($v) = @_;
    my $st = $S{ $v->{name} } = {};

    # A (one per form): a mix of expiring and lasting entries.
    for my $form (xforms($v)) {
        my ($fname, $op) = @$form;
        subtest "setup A, $fname" => sub {
            my $m = $v->{class}->new(tmp_path($v->{name}), 100, 0, 1);
            my @k = map { vkey($v, $_) } 0 .. 10;
            my %val;
            is($op->{ttl}->($m), 1, 'ttl 1');
            $op->{put}->($m, $k[1], $val{1} = vval($v, 1));
            $val{2} = $op->{get_or_set}->($m, $k[2], vval($v, 2));
            if ($v->{counters}) { $val{3} = $op->{incr}->($m, $k[3]) }
            else                { $op->{put}->($m, $k[3], $val{3} = vval($v, 3)) }
            $op->{put_ttl}->($m, $k[4], $val{4} = vval($v, 4), 0);
            $op->{put_ttl}->($m, $k[5], $val{5} = vval($v, 5), 100);
            $op->{put}->($m, $k[6], $val{6} = vval($v, 6));
            ok($op->{persist}->($m, $k[6]), 'persist of a fresh entry: true');
            $op->{put_ttl}->($m, $k[7], $val{7} = vval($v, 7), 100);
            ok($op->{set_ttl}->($m, $k[7], 1), 'set_ttl 1 of a 100 s entry: true');
            $op->{put_ttl}->($m, $k[8], vval($v, 0), 100);
            $op->{put}->($m, $k[8], $val{8} = vval($v, 8));    # resets to the default, 1 s
            $op->{put_ttl}->($m, $k[9], $val{9} = vval($v, 9), 0);
            ok($op->{touch}->($m, $k[9]), 'touch of a permanent entry: true');
            $op->{put_ttl}->($m, $k[10], $val{10} = vval($v, 10), 0);
            ok($op->{set_ttl}->($m, $k[10], 100), 'set_ttl 100 of a permanent entry: true');

            is_deeply(keyset($op, $m), want($v, 1 .. 10), 'all 10 present before the wait');
            is_deeply([ map { $op->{get}->($m, $k[$_]) } 1 .. 10 ], [ map { $val{$_} } 1 .. 10 ], '... with their values');
            my %rem = map { $_ => $op->{ttl_remaining}->($m, $k[$_]) } 1 .. 10;
            is($rem{$_}, 1, "ttl_remaining of entry $_: 1") for 1, 2, 3, 7, 8;
            is($rem{$_}, 0, "ttl_remaining of entry $_: 0 (permanent)") for 4, 6, 9;
            remaining_ok($rem{$_}, 1, 100, "ttl_remaining of entry $_: 1..100") for 5, 10;
            $st->{A}{$fname} = { m => $m, op => $op, k => \@k, val => \%val };
        };
    }

    # B: only expiring entries, to be met by each kind of write.
    subtest 'setup B' => sub {
        my $m = $v->{class}->new(tmp_path($v->{name}), 100, 0, 1);
        $m->put(vkey($v, $_), vval($v, $_)) for 1 .. 8;
        is($m->size, 8, '8 entries');
        is(scalar(my @k = $m->keys), 8, 'all present before the wait');
        $st->{B} = $m;
    };

    # H: full (max_entries 8) of expiring entries.
    subtest 'setup full' => sub {
        my $m = $v->{class}->new(tmp_path($v->{name}), 8, 0, 1);
        ok($m->put(vkey($v, $_), vval($v, $_)), "put $_") for 1 .. 8;
        ok(!$m->put(vkey($v, 9), vval($v, 9)), 'full: a 9th key is refused');
        $st->{H} = $m;
    };

    # I: the same, for set_multi.
    subtest 'setup full for set_multi' => sub {
        my $m = $v->{class}->new(tmp_path($v->{name}), 8, 0, 1);
        is($m->set_multi(map { (vkey($v, $_), vval($v, $_)) } 1 .. 8), 8, 'set_multi of 8');
        is($m->set_multi(vkey($v, 9), vval($v, 9)), 0, 'full: a 9th key is not stored');
        $st->{I} = $m;
    };

    # F: LRU + TTL.
    subtest 'setup LRU+TTL' => sub {
        my $m = $v->{class}->new(tmp_path($v->{name}), 100, 3, 100);
        ok($m->put_ttl(vkey($v, 1), vval($v, 1), 1), 'put_ttl 1 s');
        $m->put(vkey($v, $_), vval($v, $_)) for 2, 3;
        is($m->get(vkey($v, 1)), vval($v, 1), 'the 1 s entry is read (marked used)');
        $st->{F} = $m;
    };

    # G: reopened with ttl 0.
    subtest 'setup reopen' => sub {
        my $path = tmp_path($v->{name});
        my $m = $v->{class}->new($path, 10, 0, 1);
        $m->put(vkey($v, 1), vval($v, 1));
        my $h = $v->{class}->new($path, 10, 0, 0);
        is($h->ttl, 1, 'a handle opened with ttl 0 reports ttl 1 (the header is authoritative)');
        ok($h->put(vkey($v, 2), vval($v, 2)), 'put through it');
        is($h->ttl_remaining(vkey($v, 2)), 1, '... the entry has the default TTL');
        ok(eval { $h->put_ttl(vkey($v, 3), vval($v, 3), 0) }, 'put_ttl through it does not croak') or diag $@;
        $st->{G} = $path;
    };
};

# flush_expired_partial maps: 300 expiring entries, 100 permanent ones.
my %P;
for my $name (qw(II SS)) {
    my $v = variant($name);
    for my $how (qw(handles fork)) {
        my $path = tmp_path("partial-$name-$how");
        my $m = $v->{class}->new($path, 1000, 0, 1);
        $m->put(vkey($v, $_), vval($v, $_)) for 0 .. 299;
        $m->put_ttl(vkey($v, $_), vval($v, $_), 0) for 300 .. 399;
        $P{"$name $how"} = { v => $v, path => $path, m => $m };
    }
}

my $setup = Time::HiRes::time() - $t0;
ok($setup < 0.9, sprintf('setup took %.2f s, within the second it started in', $setup))
    or diag 'the expectations about entries with TTL 1 before the wait may fail for this reason alone';

Time::HiRes::sleep(2.1);

for_each_variant {
    my ($v) = @_;
    my $st = $S{ $v->{name} };

    for my $fname (qw(method keyword)) {
        subtest "expired A, $fname" => sub {
            my ($m, $op, $k, $val) = @{ $st->{A}{$fname} }{qw(m op k val)};
            my @gone = (1, 2, 3, 7, 8);
            my @live = (4, 5, 6, 9, 10);
            for my $i (@gone) {
                is($op->{get}->($m, $k->[$i]), undef, "entry $i: get undef");
                ok(!$op->{exists}->($m, $k->[$i]), "entry $i: exists false");
                is($op->{ttl_remaining}->($m, $k->[$i]), undef, "entry $i: ttl_remaining undef");
                is_deeply([ $m->get_with_ttl($k->[$i]) ], [], "entry $i: get_with_ttl ()");
                is(scalar $m->get_with_ttl($k->[$i]), undef, "entry $i: get_with_ttl in scalar context: undef");
            }
            for my $i (@live) {
                is($op->{get}->($m, $k->[$i]), $val->{$i}, "entry $i: still there");
            }
            is($op->{ttl_remaining}->($m, $k->[$_]), 0, "entry $_: still permanent") for 4, 6, 9;
            remaining_ok($op->{ttl_remaining}->($m, $k->[$_]), 1, 100, "entry $_: 1..100 s left") for 5, 10;
            is_deeply(keyset($op, $m), want($v, @live), 'keys: only the live entries');
            is_deeply([ sort map { "$_" } $op->{values}->($m) ], [ sort map { "$val->{$_}" } @live ], 'values: only theirs');
            my %items = $op->{items}->($m);
            is_deeply([ sort keys %items ], want($v, @live), 'items: only the live entries');
            is_deeply([ sort keys %{ $op->{to_hash}->($m) } ], want($v, @live), 'to_hash: only the live entries');
            $op->{iter_reset}->($m);
            my @each;
            my $n = 0;
            while (my ($ek) = $op->{each}->($m)) { push @each, "$ek"; last if ++$n > 100 }
            is_deeply([ sort @each ], want($v, @live), 'each: only the live entries');
            is($op->{size}->($m), 10, 'size still counts the expired entries');
            is($op->{stat_expired}->($m), 0, 'reads removed nothing: stat_expired 0');

            is($op->{flush_expired}->($m), 5, 'flush_expired returns 5');
            is($op->{size}->($m), 5, '... size 5');
            is($op->{stat_expired}->($m), 5, '... stat_expired 5');
            is($m->stats->{stat_expired}, 5, '... stats agrees');
            is($op->{flush_expired}->($m), 0, 'flush_expired again: 0');
            is($op->{stat_expired}->($m), 5, '... stat_expired still 5');
            is_deeply(keyset($op, $m), want($v, @live), 'the live entries remain');
        };
    }

    subtest 'expired B: writes that meet an expired entry remove it' => sub {
        my $m = $st->{B};
        my @k = map { vkey($v, $_) } 0 .. 8;
        is_deeply([ $m->keys ], [], 'keys: empty');
        is_deeply([ $m->values ], [], 'values: empty');
        is_deeply([ $m->items ], [], 'items: empty');
        is_deeply($m->to_hash, {}, 'to_hash: empty');
        $m->iter_reset;
        is_deeply([ $m->each ], [], 'each: ()');
        ok(!$m->exists($k[$_]), "exists $_: false") for 1 .. 8;
        is($m->get($k[1]), undef, 'get: undef');
        is($m->ttl_remaining($k[1]), undef, 'ttl_remaining: undef');
        is($m->size, 8, 'size 8: not removed yet');
        is($m->stat_expired, 0, 'stat_expired 0');

        my @steps = (
            [ put        => sub { ok($m->put($k[1], vval($v, 11)), 'put over an expired entry: true') }, 8 ],
            [ remove     => sub { ok(!$m->remove($k[2]), 'remove of an expired entry: false') }, 7 ],
            [ take       => sub { is($m->take($k[3]), undef, 'take of an expired entry: undef') }, 6 ],
            [ get_or_set => sub { is($m->get_or_set($k[4], vval($v, 14)), vval($v, 14), 'get_or_set of an expired entry: stores the default') }, 6 ],
            $v->{counters}
                ? [ incr    => sub { is($m->incr($k[5]), 1, 'incr of an expired entry: starts from 0') }, 6 ]
                : [ put_ttl => sub { ok($m->put_ttl($k[5], vval($v, 15), 0), 'put_ttl over an expired entry: true') }, 6 ],
            [ touch      => sub { ok(!$m->touch($k[6]), 'touch of an expired entry: false') }, 5 ],
            [ set_ttl    => sub { ok(!$m->set_ttl($k[7], 100), 'set_ttl of an expired entry: false') }, 4 ],
            [ persist    => sub { ok(!$m->persist($k[8]), 'persist of an expired entry: false') }, 3 ],
        );
        my $n = 0;
        for my $s (@steps) {
            my ($what, $code, $size) = @$s;
            $code->();
            $n++;
            is($m->stat_expired, $n, "... $what counted it in stat_expired ($n)");
            is($m->size, $size, "... size $size");
        }
        ok(!$m->exists($k[$_]), "entry $_ stays gone") for 2, 3, 6, 7, 8;
    };

    subtest 'expired H: a full map takes new keys in place of expired ones' => sub {
        my $m = $st->{H};
        is($m->size, 8, 'size 8: the expired entries are still there');
        ok($m->put(vkey($v, $_), vval($v, $_)), "put of new key $_: true") for 11 .. 18;
        is($m->size, 8, 'size 8');
        is($m->stat_expired, 8, 'the 8 expired entries were removed for them');
        ok(!$m->put(vkey($v, 19), vval($v, 19)), 'full of live entries: a 9th new key is refused');
        is_deeply([ sort map { "$_" } $m->keys ], want($v, 11 .. 18), 'the new keys');
    };

    subtest 'expired I: set_multi into a full map stores in place of expired entries' => sub {
        my $m = $st->{I};
        is($m->size, 8, 'size 8: the expired entries are still there');
        is($m->set_multi(map { (vkey($v, $_), vval($v, $_)) } 11 .. 18), 8, 'set_multi of 8 new keys: 8 stored');
        is($m->size, 8, 'size 8');
        is($m->stat_expired, 8, 'the 8 expired entries were removed for them');
        is($m->set_multi(vkey($v, 19), vval($v, 19)), 0, 'full of live entries: a 9th new key is not stored');
        is_deeply([ sort map { "$_" } $m->keys ], want($v, 11 .. 18), 'the new keys');
        ok($m->verify, 'verify');
    };

    subtest 'expired LRU+TTL' => sub {
        my $m = $st->{F};
        is($m->get(vkey($v, 1)), undef, 'the 1 s entry expired');
        is($m->size, 3, 'size 3');
        ok($m->put(vkey($v, 4), vval($v, 4)), 'put a new key into the full map');
        is_deeply([ sort map { "$_" } $m->keys ], want($v, 2, 3, 4), '... the expired tail made room');
        is($m->stat_expired, 1, '... counted in stat_expired');
        is($m->stat_evictions, 0, '... not in stat_evictions');
        ok($m->put(vkey($v, 5), vval($v, 5)), 'put another');
        is_deeply([ sort map { "$_" } $m->keys ], want($v, 3, 4, 5), '... evicts the least recent live entry');
        is($m->stat_evictions, 1, '... stat_evictions 1');
        is($m->stat_expired, 1, '... stat_expired still 1');
        is($m->size, 3, 'size 3');
    };

    subtest 'expired after reopen' => sub {
        my $h = $v->{class}->new($st->{G}, 5, 0, 0);
        is($h->ttl, 1, 'ttl 1 from the header');
        is($h->get(vkey($v, 1)), undef, 'the entry put by the creator expired');
        is($h->get(vkey($v, 2)), undef, 'the entry put through the handle opened with ttl 0 expired');
        is($h->get(vkey($v, 3)), vval($v, 3), 'the permanent one remains');
        is($h->flush_expired, 2, 'flush_expired: 2');
        is($h->size, 1, 'size 1');
    };
};

sub ceil_div { my ($a, $b) = @_; int(($a + $b - 1) / $b) }

# Two handles in one process take turns.
for my $name (qw(II SS)) {
    my $p = $P{"$name handles"};
    my ($v, $m) = @$p{qw(v m)};
    subtest "flush_expired_partial, $name, two handles" => sub {
        my $h = $v->{class}->new($p->{path}, 10);
        my $kw = kw_compile($v, 'shm_PFX_flush_expired_partial $_[0], $_[1]');
        my $cap = $m->capacity;
        my $limit = int($cap / $L_DIV) || 1;
        my $bound = ceil_div($cap, $limit) + 1;
        is($m->size, 400, 'size 400 (300 expired, not yet removed)');
        for my $pass (1, 2) {
            my ($sum, $calls, $done) = (0, 0, 0);
            my $before = $m->stat_expired;
            while (!$done && $calls < 10 * $bound) {
                # method on the first handle, keyword on the other
                my ($r, $d) = $calls % 2 ? $kw->($h, $limit) : $m->flush_expired_partial($limit);
                $calls++;
                $sum += $r;
                $done = $d;
            }
            ok($done, "pass $pass: done reached");
            cmp_ok($calls, '<=', $bound, "pass $pass: within ceil($cap/$limit)+1 = $bound calls ($calls)");
            is($sum, $pass == 1 ? 300 : 0, "pass $pass: removed " . ($pass == 1 ? 300 : 0) . ' in all');
            is($m->stat_expired - $before, $sum, "pass $pass: stat_expired grew by as much");
            is($m->size, 100, "pass $pass: size 100");
        }
        is(scalar(my @k = $h->keys), 100, 'the 100 permanent entries remain');
        is(scalar(grep { ($m->get(vkey($v, $_)) // '') eq vval($v, $_) } 300 .. 399), 100, '... with their values');
    };
}

# The parent and a forked child take turns through pipes.
for my $name (qw(II SS)) {
    my $p = $P{"$name fork"};
    my ($v, $m) = @$p{qw(v m)};
    subtest "flush_expired_partial, $name, parent and child" => sub {
        my $cap = $m->capacity;
        my $limit = int($cap / $L_DIV) || 1;
        my $bound = ceil_div($cap, $limit) + 1;
        pipe(my $to_child_r, my $to_child_w) or die "pipe: $!";
        pipe(my $to_parent_r, my $to_parent_w) or die "pipe: $!";
        $to_child_w->autoflush(1);
        $to_parent_w->autoflush(1);
        my $pid = spawn_child(sub {
            close $to_child_w; close $to_parent_r;
            my $h = $v->{class}->new($p->{path}, 10);
            my $kw = kw_compile($v, 'shm_PFX_flush_expired_partial $_[0], $_[1]');
            while (defined(my $cmd = <$to_child_r>)) {
                last if $cmd eq "quit\n";
                my ($r, $d) = $kw->($h, $limit);
                print {$to_parent_w} ($r // 'undef') . ' ' . ($d ? 1 : 0) . "\n";
            }
        });
        close $to_child_r; close $to_parent_w;
        my ($sum, $calls, $done, $child_calls) = (0, 0, 0, 0);
        while (!$done && $calls < 10 * $bound) {
            my ($r, $d);
            if ($calls % 2) {
                print {$to_child_w} "go\n";
                my $line = <$to_parent_r>;
                defined $line or do { diag 'the child went away'; last };
                ($r, $d) = split ' ', $line;
                $child_calls++;
            }
            else {
                ($r, $d) = $m->flush_expired_partial($limit);
            }
            $calls++;
            $sum += $r;
            $done = $d;
        }
        print {$to_child_w} "quit\n";
        close $to_child_w;
        waitpid($pid, 0);
        is(describe_status($?), 'exit 0', 'the child exited cleanly');
        ok($child_calls > 0, "the child made $child_calls of the calls");
        ok($done, 'done reached');
        cmp_ok($calls, '<=', $bound, "within ceil($cap/$limit)+1 = $bound calls ($calls): the position is shared");
        is($sum, 300, 'removed 300 in all');
        is($m->stat_expired, 300, 'stat_expired 300');
        is($m->size, 100, 'size 100');
        my ($r, $d) = $m->flush_expired_partial($cap * 2);
        is($r, 0, 'a new pass over the whole table removes nothing');
        ok($d, '... and is done in one call');
    };
}

done_testing;
