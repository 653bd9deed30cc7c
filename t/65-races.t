use strict;
use warnings;
use Test::More;
use lib 't/lib';
use DHMSTest;

# Pins the atomicity of the conditional writers of SPEC section 5 across
# processes (all started together on a pipe barrier, each under an alarm):
# 8 processes cas one key from its initial value to their own id: exactly
# one succeeds and the value is its id; 6 processes add one key: exactly one
# succeeds and the value is its id; cas loops from several processes lose no
# update; max racing incr (and min racing decr) from another process: with
# max arguments never above the running value, max never changes the value
# (each incr result is the previous one plus 1), the value never goes back
# (every result and read seen by the max process is non-decreasing, never
# below its argument), and the final value is the start plus the number of
# increments.

eval "require $_->{class}; 1" or die $@ for @VARIANTS;

my $II = variant('II');
my $ROUNDS = 8;

# An id per process that fits every variant's values.
sub id_of { my ($v, $i) = @_; $v->{int_val} ? 1000 + $i : "proc:$i" }

# ---- one winner ------------------------------------------------------------------

for my $name (qw(II SS SI16 I32S)) {
    my $v = variant($name);
    for my $race ([ cas => 8 ], [ add => 6 ]) {
        my ($op, $n) = @$race;
        subtest "$name: $n processes $op one key, $ROUNDS rounds" => sub {
            my $path = tmp_path("$op-$name");
            my $m = $v->{class}->new($path, 1000);
            my $res = $II->{class}->new(tmp_path("res-$name"), 1000);
            my ($one_winner, $value_ok, $clean) = (0, 0, 0);
            for my $r (1 .. $ROUNDS) {
                my $key = vkey($v, $r);
                my $init = vval($v, 0);
                $m->put($key, $init) if $op eq 'cas';
                my @st = run_children($n, sub {
                    my ($i) = @_;
                    # Half use the inherited handle, half open their own.
                    my $h = $i % 2 ? $m : $v->{class}->new($path, 1000);
                    my $won = $op eq 'cas' ? $h->cas($key, $init, id_of($v, $i)) : $h->add($key, id_of($v, $i));
                    $res->put($r * 100 + $i, $won ? 1 : 0) or die "recording the result failed\n";
                }, alarm => 20);
                $clean++ unless grep { $_ != 0 } @st;
                my @won = grep { $res->get($r * 100 + $_) } 0 .. $n - 1;
                my @recorded = grep { defined $res->get($r * 100 + $_) } 0 .. $n - 1;
                if (@won == 1 && @recorded == $n) {
                    $one_winner++;
                    my $got = $m->get($key);
                    if (defined $got && $got eq id_of($v, $won[0])) { $value_ok++ }
                    else { diag "round $r: winner $won[0], but the value is " . ($got // 'undef') }
                }
                else {
                    diag "round $r: " . scalar(@won) . " winners (@won) of " . scalar(@recorded) . " recorded; value "
                        . ($m->get($key) // 'undef');
                }
            }
            is($clean, $ROUNDS, 'every child exited cleanly');
            is($one_winner, $ROUNDS, "exactly one $op returned true, in every round");
            is($value_ok, $ROUNDS, "... and the value is the winner's id");
            is($m->size, $ROUNDS, 'one entry per round');
        };
    }
}

# ---- cas loops lose no update ---------------------------------------------------

for my $name (qw(II SS)) {
    my $v = variant($name);
    subtest "$name: 4 processes increment one key by cas loops" => sub {
        my $path = tmp_path("casloop-$name");
        my $m = $v->{class}->new($path, 100);
        my $k = vkey($v, 1);
        $m->put($k, 0);
        my $per = 1500;
        children_ok(4, sub {
            my ($i) = @_;
            my $h = $i % 2 ? $m : $v->{class}->new($path, 100);
            for (1 .. $per) {
                while (1) {
                    my $old = $h->get($k);
                    last if $h->cas($k, $old, $old + 1);
                }
            }
        }, "4 x $per cas-loop increments", alarm => 60);
        is($m->get($k), 4 * $per, 'no increment lost: ' . 4 * $per);
    };
}

# ---- max racing incr, min racing decr ----------------------------------------------

for my $spec ([ II => 0 ], [ SI => 0 ], [ I16 => 0 ], [ SI16 => 0 ], [ II => 100 ]) {
    my ($name, $lru) = @$spec;
    my $v = variant($name);
    for my $dir ([ max => 'incr', 1 ], [ min => 'decr', -1 ]) {
        my ($bound, $step, $sign) = @$dir;
        subtest "$name" . ($lru ? " (LRU)" : '') . ": $bound racing $step" => sub {
            my $path = tmp_path("$bound-$name");
            my $m = $v->{class}->new($path, 1000, $lru);
            my $res = $II->{class}->new(tmp_path("res-$bound-$name"), 10);
            my $k = vkey($v, 3);
            my $start = 1000;
            my $n = 20_000;
            my $final = $start + $sign * $n;
            my (undef, $vmax) = int_range($v->{val});
            $m->put($k, $start);
            # $sign * x turns "min on decreasing values" into "max on increasing ones".
            my @st = run_children(2, sub {
                my ($i) = @_;
                my $h = $v->{class}->new($path, 1000);
                if ($i == 0) {
                    # Every 1000 steps, wait until the other process has made progress, so
                    # that the two really overlap from start to end.
                    my $progress = sub {
                        my $last = $res->get(2) // 0;
                        my $t = time + 10;
                        until (($res->get(2) // 0) > $last) { die "the $bound process makes no progress\n" if time > $t }
                    };
                    my $prev = $start;
                    for my $c (1 .. $n) {
                        $progress->() if $c % 1000 == 1;
                        my $got = $h->$step($k);
                        die "$step $c returned $got after $prev: not one step on (lost update, or $bound changed the value)\n"
                            unless $got == $prev + $sign;
                        $prev = $got;
                    }
                    return;
                }
                my ($seen, $calls, $raised) = ($start, 0, 0);
                while (1) {
                    # Alternately the far end (never the winner) and the last value read (current-ish,
                    # never beyond the current value).
                    my $d = $calls % 2 ? ($sign > 0 ? 0 : $vmax) : $seen;
                    my $r = $h->$bound($k, $d);
                    die "$bound($d) returned $r: beyond its argument the wrong way\n" if $sign * ($r - $d) < 0;
                    die "$bound($d) returned $r after $seen was seen: the value went back\n" if $sign * ($r - $seen) < 0;
                    $seen = $r;
                    my $g = $h->get($k);
                    die "get returned $g after $seen was seen: the value went back\n" if $sign * ($g - $seen) < 0;
                    $seen = $g;
                    $calls++;
                    $res->put(2, $calls) if $calls % 16 == 0;
                    last if $g == $final;
                }
                $res->put(1, $calls);
            }, alarm => 60);
            is($st[0], 0, "the $step process: every result was the previous one plus $sign") or diag describe_status($st[0]);
            is($st[1], 0, "the $bound process: results and reads never went back") or diag describe_status($st[1]);
            is($m->get($k), $final, "final value: $start " . ($sign > 0 ? '+' : '-') . " $n = $final");
            cmp_ok($res->get(1) // 0, '>', 0, "$bound was called " . ($res->get(1) // 0) . ' times during the race');
        };
    }
}

done_testing;
