use strict;
use warnings;
use Test::More;
use lib 't/lib';
use DHMSTest;

# Pins SPEC section 4 (keys and values) and the error format of section 8:
# integer ranges per kind with exact boundaries (out of range croaks and
# stores nothing), truncation toward zero, numeric strings, non-numeric
# strings and undef croak; byte strings: empty, NUL, all 256 byte values,
# the UTF-8 flag restored on every read but not part of key identity;
# 1 MiB keys and values.

my $FILE = __FILE__;

# ---------------------------------------------------------------------------
# Integers: ranges.

# Out-of-range samples per kind: [ value, qr/message/ ].
my %OUT = (
    int16 => [ [ 32768, qr/\b32768 does not fit int16\b/ ], [ -32769, qr/-32769 does not fit int16\b/ ],
               [ 70000, qr/\b70000 does not fit int16\b/ ], [ '40000', qr/\b40000 does not fit int16\b/ ],
               [ 2147483648, qr/\b2147483648 does not fit int16\b/ ] ],
    int32 => [ [ 2147483648, qr/\b2147483648 does not fit int32\b/ ], [ -2147483649, qr/-2147483649 does not fit int32\b/ ],
               [ 9223372036854775807, qr/\b9223372036854775807 does not fit int32\b/ ] ],
    int64 => [ [ 9223372036854775808, qr/\b9223372036854775808 does not fit int64\b/ ],
               [ 18446744073709551615, qr/\b18446744073709551615 does not fit int64\b/ ],
               [ '9223372036854775808', qr/\b9223372036854775808 does not fit int64\b/ ],
               [ 1e19, qr/does not fit int64\b/ ], [ -1e19, qr/does not fit int64\b/ ],
               [ 9**9**9, qr/does not fit int64\b/ ], [ -9**9**9, qr/does not fit int64\b/ ] ],
);

for_each_variant {
    my ($v) = @_;
    for my $form (forms($v)) {
        my ($fname, $op) = @$form;
        subtest "$fname: keys" => sub {
            plan skip_all => 'string keys' unless $v->{int_key};
            my $m = $v->{class}->new(tmp_path($v->{name}), 1000);
            my ($min, $max) = int_range($v->{key});
            my ($x, $y) = (vval($v, 1), vval($v, 2));
            ok($op->{put}->($m, $min, $x), "put key $min (minimum)");
            ok($op->{put}->($m, $max, $y), "put key $max (maximum)");
            is($op->{get}->($m, $min), $x, "get key $min");
            is($op->{get}->($m, $max), $y, "get key $max");
            ok($op->{exists}->($m, $min), "exists $min");
            my %k = map { ($_ => 1) } $op->{keys}->($m);
            ok($k{$min} && $k{$max}, 'keys returns both boundaries exactly') or diag join ' ', keys %k;
            is($op->{size}->($m), 2, 'size 2');
            for my $o (@{ $OUT{ $v->{key} } }) {
                my ($n, $re) = @$o;
                croaks_ok($v, sub { $op->{put}->($m, $n, $x) }, $re, "put key $n croaks");
                croaks_ok($v, sub { $op->{get}->($m, $n) }, $re, "get key $n croaks");
                croaks_ok($v, sub { $op->{exists}->($m, $n) }, $re, "exists key $n croaks");
                croaks_ok($v, sub { $op->{remove}->($m, $n) }, $re, "remove key $n croaks");
                croaks_ok($v, sub { $op->{get_or_set}->($m, $n, $x) }, $re, "get_or_set key $n croaks");
            }
            is($op->{size}->($m), 2, 'nothing was stored');
            is($op->{get}->($m, $max), $y, 'boundary entry intact');
        };
        subtest "$fname: values" => sub {
            plan skip_all => 'string values' unless $v->{int_val};
            my $m = $v->{class}->new(tmp_path($v->{name}), 1000);
            my ($min, $max) = int_range($v->{val});
            my ($k1, $k2, $k3) = map { vkey($v, $_) } 1 .. 3;
            ok($op->{put}->($m, $k1, $min), "put value $min (minimum)");
            ok($op->{put}->($m, $k2, $max), "put value $max (maximum)");
            is($op->{get}->($m, $k1), $min, "get value $min");
            is($op->{get}->($m, $k2), $max, "get value $max");
            my %vals = map { ($_ => 1) } $op->{values}->($m);
            ok($vals{$min} && $vals{$max}, 'values returns both boundaries exactly');
            for my $o (@{ $OUT{ $v->{val} } }) {
                my ($n, $re) = @$o;
                croaks_ok($v, sub { $op->{put}->($m, $k1, $n) }, $re, "put value $n over an entry croaks");
                is($op->{get}->($m, $k1), $min, '... the old value stays');
                croaks_ok($v, sub { $op->{put}->($m, $k3, $n) }, $re, "put value $n for a new key croaks");
                ok(!$op->{exists}->($m, $k3), '... and nothing is stored');
                croaks_ok($v, sub { $op->{get_or_set}->($m, $k3, $n) }, $re, "get_or_set default $n croaks");
                ok(!$op->{exists}->($m, $k3), '... and nothing is stored');
            }
            is($op->{size}->($m), 2, 'size still 2');
        };
    }
};

# ---------------------------------------------------------------------------
# Integers: truncation, numeric strings, non-numbers, undef.

for_each_variant {
    my ($v) = @_;
    for my $form (forms($v)) {
        my ($fname, $op) = @$form;
        subtest "$fname: integer conversion" => sub {
            plan skip_all => 'no integers' unless $v->{int_key} || $v->{int_val};
            my $m = $v->{class}->new(tmp_path($v->{name}), 1000);
            my $someval = vval($v, 5);
            my $somekey = vkey($v, 5);
            if ($v->{int_key}) {
                my @cases = ([ 3.7, 3 ], [ -3.7, -3 ], [ 0.5, 0 ], [ -0.99, 0 ], [ '42', 42 ], [ '-17', -17 ],
                             [ '1e3', 1000 ], [ '3.9', 3 ], [ '+5', 5 ], [ 100.999, 100 ]);
                push @cases, [ 32767.9, 32767 ], [ -32768.9, -32768 ] if $v->{key} eq 'int16';
                push @cases, [ 1e18, 1_000_000_000_000_000_000 ] if $v->{key} eq 'int64';
                for my $c (@cases) {
                    my ($in, $as) = @$c;
                    $op->{clear}->($m);
                    ok($op->{put}->($m, $in, $someval), "put key $in");
                    is($op->{get}->($m, $as), $someval, "... is key $as");
                    is_deeply([ $op->{keys}->($m) ], [ $as ], "... keys lists $as");
                    ok($op->{exists}->($m, $in), "... exists $in finds it too");
                }
                my $up = '77';
                utf8::upgrade($up);
                $op->{clear}->($m);
                ok($op->{put}->($m, $up, $someval), 'put key: a UTF-8 flagged numeric string');
                is($op->{get}->($m, 77), $someval, '... is key 77');
                $op->{clear}->($m);
                for my $bad ('abc', '12abc', '', '0x10', ' ', 'one') {
                    croaks_ok($v, sub { $op->{put}->($m, $bad, $someval) }, qr/'\Q$bad\E' is not an integer/,
                              "put key '$bad' croaks");
                    croaks_ok($v, sub { $op->{get}->($m, $bad) }, qr/'\Q$bad\E' is not an integer/,
                              "get key '$bad' croaks");
                }
                my $nan = 9**9**9 / 9**9**9;
                croaks_ok($v, sub { $op->{put}->($m, $nan, $someval) }, qr/does not fit|not an integer/, 'put key NaN croaks');
                is($op->{size}->($m), 0, 'nothing was stored');
            }
            if ($v->{int_val}) {
                my @cases = ([ 2.9, 2 ], [ -2.9, -2 ], [ 0.3, 0 ], [ '42', 42 ], [ '-17', -17 ], [ '1e3', 1000 ],
                             [ '3.9', 3 ]);
                push @cases, [ 32767.9, 32767 ], [ -32768.9, -32768 ] if $v->{val} eq 'int16';
                for my $c (@cases) {
                    my ($in, $as) = @$c;
                    ok($op->{put}->($m, $somekey, $in), "put value $in");
                    is($op->{get}->($m, $somekey), $as, "... reads back as $as");
                }
                croaks_ok($v, sub { $op->{put}->($m, $somekey, 32768.5) }, qr/32768 does not fit int16/,
                          '32768.5 truncates to 32768, which does not fit int16')
                    if $v->{val} eq 'int16';
                $op->{put}->($m, $somekey, 11);
                for my $bad ('abc', '12abc', '', '0x10') {
                    croaks_ok($v, sub { $op->{put}->($m, $somekey, $bad) }, qr/'\Q$bad\E' is not an integer/,
                              "put value '$bad' croaks");
                    is($op->{get}->($m, $somekey), 11, '... old value stays');
                }
                my $nan = 9**9**9 / 9**9**9;
                croaks_ok($v, sub { $op->{put}->($m, $somekey, $nan) }, qr/does not fit|not an integer/, 'put value NaN croaks');
                is($op->{get}->($m, $somekey), 11, '... old value stays');
            }
        };
        subtest "$fname: undef" => sub {
            my $m = $v->{class}->new(tmp_path($v->{name}), 1000);
            my ($k, $x) = (vkey($v, 1), vval($v, 1));
            no warnings 'uninitialized';
            croaks_ok($v, sub { $op->{put}->($m, undef, $x) }, qr/key is undef/, 'put undef key');
            croaks_ok($v, sub { $op->{get}->($m, undef) }, qr/key is undef/, 'get undef key');
            croaks_ok($v, sub { $op->{exists}->($m, undef) }, qr/key is undef/, 'exists undef key');
            croaks_ok($v, sub { $op->{remove}->($m, undef) }, qr/key is undef/, 'remove undef key');
            croaks_ok($v, sub { $op->{take}->($m, undef) }, qr/key is undef/, 'take undef key');
            croaks_ok($v, sub { $op->{get_or_set}->($m, undef, $x) }, qr/key is undef/, 'get_or_set undef key');
            croaks_ok($v, sub { $op->{put}->($m, $k, undef) }, qr/value is undef/, 'put undef value');
            croaks_ok($v, sub { $op->{get_or_set}->($m, $k, undef) }, qr/(?:value|default) is undef/, 'get_or_set undef default');
            is($op->{size}->($m), 0, 'nothing was stored');
            ok(!$op->{exists}->($m, $k), 'the key is absent');
            if ($v->{counters}) {
                croaks_ok($v, sub { $op->{incr}->($m, undef) }, qr/key is undef/, 'incr undef key');
                croaks_ok($v, sub { $op->{incr_by}->($m, $k, undef) }, qr/undef/, 'incr_by undef delta');
                ok(!$op->{exists}->($m, $k), 'the key is still absent');
            }
        };
    }
};

# ---------------------------------------------------------------------------
# Error location: Perl's usual " at FILE line N." of the caller.

{
    my $v = variant('I16');
    require Data::HashMap::Shared::I16;
    my $m = $v->{class}->new(tmp_path('I16'), 10);
    my $line = __LINE__; my $err = croak_msg(sub { $m->put(1, 70000) });
    like($err, qr/\AData::HashMap::Shared::I16: 70000 does not fit int16 at \Q$FILE\E line $line\.\n\z/,
         'method error: the message, then the caller\'s file and line');
    $line = __LINE__; $err = croak_msg(sub { $m->get(undef) });
    like($err, qr/\AData::HashMap::Shared::I16: key is undef at \Q$FILE\E line $line\.\n\z/,
         'undef key: message and caller location');
    my $kw = kw_compile($v, qq{#line 4242 "keyword-site.pl"\nshm_PFX_put \$_[0], \$_[1], \$_[2]});
    $err = croak_msg(sub { $kw->($m, 1, 70000) });
    like($err, qr/\AData::HashMap::Shared::I16: 70000 does not fit int16 at keyword-site\.pl line 4242\.\n\z/,
         'keyword error: the message, then the keyword\'s file and line');
    my $sv = variant('SS');
    require Data::HashMap::Shared::SS;
    my $s = $sv->{class}->new(tmp_path('SS'), 10);
    $line = __LINE__; $err = croak_msg(sub { $s->put('k', undef) });
    like($err, qr/\AData::HashMap::Shared::SS: value is undef at \Q$FILE\E line $line\.\n\z/,
         'SS undef value: message and caller location');
    $line = __LINE__; $err = croak_msg(sub { Data::HashMap::Shared::I16->new(tmp_path('I16'), 0) });
    like($err, qr/\AData::HashMap::Shared::I16: .*max_entries.* at \Q$FILE\E line $line\.\n\z/,
         'constructor error: message and caller location');
}

# ---------------------------------------------------------------------------
# Byte strings.

for_each_variant {
    my ($v) = @_;
    for my $form (forms($v)) {
        my ($fname, $op) = @$form;
        subtest "$fname: byte-string keys" => sub {
            plan skip_all => 'integer keys' if $v->{int_key};
            my $m = $v->{class}->new(tmp_path($v->{name}), 5000);
            my @x = map { vval($v, $_) } 0 .. 9;

            ok($op->{put}->($m, '', $x[0]), 'the empty string is a key');
            is($op->{get}->($m, ''), $x[0], '... get');
            ok($op->{exists}->($m, ''), '... exists');
            is_deeply([ $op->{keys}->($m) ], [ '' ], '... keys lists it');
            is_deeply([ $op->{each}->($m) ], [ '', $x[0] ], '... each returns it');
            $op->{iter_reset}->($m);

            my @nul = ("\0", "\0\0", "a\0b", "a\0c", "a", "a\0", "\0a");
            ok($op->{put}->($m, $nul[$_], $x[ $_ + 1 ]), "put key with NUL #$_") for 0 .. $#nul;
            is($op->{size}->($m), 1 + @nul, 'keys that differ only around NUL bytes are distinct');
            is($op->{get}->($m, $nul[$_]), $x[ $_ + 1 ], "get key with NUL #$_") for 0 .. $#nul;
            my %k = map { ($_ => 1) } $op->{keys}->($m);
            is_deeply(\%k, { map { ($_ => 1) } '', @nul }, 'keys returns them byte for byte');
            ok($op->{remove}->($m, "a\0b"), 'remove "a\0b"');
            ok($op->{exists}->($m, "a\0c"), '"a\0c" stays');
            ok($op->{exists}->($m, "a"), '"a" stays');

            $op->{clear}->($m);
            ok($op->{put}->($m, chr($_), vval($v, $_)), "put key chr($_)") for 0 .. 255;
            is($op->{size}->($m), 256, 'the 256 one-byte keys are 256 entries');
            my @wrong = grep { ($op->{get}->($m, chr($_)) // '<undef>') ne vval($v, $_) } 0 .. 255;
            is("@wrong", '', 'every one-byte key reads back its own value');
            my %bytes = map { ($_ => 1) } $op->{keys}->($m);
            is(scalar(grep { length($_) == 1 && !utf8::is_utf8($_) } keys %bytes), 256, 'keys returns all 256 bytes unflagged');
            my $all = join '', map { chr } 0 .. 255;
            ok($op->{put}->($m, $all, $x[1]), 'a key made of all 256 bytes');
            is($op->{get}->($m, $all), $x[1], '... reads back');
            ok(!$op->{exists}->($m, substr($all, 0, 255)), '... a prefix of it is another key');

            $op->{clear}->($m);
            ok($op->{put}->($m, $_, $x[2]), "put '$_'") for '1', '01', ' 1', '1.0';
            is($op->{size}->($m), 4, 'numeric-looking string keys are distinct byte strings');
        };
        subtest "$fname: byte-string values" => sub {
            plan skip_all => 'integer values' if $v->{int_val};
            my $m = $v->{class}->new(tmp_path($v->{name}), 5000);
            my @k = map { vkey($v, $_) } 0 .. 300;
            ok($op->{put}->($m, $k[0], ''), 'the empty string is a value');
            is($op->{get}->($m, $k[0]), '', '... get returns "" (defined)');
            ok($op->{exists}->($m, $k[0]), '... exists');
            is($op->{take}->($m, $k[0]), '', '... take returns ""');
            is($op->{get_or_set}->($m, $k[0], ''), '', 'get_or_set stores and returns ""');
            is($op->{get_or_set}->($m, $k[0], 'x'), '', '... then returns the stored ""');
            my @vals = ("\0", "\0\0\0", "a\0b", join('', map { chr } 0 .. 255), join('', map { chr } reverse 0 .. 255));
            ok($op->{put}->($m, $k[ $_ + 1 ], $vals[$_]), "put value with NUL #$_") for 0 .. $#vals;
            is($op->{get}->($m, $k[ $_ + 1 ]), $vals[$_], "get value with NUL #$_") for 0 .. $#vals;
            ok($op->{put}->($m, $k[ 10 + $_ ], chr($_)), "put value chr($_)") for 0 .. 255;
            my @wrong = grep { ($op->{get}->($m, $k[ 10 + $_ ]) // '<undef>') ne chr($_) } 0 .. 255;
            is("@wrong", '', 'every one-byte value reads back');
        };
    }
};

# ---------------------------------------------------------------------------
# The UTF-8 flag: restored on every read, not part of identity.

my $WIDE = "sm\x{263A}le";        # flagged, wide char
my $LAT  = "caf\x{e9}";           # latin-1 chars ...
utf8::upgrade(my $LATU = $LAT);   # ... flagged: bytes "caf\xc3\xa9"
my $LATB = "caf\xc3\xa9";         # the same bytes, unflagged

sub flags_ok {
    my ($got, $want, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    ok(defined $got && $got eq $want && (utf8::is_utf8($got) ? 1 : 0) == (utf8::is_utf8($want) ? 1 : 0), $name)
        or diag(defined $got ? sprintf("got %s (utf8=%d)", join('.', map { sprintf '%02x', ord } split //, $got), utf8::is_utf8($got) ? 1 : 0) : 'got undef');
}

for_each_variant {
    my ($v) = @_;
    for my $form (forms($v)) {
        my ($fname, $op) = @$form;
        subtest "$fname: UTF-8 keys" => sub {
            plan skip_all => 'integer keys' if $v->{int_key};
            my $m = $v->{class}->new(tmp_path($v->{name}), 100);
            my $x = vval($v, 1);
            ok($op->{put}->($m, $WIDE, $x), 'put a key with a wide character');
            is($op->{get}->($m, $WIDE), $x, '... get finds it');
            my @k = $op->{keys}->($m);
            flags_ok($k[0], $WIDE, 'keys restores the flag');
            my @e = $op->{each}->($m);
            flags_ok($e[0], $WIDE, 'each restores the flag');
            $op->{iter_reset}->($m);
            my @i = $op->{items}->($m);
            flags_ok($i[0], $WIDE, 'items restores the flag');
            my $h = $op->{to_hash}->($m);
            ok(exists $h->{$WIDE}, 'to_hash has the key');
            flags_ok((keys %$h)[0], $WIDE, 'to_hash key is the character string');

            $op->{clear}->($m);
            ok($op->{put}->($m, $LATB, $x), 'put "caf\xc3\xa9" unflagged');
            @k = $op->{keys}->($m);
            flags_ok($k[0], $LATB, 'keys: unflagged stays unflagged');
            $op->{clear}->($m);
            ok($op->{put}->($m, $LATU, $x), 'put "caf\x{e9}" flagged');
            @k = $op->{keys}->($m);
            flags_ok($k[0], $LATU, 'keys: flagged comes back flagged, same characters');
            @e = $op->{each}->($m);
            flags_ok($e[0], $LATU, 'each: flagged');
            $op->{iter_reset}->($m);

            # Identity is the bytes: flagged "caf\x{e9}" and unflagged "caf\xc3\xa9" are one entry.
            my $y = vval($v, 2);
            ok($op->{exists}->($m, $LATB), 'the same bytes without the flag find the entry');
            is($op->{get}->($m, $LATB), $x, '... get too');
            ok($op->{put}->($m, $LATB, $y), 'put with the unflagged bytes');
            is($op->{size}->($m), 1, '... overwrites: one entry');
            is($op->{get}->($m, $LATU), $y, '... the flagged key sees the new value');
            # Unflagged "caf\xe9" is other bytes: another entry.
            ok($op->{put}->($m, $LAT, $x), 'put "caf\xe9" unflagged (4 bytes)');
            is($op->{size}->($m), 2, '... is a different entry');
            is($op->{get}->($m, $LAT), $x, '... with its own value');
            is($op->{get}->($m, $LATU), $y, '... the other one unchanged');
            ok($op->{remove}->($m, $LATU), 'remove with the flagged key');
            ok(!$op->{exists}->($m, $LATB), '... removed the entry of those bytes');
            ok($op->{exists}->($m, $LAT), '... the 4-byte key stays');
        };
        subtest "$fname: UTF-8 values" => sub {
            plan skip_all => 'integer values' if $v->{int_val};
            my $m = $v->{class}->new(tmp_path($v->{name}), 100);
            my ($k1, $k2, $k3, $k4) = map { vkey($v, $_) } 1 .. 4;
            ok($op->{put}->($m, $k1, $WIDE), 'put a wide-character value');
            ok($op->{put}->($m, $k2, $LATU), 'put a flagged latin-1 value');
            ok($op->{put}->($m, $k3, $LATB), 'put its bytes unflagged');
            ok($op->{put}->($m, $k4, $LAT), 'put an unflagged latin-1 value');
            flags_ok($op->{get}->($m, $k1), $WIDE, 'get: wide value, flagged');
            flags_ok($op->{get}->($m, $k2), $LATU, 'get: flagged latin-1 value');
            flags_ok($op->{get}->($m, $k3), $LATB, 'get: unflagged bytes stay unflagged');
            flags_ok($op->{get}->($m, $k4), $LAT, 'get: unflagged latin-1 stays unflagged');
            is(length($op->{get}->($m, $k2)), 4, 'flagged value: 4 characters');
            is(length($op->{get}->($m, $k3)), 5, 'unflagged value: 5 bytes');

            my %by = (do { no warnings; ($k1 => $WIDE, $k2 => $LATU, $k3 => $LATB, $k4 => $LAT) });
            my @i = $op->{items}->($m);
            my $ok = 1;
            while (my ($ik, $iv) = splice @i, 0, 2) {
                $ok = 0 unless $iv eq $by{$ik} && !!utf8::is_utf8($iv) == !!utf8::is_utf8($by{$ik});
            }
            ok($ok, 'items restore each value\'s flag');
            my %fl = map { ($_ => 1) } grep { utf8::is_utf8($_) } $op->{values}->($m);
            is(scalar(keys %fl), 2, 'values: the two flagged values are flagged');
            $op->{iter_reset}->($m);
            $ok = 1;
            my $n = 0;
            while (my ($ek, $ev) = $op->{each}->($m)) {
                $n++;
                $ok = 0 unless $ev eq $by{$ek} && !!utf8::is_utf8($ev) == !!utf8::is_utf8($by{$ek});
            }
            ok($ok && $n == 4, 'each restores each value\'s flag');
            my $h = $op->{to_hash}->($m);
            flags_ok($h->{$k1}, $WIDE, 'to_hash value flagged');
            flags_ok($h->{$k3}, $LATB, 'to_hash value unflagged');
            flags_ok($op->{get_or_set}->($m, $k1, 'zz'), $WIDE, 'get_or_set of a present key: flag restored');
            flags_ok($op->{take}->($m, $k1), $WIDE, 'take: flag restored');
            flags_ok($op->{take}->($m, $k3), $LATB, 'take: unflagged stays unflagged');
            flags_ok($op->{get_or_set}->($m, $k1, $WIDE), $WIDE, 'get_or_set storing a flagged default returns it flagged');
            flags_ok($op->{get}->($m, $k1), $WIDE, '... and stores it flagged');
            ok($op->{put}->($m, $k2, $LATB), 'overwrite a flagged value with the same bytes unflagged');
            flags_ok($op->{get}->($m, $k2), $LATB, '... the flag follows the last put');
        };
    }
};

# ---------------------------------------------------------------------------
# 1 MiB keys and values.

for_each_variant {
    my ($v) = @_;
    my $m = $v->{class}->new(tmp_path($v->{name}), 100);
    my $big = join '', map { chr(($_ * 131 + 7) % 256) } 0 .. 4095;
    $big x= 256;    # 1 MiB, all byte values, not periodic within a page
    substr($big, -8) = 'the-end!';
    is(length($big), 1 << 20, '1 MiB sample');
    if (!$v->{int_val}) {
        my $k = vkey($v, 1);
        ok($m->put($k, $big), 'put a 1 MiB value');
        my $got = $m->get($k);
        ok(defined $got && $got eq $big, '... get returns it intact');
        ok($m->put($k, 'small'), 'overwrite with a small value');
        is($m->get($k), 'small', '... reads back');
        ok($m->put($k, $big . 'x'), 'grow it back beyond 1 MiB');
        is(length($m->get($k)), (1 << 20) + 1, '... reads back');
        my $t = kw_ops($v)->{take}->($m, $k);
        ok(defined $t && $t eq $big . 'x', 'keyword take of the big value');
    }
    if (!$v->{int_key}) {
        my $x = vval($v, 7);
        ok($m->put($big, $x), 'put a 1 MiB key');
        is($m->get($big), $x, '... get finds it');
        ok(!$m->exists(substr($big, 0, -1)), '... the key one byte shorter is another');
        my @k = $m->keys;
        ok(@k == 1 && $k[0] eq $big, 'keys returns the 1 MiB key intact');
        ok($m->remove($big), 'remove it');
        is($m->size, 0, 'empty again');
    }
    ok($m->put(vkey($v, 3), vval($v, 3)), 'the map still works');
};

subtest 'every string length from 0 to 1100 round-trips, as key and as value' => sub {
    # crosses every small size class and the inline/arena boundary at 7/8 bytes
    my $m = Data::HashMap::Shared::SS->new(tmp_path('lengths'), 5000);
    my @bad;
    for my $len (0 .. 1100) {
        my $k = 'k' x $len;
        my $val = join '', map { chr(($_ * 7 + $len) % 256) } 1 .. $len;
        $m->put($k, $val) or push(@bad, "put $len"), next;
        my $got = $m->get($k);
        push @bad, "get $len" unless defined $got && $got eq $val;
    }
    is("@bad", '', 'no length is lost');
    is($m->size, 1101, 'one entry per length');
};

done_testing;
