use strict;
use warnings;
use Test::More;
use lib 't/lib';
use DHMSTest;

# Pins the counters of SPEC section 5 on the integer-value variants: a
# missing key starts at 0, each call returns the new value, a result outside
# the value type croaks and changes nothing (nor creates the key); deltas
# follow the integer rules of section 4. String-value variants have no
# counters: calling the method croaks and says which variants have them;
# there is no keyword.

my %LIMIT_RE = (int16 => qr/int16|range|overflow/i, int32 => qr/int32|range|overflow/i, int64 => qr/int64|range|overflow/i);

for_each_variant {
    my ($v) = @_;
    my ($min, $max) = int_range($v->{val});
    for my $form (forms($v)) {
        my ($fname, $op) = @$form;
        subtest $fname => sub {
            my $m = $v->{class}->new(tmp_path($v->{name}), 1000);
            my ($ka, $kb, $kc, $kd) = map { vkey($v, $_) } 1 .. 4;

            is($op->{incr}->($m, $ka), 1, 'incr of a missing key: 1');
            is($op->{get}->($m, $ka), 1, '... stored');
            is($op->{incr}->($m, $ka), 2, 'incr: 2');
            is($op->{decr}->($m, $ka), 1, 'decr: 1');
            is($op->{decr}->($m, $kb), -1, 'decr of a missing key: -1');
            is($op->{get}->($m, $kb), -1, '... stored');
            is($op->{incr_by}->($m, $kc, 10), 10, 'incr_by of a missing key: the delta');
            is($op->{incr_by}->($m, $kc, -25), -15, 'incr_by a negative delta');
            is($op->{incr_by}->($m, $kc, 0), -15, 'incr_by 0 returns the value');
            is($op->{incr_by}->($m, $kd, 0), 0, 'incr_by 0 of a missing key: 0');
            is($op->{incr_by}->($m, $kc, 2.9), -13, 'a fractional delta truncates toward zero');
            is($op->{incr_by}->($m, $kc, -2.9), -15, '... also negative');
            is($op->{incr_by}->($m, $kc, '5'), -10, 'a numeric string delta');
            is($op->{get}->($m, $kc), -10, 'get agrees');
            ok($op->{exists}->($m, $kd), 'incr_by 0 of a missing key stores 0');
            is($op->{size}->($m), 4, 'size counts the counters');

            $op->{put}->($m, $ka, 100);
            is($op->{incr}->($m, $ka), 101, 'incr continues from a put value');
            my $n = 0;
            $n = $op->{incr}->($m, $ka) for 1 .. 1000;
            is($n, 1101, '1000 more increments');
            is($op->{get}->($m, $ka), 1101, 'get agrees');

            # The range.
            my $re = $LIMIT_RE{ $v->{val} };
            ok($op->{put}->($m, $ka, $max), "put $max");
            croaks_ok($v, sub { $op->{incr}->($m, $ka) }, $re, "incr at $max croaks");
            is($op->{get}->($m, $ka), $max, '... unchanged');
            croaks_ok($v, sub { $op->{incr_by}->($m, $ka, 1) }, $re, 'incr_by 1 croaks');
            croaks_ok($v, sub { $op->{incr_by}->($m, $ka, $max) }, $re, "incr_by $max croaks");
            is($op->{get}->($m, $ka), $max, '... unchanged');
            is($op->{decr}->($m, $ka), $max - 1, 'decr from the maximum works');
            is($op->{incr}->($m, $ka), $max, 'incr back to the maximum works');

            ok($op->{put}->($m, $kb, $min), "put $min");
            croaks_ok($v, sub { $op->{decr}->($m, $kb) }, $re, "decr at $min croaks");
            croaks_ok($v, sub { $op->{incr_by}->($m, $kb, -1) }, $re, 'incr_by -1 croaks');
            is($op->{get}->($m, $kb), $min, '... unchanged');
            is($op->{incr}->($m, $kb), $min + 1, 'incr from the minimum works');
            is($op->{incr_by}->($m, $kb, $max), $min + 1 + $max, "incr_by $max from the minimum: 0") ;

            # Across the whole range in one step.
            ok($op->{put}->($m, $kc, $min), "put $min");
            is($op->{incr_by}->($m, $kc, $max), -1, "$min + $max = -1");

            # A new key whose first result does not fit: croaks, not created.
            my $ke = vkey($v, 5);
            my $too_big = { int16 => 40000, int32 => 3_000_000_000, int64 => '9223372036854775808' }->{ $v->{val} };
            croaks_ok($v, sub { $op->{incr_by}->($m, $ke, $too_big) }, qr/does not fit|range|overflow/i,
                      "incr_by $too_big on a missing key croaks");
            ok(!$op->{exists}->($m, $ke), '... and does not create the key');
            croaks_ok($v, sub { $op->{incr_by}->($m, $ke, 'abc') }, qr/'abc' is not an integer/, 'incr_by a non-number croaks');
            ok(!$op->{exists}->($m, $ke), '... and does not create the key');
            croaks_ok($v, sub { $op->{incr_by}->($m, $ke, 9**9**9) }, qr/does not fit|range|overflow|not an integer/i,
                      'incr_by infinity croaks');
            ok(!$op->{exists}->($m, $ke), '... and does not create the key');
            if ($v->{val} eq 'int64') {
                ok($op->{put}->($m, $ke, 0), 'put 0');
                croaks_ok($v, sub { $op->{incr_by}->($m, $ke, 9223372036854775808) }, qr/does not fit|range|overflow/i,
                          'a delta beyond int64 croaks');
                is($op->{get}->($m, $ke), 0, '... unchanged');
                is($op->{incr_by}->($m, $ke, -9223372036854775807 - 1), -9223372036854775807 - 1,
                   'incr_by the int64 minimum from 0');
            }
            else {
                # A delta beyond the value type that brings the result back in range is fine:
                # only the result must fit.
                ok($op->{put}->($m, $ke, $max), "put $max");
                my $delta = { int16 => -40000, int32 => -3_000_000_000 }->{ $v->{val} };
                my $want = $max + $delta;
                if ($want >= $min) {
                    is($op->{incr_by}->($m, $ke, $delta), $want, "incr_by $delta from $max");
                }
                else {
                    croaks_ok($v, sub { $op->{incr_by}->($m, $ke, $delta) }, $re, "incr_by $delta from $max croaks");
                }
            }

            # Counters on string keys with odd bytes, and the counter keeps its key.
            if (!$v->{int_key}) {
                is($op->{incr}->($m, "a\0b"), 1, 'incr a key with a NUL byte');
                is($op->{incr}->($m, ''), 1, 'incr the empty key');
                is($op->{incr}->($m, ''), 2, '... again');
                my %k = map { ($_ => 1) } $op->{keys}->($m);
                ok($k{"a\0b"} && exists $k{''}, 'keys lists them');
            }
        };
    }
} counters => 1;

for_each_variant {
    my ($v) = @_;
    my $m = $v->{class}->new(tmp_path($v->{name}), 10);
    for my $op (@COUNTER_OPS) {
        my @args = $op eq 'incr_by' ? (vkey($v, 1), 1) : (vkey($v, 1));
        ok(!eval { $m->$op(@args); 1 }, "calling $op croaks");
        like($@, qr/^\Q$v->{class}\E: \Q$op\E needs integer values.*use an integer-value variant/,
             '... naming the method and saying what to do');
        my $kw = "shm_$v->{prefix}_$op";
        ok(!eval { kw_compile($v, "$kw(\$_[0], " . join(', ', map { "\$_[$_]" } 1 .. @args) . ')')->($m, @args); 1 },
           "$kw is not a keyword");
    }
    is($m->size, 0, 'nothing was stored');
} counters => 0;

done_testing;
