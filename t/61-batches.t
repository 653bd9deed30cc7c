use strict;
use warnings;
use Test::More;
use lib 't/lib';
use DHMSTest;

# Pins the batch methods of SPEC section 5 on every variant: set_multi(k, v,
# ...) stores every pair and returns the count stored (an odd argument count
# croaks), get_multi(k ...) returns the values in argument order with undef
# for missing keys (in scalar context the number found), remove_multi(k ...)
# returns the count removed; on a full map set_multi stores what fits.
# They are methods only (no keywords). Each runs under one lock with every
# argument converted before the lock is taken: an argument that dies while
# being read (a tied scalar whose FETCH dies, an object whose overloaded ""
# or 0+ dies) or that does not convert (undef, out of range) makes the call
# croak, leaves the map exactly as it was, and leaves no lock held (another
# process can write at once, under an alarm).

eval "require $_->{class}; 1" or die $@ for @VARIANTS;

my $WIDE = "sm\x{263A}le";
my $LAT  = "caf\x{e9}";
utf8::upgrade(my $LATU = $LAT);

# Sorted "k=v" strings: a whole map, compared with is_deeply.
sub content {
    my ($m) = @_;
    my @i = $m->items;
    my @r;
    while (my ($k, $x) = splice @i, 0, 2) { push @r, "$k=$x" }
    return [ sort @r ];
}

# ---- the semantics ----------------------------------------------------------

for_each_variant {
    my ($v) = @_;
    my $m = $v->{class}->new(tmp_path($v->{name}), 100);
    my @k = map { vkey($v, $_) } 0 .. 9;
    my @x = map { vval($v, $_) } 0 .. 9;

    is($m->set_multi(map { ($k[$_], $x[$_]) } 0 .. 4), 5, 'set_multi of 5 new pairs: 5');
    is($m->size, 5, 'size 5');
    is($m->get($k[$_]), $x[$_], "... key $_ stored with its value") for 0 .. 4;
    is($m->set_multi(), 0, 'set_multi with no pairs: 0');
    is($m->set_multi($k[0], $x[5], $k[5], $x[6]), 2, 'set_multi overwriting one and inserting one: 2');
    is($m->get($k[0]), $x[5], '... overwritten');
    is($m->get($k[5]), $x[6], '... inserted');
    $m->set_multi($k[6], $x[1], $k[6], $x[2]);
    is($m->get($k[6]), $x[2], 'a key given twice: the last value wins');
    is($m->size, 7, 'size 7');

    my $before = content($m);
    croaks_ok($v, sub { $m->set_multi($k[7], $x[7], $k[8]) },
              qr/set_multi takes key => value pairs; got an odd number \(3\) of arguments after the map/,
              'an odd argument count croaks, saying how many');
    croaks_ok($v, sub { $m->set_multi($k[7]) }, qr/odd number \(1\)/, '... also 1');
    is_deeply(content($m), $before, '... nothing stored');

    # get_multi
    my @got = $m->get_multi($k[1], $k[9], $k[0], $k[1]);
    is(scalar(@got), 4, 'get_multi returns one value per key');
    is_deeply(\@got, [ $x[1], undef, $x[5], $x[1] ], '... in argument order, undef for a missing key');
    my $n = $m->get_multi($k[1], $k[9], $k[0], $k[8]);
    is($n, 2, 'get_multi in scalar context: the number found');
    is_deeply([ $m->get_multi() ], [], 'get_multi of no keys: ()');
    is(scalar($m->get_multi()), 0, '... 0 in scalar context');
    is_deeply([ $m->get_multi($k[9]) ], [ undef ], 'get_multi of one missing key: (undef)');

    # remove_multi
    is($m->remove_multi($k[1], $k[9], $k[2], $k[1]), 2, 'remove_multi: the count removed (missing and repeated keys do not count)');
    ok(!$m->exists($k[1]) && !$m->exists($k[2]), '... removed');
    is($m->size, 5, 'size 5');
    is($m->remove_multi(), 0, 'remove_multi of no keys: 0');
    is($m->remove_multi($k[9]), 0, 'remove_multi of a missing key: 0');
    is_deeply([ sort map { "$_" } $m->keys ], [ sort map { "$k[$_]" } 0, 3, 4, 5, 6 ], 'the right keys remain');

    # Conversions happen first: one bad argument and nothing is done.
    $before = content($m);
    croaks_ok($v, sub { $m->set_multi($k[7], $x[7], $k[8], undef) }, qr/undef/i, 'set_multi with an undef value croaks');
    croaks_ok($v, sub { $m->set_multi($k[7], $x[7], undef, $x[8]) }, qr/undef/i, 'set_multi with an undef key croaks');
    is_deeply(content($m), $before, '... and stores none of the pairs');
    if ($v->{int_val}) {
        my $big = { int16 => 40000, int32 => 3_000_000_000, int64 => '9223372036854775808' }->{ $v->{val} };
        croaks_ok($v, sub { $m->set_multi($k[7], $x[7], $k[8], $big) }, qr/does not fit|range/i,
                  "set_multi with $big as the last value croaks");
        is_deeply(content($m), $before, '... and stores none of the pairs');
    }
    if ($v->{int_key}) {
        croaks_ok($v, sub { $m->set_multi($k[7], $x[7], 'abc', $x[8]) }, qr/'abc' is not an integer/,
                  'set_multi with a non-integer key croaks');
        croaks_ok($v, sub { $m->remove_multi($k[0], 'abc') }, qr/'abc' is not an integer/,
                  'remove_multi with a non-integer key croaks');
        is_deeply(content($m), $before, '... and changes nothing (the first key was not removed)');
    }
    croaks_ok($v, sub { $m->remove_multi($k[0], undef) }, qr/undef/i, 'remove_multi with an undef key croaks');
    is_deeply(content($m), $before, '... and removes nothing');
    croaks_ok($v, sub { $m->get_multi($k[0], undef) }, qr/undef/i, 'get_multi with an undef key croaks');

    # No keywords for the batches.
    for my $op (qw(set_multi get_multi remove_multi)) {
        ok(!eval { kw_compile($v, "shm_PFX_$op(\$_[0], \$_[1])")->($m, $k[0]); 1 }, "shm_$v->{prefix}_$op is not a keyword");
    }
    is_deeply(content($m), $before, 'the map is unchanged');

    # A full map: set_multi stores what fits.
    my $f = $v->{class}->new(tmp_path("$v->{name}-full"), 3);
    is($f->set_multi(map { ($k[$_], $x[$_]) } 0 .. 4), 3, 'set_multi of 5 new pairs into max_entries 3: 3 stored');
    is($f->size, 3, '... size 3');
    my @in = grep { $f->exists($k[$_]) } 0 .. 4;
    is(scalar(@in), 3, '... three of the keys are present');
    is($f->get($k[$_]), $x[$_], "... key $_ with its value") for @in;
    is($f->set_multi($k[$in[0]], $x[9], $k[9], $x[9]), 1, 'on the full map: the overwrite stores, the new key does not: 1');
    is($f->get($k[$in[0]]), $x[9], '... overwritten');
    ok(!$f->exists($k[9]), '... not inserted');
    is($f->remove_multi(map { $k[$_] } 0 .. 9), 3, 'remove_multi empties it: 3');
    is($f->size, 0, '... size 0');
};

# ---- UTF-8 flags and odd bytes through the batches -------------------------

for_each_variant {
    my ($v) = @_;
    my $m = $v->{class}->new(tmp_path($v->{name}), 100);
    my ($k1, $k2, $k3, $k4) = map { vkey($v, $_) } 1 .. 4;
    is($m->set_multi($k1, $WIDE, $k2, $LATU, $k3, $LAT, $k4, ''), 4, 'set_multi of flagged, unflagged and empty values');
    my @got = $m->get_multi($k1, $k2, $k3, $k4);
    is_deeply(\@got, [ $WIDE, $LATU, $LAT, '' ], 'get_multi returns them');
    is_deeply([ map { utf8::is_utf8($_) ? 1 : 0 } @got ], [ 1, 1, 0, 0 ], '... with their flags');
    is(scalar($m->get_multi($k4)), 1, 'an empty value counts as found');
} val => 'bytes';

for_each_variant {
    my ($v) = @_;
    my $m = $v->{class}->new(tmp_path($v->{name}), 100);
    my ($x, $y, $z) = map { vval($v, $_) } 1 .. 3;
    is($m->set_multi($LATU, $x, '', $y, "a\0b", $z), 3, 'set_multi of a flagged key, the empty key, a key with NUL');
    is_deeply([ $m->get_multi("caf\xc3\xa9", '', "a\0b", 'a') ], [ $x, $y, $z, undef ],
              'get_multi finds them (the flagged key by its bytes)');
    is($m->remove_multi("caf\xc3\xa9", $LATU, ''), 2, 'remove_multi by bytes: one entry per key');
    is_deeply([ $m->keys ], [ "a\0b" ], 'one key remains');
} key => 'bytes';

# ---- exception safety ----------------------------------------------------------

package DieTie {
    sub TIESCALAR { my ($c, $v) = @_; bless \$v, $c }
    sub FETCH     { die "tied FETCH died\n" }
    sub STORE     { }
}

# Each class overloads one conversion and lets Perl derive the others from it
# (fallback => 1), so the object dies whether it is read as a string or as a
# number.
package DieStr {
    use overload '""' => sub { die "overloaded stringify died\n" }, fallback => 1;
    sub new { bless {}, shift }
}

package DieNum {
    use overload '0+' => sub { die "overloaded numify died\n" }, fallback => 1;
    sub new { bless {}, shift }
}

package main;

# After a call croaked: nothing changed, no lock is held (a child process can
# write at once, under an alarm), and this process can write too.
sub still_usable {
    my ($v, $m, $path, $before, $what) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is_deeply(content($m), $before, "$what: the map has exactly the entries it had");
    my $ck = vkey($v, 50);
    my ($st, $out) = run_in_child(sub {
        my $h = $v->{class}->new($path, 100);
        $h->put($ck, vval($v, 50)) or die "put returned false\n";
        $m->put($ck, vval($v, 50)) or die "put through the inherited handle returned false\n";
        return 'put';
    }, alarm => 10);
    ok($st == 0 && $out eq 'ok:put', "$what: another process can write at once (no lock left held)")
        or diag(describe_status($st), " output: $out");
    my $r = under_alarm(10, sub { $m->remove($ck) });
    ok($r, "$what: this process sees the child's entry and can write");
    is_deeply(content($m), $before, "$what: the map is back as it was");
}

for_each_variant {
    my ($v) = @_;
    my $path = tmp_path($v->{name});
    my $m = $v->{class}->new($path, 100);
    my @k = map { vkey($v, $_) } 0 .. 9;
    my @x = map { vval($v, $_) } 0 .. 9;
    $m->set_multi(map { ($k[$_], $x[$_]) } 0 .. 3);
    my $before = content($m);

    my %bad = (
        'a tied scalar whose FETCH dies' => [ sub { tie my $t, 'DieTie'; \$t }, qr/tied FETCH died/ ],
        'an object whose overloaded "" dies' => [ sub { \DieStr->new }, qr/overloaded stringify died/ ],
        'an object whose overloaded 0+ dies' => [ sub { \DieNum->new }, qr/overloaded numify died/ ],
    );
    for my $what (sort keys %bad) {
        my ($mk, $re) = @{ $bad{$what} };
        # $mk returns a reference to the bad scalar; calls pass the scalar itself (aliased).
        my @cases = (
            [ "set_multi, bad last value"  => sub { my $b = $mk->(); $m->set_multi($k[4], $x[4], $k[5], $x[5], $k[0], $$b) } ],
            [ "set_multi, bad first key"   => sub { my $b = $mk->(); $m->set_multi($$b, $x[4], $k[5], $x[5]) } ],
            [ "set_multi, bad middle key"  => sub { my $b = $mk->(); $m->set_multi($k[4], $x[4], $$b, $x[5], $k[6], $x[6]) } ],
            [ "get_multi, bad last key"    => sub { my $b = $mk->(); my @r = $m->get_multi($k[0], $k[1], $$b) } ],
            [ "remove_multi, bad last key" => sub { my $b = $mk->(); $m->remove_multi($k[0], $k[1], $$b) } ],
            [ "remove_multi, bad first key" => sub { my $b = $mk->(); $m->remove_multi($$b, $k[2], $k[3]) } ],
        );
        for my $c (@cases) {
            my ($cname, $code) = @$c;
            subtest "$what: $cname" => sub {
                my $err = under_alarm(10, sub { croak_msg($code) });
                like($err, $re, 'the exception propagates');
                still_usable($v, $m, $path, $before, 'after it');
            };
        }
    }
};

done_testing;
