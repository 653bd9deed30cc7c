use strict;
use warnings;
use Test::More;
use lib 't/lib';
use DHMSTest;

# Pins the conditional writers of SPEC section 5 on every variant, in both
# calling styles: add (insert only if absent), update (overwrite only if
# present), add_ttl / update_ttl (the same with the entry's own lifetime;
# croak on a map without TTL), swap (stores, returns the previous value,
# undef for a fresh insert; croaks when it cannot store), cas (replace only
# if the value equals the expected one: numerically for integer values, by
# bytes for strings, the UTF-8 flag not compared), cas_take (remove and
# return only if equal), max / min (integer values only: store the max / min
# of the current value and d, a missing key takes d, range-checked; string
# value variants croak and have no keyword). Empty strings and UTF-8 flags
# go through every one of them; a full map (max_entries 3) refuses new keys
# in each its own way; updates through these operations promote on LRU maps
# (section 6).

eval "require $_->{class}; 1" or die $@ for @VARIANTS;

my %ARITY = (add => 3, update => 3, swap => 3, cas => 4, cas_take => 3,
             add_ttl => 4, update_ttl => 4, ttl_remaining => 2);
my %CARITY = (max => 3, min => 3);

sub xforms {
    my ($v) = @_;
    return forms_with($v, %ARITY, ($v->{counters} ? %CARITY : ()));
}

my $WIDE = "sm\x{263A}le";        # flagged, wide char
my $LAT  = "caf\x{e9}";           # latin-1 chars, unflagged: 4 bytes
utf8::upgrade(my $LATU = $LAT);   # ... flagged: bytes "caf\xc3\xa9"
my $LATB = "caf\xc3\xa9";         # the same bytes, unflagged

sub flags_ok {
    my ($got, $want, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    ok(defined $got && $got eq $want && (utf8::is_utf8($got) ? 1 : 0) == (utf8::is_utf8($want) ? 1 : 0), $name)
        or diag(defined $got ? sprintf("got %s (utf8=%d), want %s (utf8=%d)",
                                       join('.', map { sprintf '%02x', ord } split //, $got), utf8::is_utf8($got) ? 1 : 0,
                                       join('.', map { sprintf '%02x', ord } split //, $want), utf8::is_utf8($want) ? 1 : 0)
                               : 'got undef');
}

my %TOO_BIG = (int16 => 40000, int32 => 3_000_000_000, int64 => '9223372036854775808');
my %RANGE_RE = (int16 => qr/int16|range|does not fit/i, int32 => qr/int32|range|does not fit/i,
                int64 => qr/int64|range|does not fit/i);

# ---- the common semantics, every variant, both forms -----------------------

for_each_variant {
    my ($v) = @_;
    for my $form (xforms($v)) {
        my ($fname, $op) = @$form;
        subtest $fname => sub {
            my $m = $v->{class}->new(tmp_path($v->{name}), 100);
            my ($k1, $k2, $k3, $k4, $k5) = map { vkey($v, $_) } 1 .. 5;
            my ($v1, $v2, $v3, $v4, $v5, $v6) = map { vval($v, $_) } 1 .. 6;

            # add
            ok($op->{add}->($m, $k1, $v1), 'add of a missing key: true');
            is($op->{get}->($m, $k1), $v1, '... stored');
            ok(!$op->{add}->($m, $k1, $v2), 'add of a present key: false');
            is($op->{get}->($m, $k1), $v1, '... the value is unchanged');
            is($op->{size}->($m), 1, 'size 1');

            # update
            ok(!$op->{update}->($m, $k2, $v2), 'update of a missing key: false');
            ok(!$op->{exists}->($m, $k2), '... and does not create it');
            ok($op->{update}->($m, $k1, $v2), 'update of a present key: true');
            is($op->{get}->($m, $k1), $v2, '... overwritten');
            ok($op->{update}->($m, $k1, $v2), 'update with the same value: true');
            is($op->{size}->($m), 1, 'size still 1');

            # swap
            is($op->{swap}->($m, $k1, $v3), $v2, 'swap of a present key returns the previous value');
            is($op->{get}->($m, $k1), $v3, '... and stores the new one');
            my $old = $op->{swap}->($m, $k2, $v4);
            ok(!defined $old, 'swap of a missing key returns undef');
            is($op->{get}->($m, $k2), $v4, '... and inserts it');
            is($op->{size}->($m), 2, 'size 2');

            # cas
            ok($op->{cas}->($m, $k1, $v3, $v5), 'cas with the right expected value: true');
            is($op->{get}->($m, $k1), $v5, '... replaced');
            ok(!$op->{cas}->($m, $k1, $v3, $v6), 'cas with a stale expected value: false');
            is($op->{get}->($m, $k1), $v5, '... unchanged');
            ok(!$op->{cas}->($m, $k3, $v1, $v2), 'cas of a missing key: false');
            ok(!$op->{exists}->($m, $k3), '... and does not create it');
            ok($op->{cas}->($m, $k1, $v5, $v5), 'cas to the same value: true');
            is($op->{get}->($m, $k1), $v5, '... still that value');

            # cas_take
            ok(!defined $op->{cas_take}->($m, $k2, $v1), 'cas_take with a wrong expected value: undef');
            is($op->{get}->($m, $k2), $v4, '... the entry stays');
            is($op->{cas_take}->($m, $k2, $v4), $v4, 'cas_take with the right value returns it');
            ok(!$op->{exists}->($m, $k2), '... and removes the entry');
            ok(!defined $op->{cas_take}->($m, $k2, $v4), 'cas_take of a missing key: undef');
            is($op->{size}->($m), 1, 'size 1');

            # Arguments convert as for put (section 4).
            if ($v->{int_val}) {
                ok($op->{put}->($m, $k4, 42), 'put 42');
                ok($op->{cas}->($m, $k4, '42.0', 43), 'integer values compare numerically: cas "42.0" matches 42');
                is($op->{get}->($m, $k4), 43, '... replaced');
                ok($op->{cas}->($m, $k4, ' 43', 44), '... " 43" matches 43');
                is($op->{cas_take}->($m, $k4, '44.0'), 44, 'cas_take "44.0" takes 44');
                my $big = $TOO_BIG{ $v->{val} };
                my $re = $RANGE_RE{ $v->{val} };
                ok($op->{put}->($m, $k4, 7), 'put 7');
                croaks_ok($v, sub { $op->{swap}->($m, $k4, $big) }, $re, "swap $big croaks");
                croaks_ok($v, sub { $op->{cas}->($m, $k4, 7, $big) }, $re, "cas to $big croaks");
                croaks_ok($v, sub { $op->{add}->($m, $k5, $big) }, $re, "add $big croaks");
                croaks_ok($v, sub { $op->{update}->($m, $k4, $big) }, $re, "update $big croaks");
                is($op->{get}->($m, $k4), 7, '... nothing changed');
                ok(!$op->{exists}->($m, $k5), '... nothing created');
                ok($op->{remove}->($m, $k4), 'remove');
            }
            else {
                ok($op->{put}->($m, $k4, '42'), 'put "42"');
                ok(!$op->{cas}->($m, $k4, '42.0', 'x'), 'string values compare bytes: cas "42.0" does not match "42"');
                ok(!defined $op->{cas_take}->($m, $k4, '042'), '... nor does cas_take "042"');
                is($op->{get}->($m, $k4), '42', '... unchanged');
                ok($op->{remove}->($m, $k4), 'remove');
            }
            croaks_ok($v, sub { $op->{add}->($m, $k5, undef) }, qr/undef/i, 'add of an undef value croaks');
            croaks_ok($v, sub { $op->{swap}->($m, $k5, undef) }, qr/undef/i, 'swap of an undef value croaks');
            ok(!$op->{exists}->($m, $k5), '... nothing created');
            is_deeply([ map { "$_" } $op->{keys}->($m) ], [ "$k1" ], 'the map holds only the first key');
            is($op->{get}->($m, $k1), $v5, '... with its value');

            # add_ttl / update_ttl need a TTL map
            croaks_ok($v, sub { $op->{add_ttl}->($m, $k5, $v1, 10) },
                      qr/add_ttl needs a map created with a TTL/, 'add_ttl on a map without TTL croaks');
            croaks_ok($v, sub { $op->{update_ttl}->($m, $k1, $v1, 10) },
                      qr/update_ttl needs a map created with a TTL/, 'update_ttl on a map without TTL croaks');
            ok(!$op->{exists}->($m, $k5), '... nothing created');
            is($op->{get}->($m, $k1), $v5, '... nothing changed');

            my $t = $v->{class}->new(tmp_path("$v->{name}-ttl"), 100, 0, 1000);
            ok($op->{add_ttl}->($t, $k1, $v1, 100), 'add_ttl of a missing key: true');
            is($op->{get}->($t, $k1), $v1, '... stored');
            my $left = $op->{ttl_remaining}->($t, $k1);
            ok(defined $left && $left >= 98 && $left <= 101, "... with its own TTL (ttl_remaining $left)");
            ok(!$op->{add_ttl}->($t, $k1, $v2, 50), 'add_ttl of a present key: false');
            is($op->{get}->($t, $k1), $v1, '... unchanged');
            $left = $op->{ttl_remaining}->($t, $k1);
            ok($left >= 98 && $left <= 101, "... TTL unchanged ($left)");
            ok(!$op->{update_ttl}->($t, $k2, $v2, 50), 'update_ttl of a missing key: false');
            ok(!$op->{exists}->($t, $k2), '... and does not create it');
            ok($op->{update_ttl}->($t, $k1, $v3, 50), 'update_ttl of a present key: true');
            is($op->{get}->($t, $k1), $v3, '... overwritten');
            $left = $op->{ttl_remaining}->($t, $k1);
            ok($left >= 48 && $left <= 51, "... with the new TTL ($left)");
            ok($op->{update_ttl}->($t, $k1, $v4, 0), 'update_ttl with 0');
            is($op->{ttl_remaining}->($t, $k1), 0, '... makes it permanent');
            ok($op->{add_ttl}->($t, $k2, $v2, 0), 'add_ttl with 0');
            is($op->{ttl_remaining}->($t, $k2), 0, '... is permanent');
            ok($op->{add}->($t, $k3, $v3), 'plain add on a TTL map');
            $left = $op->{ttl_remaining}->($t, $k3);
            ok($left >= 998 && $left <= 1001, "... takes the default TTL ($left)");
        };
    }
};

# ---- max / min --------------------------------------------------------------

for_each_variant {
    my ($v) = @_;
    my ($min, $max) = int_range($v->{val});
    my $re = $RANGE_RE{ $v->{val} };
    for my $form (xforms($v)) {
        my ($fname, $op) = @$form;
        subtest $fname => sub {
            my $m = $v->{class}->new(tmp_path($v->{name}), 100);
            my ($k1, $k2, $k3, $k4) = map { vkey($v, $_) } 1 .. 4;

            is($op->{max}->($m, $k1, 10), 10, 'max of a missing key: d');
            is($op->{get}->($m, $k1), 10, '... stored');
            is($op->{max}->($m, $k1, 5), 10, 'max with a smaller d returns the current value');
            is($op->{get}->($m, $k1), 10, '... unchanged');
            is($op->{max}->($m, $k1, 10), 10, 'max with an equal d');
            is($op->{max}->($m, $k1, 25), 25, 'max with a larger d returns d');
            is($op->{get}->($m, $k1), 25, '... stored');
            is($op->{max}->($m, $k1, -100), 25, 'max with a negative d');

            is($op->{min}->($m, $k2, -10), -10, 'min of a missing key: d');
            is($op->{get}->($m, $k2), -10, '... stored');
            is($op->{min}->($m, $k2, 5), -10, 'min with a larger d returns the current value');
            is($op->{min}->($m, $k2, -30), -30, 'min with a smaller d returns d');
            is($op->{get}->($m, $k2), -30, '... stored');
            is($op->{min}->($m, $k1, 100), 25, 'min on the max key: smaller of the two');
            is($op->{min}->($m, $k1, 20), 20, 'min lowers');
            is($op->{max}->($m, $k2, -31), -30, 'max on the min key');

            is($op->{max}->($m, $k1, 21.9), 21, 'a fractional d truncates toward zero');
            is($op->{min}->($m, $k2, -31.9), -31, '... also negative');
            is($op->{max}->($m, $k1, '30'), 30, 'a numeric string d');

            # The range, both ends.
            is($op->{max}->($m, $k3, $max), $max, "max $max");
            is($op->{max}->($m, $k3, $min), $max, "max of $max and $min");
            is($op->{min}->($m, $k3, $min), $min, "min to $min");
            is($op->{get}->($m, $k3), $min, '... stored');
            croaks_ok($v, sub { $op->{max}->($m, $k3, $TOO_BIG{ $v->{val} }) }, $re,
                      "max $TOO_BIG{ $v->{val} } croaks");
            croaks_ok($v, sub { $op->{min}->($m, $k3, $TOO_BIG{ $v->{val} }) }, $re,
                      "min $TOO_BIG{ $v->{val} } croaks (d itself does not fit)");
            is($op->{get}->($m, $k3), $min, '... unchanged');
            croaks_ok($v, sub { $op->{max}->($m, $k4, $TOO_BIG{ $v->{val} }) }, $re, 'on a missing key too');
            ok(!$op->{exists}->($m, $k4), '... and does not create it');
            croaks_ok($v, sub { $op->{max}->($m, $k4, 'abc') }, qr/'abc' is not an integer/, 'max of a non-number croaks');
            croaks_ok($v, sub { $op->{min}->($m, $k4, undef) }, qr/undef/i, 'min of undef croaks');
            ok(!$op->{exists}->($m, $k4), '... and does not create it');
            is($op->{size}->($m), 3, 'size 3');
        };
    }
} counters => 1;

for_each_variant {
    my ($v) = @_;
    my $m = $v->{class}->new(tmp_path($v->{name}), 10);
    for my $op (qw(max min)) {
        ok(!eval { $m->$op(vkey($v, 1), 5); 1 }, "calling $op croaks");
        like($@, qr/^\Q$v->{class}\E: \Q$op\E needs integer values.*use an integer-value variant/,
             '... naming the method and saying what to do');
        ok(!eval { kw_compile($v, "shm_PFX_$op(\$_[0], \$_[1], \$_[2])")->($m, vkey($v, 1), 5); 1 },
           "shm_$v->{prefix}_$op is not a keyword");
    }
    is($m->size, 0, 'nothing was stored');
} counters => 0;

# ---- string values: empty strings and UTF-8 flags --------------------------

for_each_variant {
    my ($v) = @_;
    for my $form (xforms($v)) {
        my ($fname, $op) = @$form;
        subtest $fname => sub {
            my $m = $v->{class}->new(tmp_path($v->{name}), 100);
            my ($k1, $k2, $k3, $k4) = map { vkey($v, $_) } 1 .. 4;

            # The empty string is a value like any other: defined, not "missing".
            ok($op->{add}->($m, $k1, ''), 'add an empty value');
            ok(!$op->{add}->($m, $k1, 'x'), 'add again: false (an empty value is present)');
            is($op->{get}->($m, $k1), '', '... still empty');
            ok($op->{update}->($m, $k1, ''), 'update of an empty value: true');
            my $old = $op->{swap}->($m, $k1, 'abc');
            ok(defined $old && $old eq '', 'swap returns the previous empty value as "", not undef');
            $old = $op->{swap}->($m, $k1, '');
            is($old, 'abc', 'swap to an empty value returns the previous one');
            is($op->{get}->($m, $k1), '', '... and stores ""');
            ok($op->{cas}->($m, $k1, '', 'full'), 'cas from "" matches the empty value');
            is($op->{get}->($m, $k1), 'full', '... replaced');
            ok(!$op->{cas}->($m, $k1, '', 'x'), 'cas from "" does not match a non-empty value');
            ok($op->{cas}->($m, $k1, 'full', ''), 'cas to ""');
            is($op->{get}->($m, $k1), '', '... stored');
            ok(!defined $op->{cas_take}->($m, $k1, 'full'), 'cas_take with a wrong value: undef');
            my $took = $op->{cas_take}->($m, $k1, '');
            ok(defined $took && $took eq '', 'cas_take of an empty value returns "" (defined)');
            ok(!$op->{exists}->($m, $k1), '... and removes it');
            ok(!$op->{cas}->($m, $k1, '', 'x'), 'cas "" on a missing key: false');

            # Binary values with NUL bytes compare by every byte.
            ok($op->{put}->($m, $k2, "a\0b"), 'put "a\0b"');
            ok(!$op->{cas}->($m, $k2, "a\0c", 'x'), 'cas "a\0c" does not match "a\0b"');
            ok(!$op->{cas}->($m, $k2, "a", 'x'), 'cas "a" does not match "a\0b"');
            ok($op->{cas}->($m, $k2, "a\0b", "c\0d"), 'cas "a\0b" matches');
            is($op->{swap}->($m, $k2, 'e'), "c\0d", 'swap returns "c\0d" whole');

            # UTF-8 flags: stored with the value, restored on every read, not compared.
            ok($op->{add}->($m, $k3, $WIDE), 'add a wide-character value');
            flags_ok($op->{get}->($m, $k3), $WIDE, 'get: flagged');
            flags_ok($op->{swap}->($m, $k3, $LATU), $WIDE, 'swap returns the previous value flagged');
            flags_ok($op->{get}->($m, $k3), $LATU, 'the flagged latin-1 value is stored flagged');
            ok(!$op->{cas}->($m, $k3, $LAT, 'x'), 'cas with unflagged "caf\xe9" (other bytes) does not match');
            ok($op->{cas}->($m, $k3, $LATB, $LATB), 'cas with the same bytes unflagged matches (flag not compared)');
            flags_ok($op->{get}->($m, $k3), $LATB, '... and the new value is stored unflagged');
            ok($op->{cas}->($m, $k3, $LATU, $WIDE), 'cas with the same bytes flagged matches too');
            flags_ok($op->{get}->($m, $k3), $WIDE, '... and the flagged desired value is stored flagged');
            ok($op->{update}->($m, $k3, $LATU), 'update to a flagged value');
            flags_ok($op->{get}->($m, $k3), $LATU, '... stored flagged');
            flags_ok($op->{swap}->($m, $k3, $LAT), $LATU, 'swap returns it flagged');
            flags_ok($op->{get}->($m, $k3), $LAT, 'unflagged latin-1 stays unflagged (4 bytes)');
            ok(!defined $op->{cas_take}->($m, $k3, $LATU), 'cas_take with the flagged "caf\x{e9}" (other bytes): undef');
            ok($op->{update}->($m, $k3, $WIDE), 'update to a wide value');
            flags_ok($op->{cas_take}->($m, $k3, "sm\xe2\x98\xbale"), $WIDE,
                     'cas_take with the bytes unflagged matches and returns the value flagged');
            ok(!$op->{exists}->($m, $k3), '... removed');
            ok($op->{add}->($m, $k4, $LATU), 'add a flagged value');
            flags_ok($op->{cas_take}->($m, $k4, $LATU), $LATU, 'cas_take returns it flagged');
        };
    }
} val => 'bytes';

# ---- string keys: identity is the bytes -----------------------------------

for_each_variant {
    my ($v) = @_;
    for my $form (xforms($v)) {
        my ($fname, $op) = @$form;
        subtest $fname => sub {
            my $m = $v->{class}->new(tmp_path($v->{name}), 100);
            my ($x, $y, $z) = map { vval($v, $_) } 1 .. 3;
            ok($op->{add}->($m, '', $x), 'add the empty key');
            ok(!$op->{add}->($m, '', $y), 'add it again: false');
            ok($op->{update}->($m, '', $y), 'update the empty key');
            is($op->{swap}->($m, '', $z), $y, 'swap the empty key');
            ok($op->{cas}->($m, '', $z, $x), 'cas the empty key');
            is($op->{cas_take}->($m, '', $x), $x, 'cas_take the empty key');
            ok(!$op->{exists}->($m, ''), '... gone');

            ok($op->{add}->($m, $LATU, $x), 'add the flagged key "caf\x{e9}"');
            ok(!$op->{add}->($m, $LATB, $y), 'add with the same bytes unflagged: false (one entry)');
            ok($op->{update}->($m, $LATB, $y), 'update with the unflagged bytes: true');
            is($op->{get}->($m, $LATU), $y, '... the flagged key sees it');
            ok($op->{add}->($m, $LAT, $z), 'add the unflagged "caf\xe9": other bytes, a new entry');
            is($op->{swap}->($m, $LATB, $x), $y, 'swap through the unflagged bytes');
            ok($op->{cas}->($m, $LATU, $x, $z), 'cas through the flagged key');
            is($op->{cas_take}->($m, $LATB, $z), $z, 'cas_take through the unflagged bytes');
            ok(!$op->{exists}->($m, $LATU), '... the entry is gone');
            is($op->{get}->($m, $LAT), $z, '... the other one stays');
            is($op->{size}->($m), 1, 'size 1');
            if ($v->{counters}) {
                is($op->{max}->($m, "a\0b", 3), 3, 'max on a key with a NUL byte');
                is($op->{min}->($m, "a\0b", 1), 1, 'min on it');
                is($op->{get}->($m, "a\0b"), 1, '... stored');
                ok(!$op->{exists}->($m, "a"), '... under the whole key');
            }
        };
    }
} key => 'bytes';

# ---- a full map (max_entries 3) ---------------------------------------------

for_each_variant {
    my ($v) = @_;
    for my $form (xforms($v)) {
        my ($fname, $op) = @$form;
        subtest $fname => sub {
            my $m = $v->{class}->new(tmp_path($v->{name}), 3);
            my @k = map { vkey($v, $_) } 1 .. 6;
            my @x = map { vval($v, $_) } 1 .. 6;
            ok($op->{add}->($m, $k[$_], $x[$_]), "add $_") for 0 .. 2;
            is($op->{size}->($m), 3, 'full: size 3');
            ok(!$op->{add}->($m, $k[3], $x[3]), 'add of a new key into a full map: false');
            ok(!$op->{exists}->($m, $k[3]), '... not stored');
            ok($op->{update}->($m, $k[0], $x[4]), 'update of a present key in a full map: true');
            is($op->{get}->($m, $k[0]), $x[4], '... stored');
            is($op->{swap}->($m, $k[1], $x[5]), $x[1], 'swap of a present key in a full map works');
            croaks_ok($v, sub { $op->{swap}->($m, $k[3], $x[3]) },
                      qr/swap: map is full \(max_entries 3\): cannot insert key/, 'swap of a new key into a full map croaks');
            ok(!$op->{exists}->($m, $k[3]), '... not stored');
            ok($op->{cas}->($m, $k[2], $x[2], $x[0]), 'cas in a full map works');
            ok(!$op->{cas}->($m, $k[3], $x[3], $x[0]), 'cas of a missing key: false');
            if ($v->{counters}) {
                is($op->{max}->($m, $k[2], $x[0]), $x[0], 'max of a present key in a full map works');
                croaks_ok($v, sub { $op->{max}->($m, $k[3], 1) }, qr/full/, 'max of a new key into a full map croaks (as incr)');
                croaks_ok($v, sub { $op->{min}->($m, $k[3], 1) }, qr/full/, 'min of a new key too');
                ok(!$op->{exists}->($m, $k[3]), '... not stored');
            }
            is($op->{size}->($m), 3, 'size 3');
            is($op->{cas_take}->($m, $k[2], $x[0]), $x[0], 'cas_take frees a place');
            ok($op->{add}->($m, $k[3], $x[3]), '... and add fits again');
            ok(!$op->{add}->($m, $k[4], $x[4]), 'full again: add false');

            my $t = $v->{class}->new(tmp_path("$v->{name}-ttl"), 3, 0, 100);
            ok($op->{add_ttl}->($t, $k[$_], $x[$_], 50), "add_ttl $_") for 0 .. 2;
            ok(!$op->{add_ttl}->($t, $k[3], $x[3], 50), 'add_ttl of a new key into a full TTL map: false');
            ok(!$op->{exists}->($t, $k[3]), '... not stored');
            ok($op->{update_ttl}->($t, $k[0], $x[5], 60), 'update_ttl of a present key in a full map: true');
            is($op->{get}->($t, $k[0]), $x[5], '... stored');
            is($op->{size}->($t), 3, 'size 3');
        };
    }
};

# ---- LRU: the conditional writers are updates (section 6) -------------------

for my $name (qw(II SS SI16 I32S)) {
    my $v = variant($name);
    for my $form (xforms($v)) {
        my ($fname, $op) = @$form;
        my @writers = (
            [ update => sub { $op->{update}->($_[0], $_[1], vval($v, 9)) } ],
            [ swap   => sub { $op->{swap}->($_[0], $_[1], vval($v, 9)) } ],
            [ cas    => sub { $op->{cas}->($_[0], $_[1], vval($v, $_[2]), vval($v, 9)) } ],
            ($v->{counters} ? ([ max => sub { $op->{max}->($_[0], $_[1], 30000) } ]) : ()),
        );
        for my $w (@writers) {
            my ($what, $code) = @$w;
            subtest "$name $fname: $what promotes on an LRU map" => sub {
                my $m = $v->{class}->new(tmp_path($name), 100, 3);
                $op->{put}->($m, vkey($v, $_), vval($v, $_)) for 1 .. 3;
                ok($code->($m, vkey($v, 1), 1), "$what the least recent key (1)");
                ok($op->{add}->($m, vkey($v, 4), vval($v, 4)), 'add a fourth key');
                is($op->{stat_evictions}->($m), 1, 'one eviction');
                ok($op->{exists}->($m, vkey($v, 1)), "key 1 survives: $what made it the most recent");
                ok(!$op->{exists}->($m, vkey($v, 2)), 'key 2 (now the least recent) was evicted');
                is($op->{size}->($m), 3, 'size 3');
            };
        }
    }
}

done_testing;
