use strict;
use warnings;
use Test::More;
use lib 't/lib';
use DHMSTest;
use Time::HiRes ();

# Pins the iteration guarantee of SPEC section 5 for each and for cursors:
# an entry present for the whole walk is returned exactly once, even when
# the table grows, shrinks or is compacted during the walk, by another
# process or by this one; whatever else a walk returns is an entry that was
# inserted during it, with its own value; a walk always ends.
#
# Another process: a map of 5,000 base entries; a child (alarm 60) inserts
# 30,000 other keys and removes them again, round after round (each round
# grows the table several times and shrinks it back), while the parent walks
# again and again until the child has done at least 3 rounds. The capacity
# is read at every step; the number of changes seen during the walks goes
# into a diag (timing decides it, so it is not asserted; the child asserts
# that its rounds did grow and shrink the table).
#
# This process: during a walk, insert enough keys to double the capacity
# twice, then remove them all (the table shrinks), at two points of the walk.

eval "require $_->{class}; 1" or die $@ for @VARIANTS;

my $BASE  = 5_000;
my $CHURN = 30_000;
my $MAXE  = 200_000;

# Keys and values of the base entries and of the churn, per variant.
sub base_key  { my ($v, $i) = @_; $v->{int_key} ? 2 * $i : "base:$i" }
sub churn_key { my ($v, $j) = @_; $v->{int_key} ? 1_000_001 + 2 * $j : "churn:$j" }
sub base_val  { my ($v, $i) = @_; $v->{int_val} ? 3 * $i + 7 : "bv:$i" }
sub churn_val { my ($v, $j) = @_; $v->{int_val} ? -($j + 1) : "cv:$j" }

# Classify a returned pair: 'base' index, 'churn' index, or undef (foreign).
sub classify {
    my ($v, $k, $x) = @_;
    if ($v->{int_key}) {
        if ($k >= 0 && $k < 2 * $BASE && $k % 2 == 0) {
            my $i = $k / 2;
            return ('base', $i) if "$x" eq '' . base_val($v, $i);
        }
        elsif ($k >= 1_000_001 && ($k - 1_000_001) % 2 == 0) {
            my $j = ($k - 1_000_001) / 2;
            return ('churn', $j) if $j < $CHURN && "$x" eq '' . churn_val($v, $j);
        }
        return;
    }
    if ($k =~ /\Abase:(\d+)\z/ && $1 < $BASE) {
        return ('base', $1) if "$x" eq base_val($v, $1);
    }
    elsif ($k =~ /\Achurn:(\d+)\z/ && $1 < $CHURN) {
        return ('churn', $1) if "$x" eq churn_val($v, $1);
    }
    return;
}

# One walk: $next->() gives the next (k, v) or (); $hook->($step) runs after
# each step. Returns { seen => [counts per base index], foreign => n,
# churn => n, steps => n, capchanges => n, ended => bool }.
sub one_walk {
    my ($v, $m, $next, $hook) = @_;
    my @seen = (0) x $BASE;
    my %r = (foreign => 0, churn => 0, steps => 0, capchanges => 0, ended => 0, sample => '');
    my $cap = $m->capacity;
    my $limit = 20 * ($BASE + $CHURN);
    while (my ($k, $x) = $next->()) {
        my ($kind, $i) = classify($v, $k, $x);
        if (!$kind) {
            $r{foreign}++;
            $r{sample} ||= "$k => " . ($x // 'undef');
        }
        elsif ($kind eq 'base') { $seen[$i]++ }
        else                    { $r{churn}++ }
        my $c = $m->capacity;
        $r{capchanges}++ if $c != $cap;
        $cap = $c;
        $hook->($r{steps}) if $hook;
        if (++$r{steps} > $limit) { return { %r, seen => \@seen } }
    }
    $r{ended} = 1;
    return { %r, seen => \@seen };
}

# The assertions on one walk.
sub walk_ok {
    my ($w, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @missing = grep { $w->{seen}[$_] == 0 } 0 .. $BASE - 1;
    my @twice   = grep { $w->{seen}[$_] > 1 } 0 .. $BASE - 1;
    my $ok = $w->{ended} && !@missing && !@twice && !$w->{foreign};
    ok($ok, "$name: every base entry exactly once, nothing foreign")
        or diag(sprintf "ended=%d steps=%d missing=%d (%s) more than once=%d (%s) foreign=%d (%s)",
                $w->{ended}, $w->{steps}, scalar(@missing), "@missing[0 .. ($#missing < 5 ? $#missing : 5)]",
                scalar(@twice), "@twice[0 .. ($#twice < 5 ? $#twice : 5)]", $w->{foreign}, $w->{sample});
    return $ok;
}

sub fill_base {
    my ($v, $m) = @_;
    $m->put(base_key($v, $_), base_val($v, $_)) or die "put base $_" for 0 .. $BASE - 1;
}

# The child's work: rounds of inserting and removing the churn keys.
sub churn {
    my ($v, $path, $ctl) = @_;
    my $cm = $v->{class}->new($path, $MAXE);
    my ($grows, $shrinks, $cap) = (0, 0, $cm->capacity);
    my $note = sub {
        my $c = $cm->capacity;
        $grows++   if $c > $cap;
        $shrinks++ if $c < $cap;
        $cap = $c;
    };
    my $rounds = 0;
    my $t0 = time;
    # At least 3 rounds; more while the parent is still walking.
    while ($rounds < 3 || (!$ctl->get(4) && $rounds < 40 && time - $t0 < 25)) {
        for my $j (0 .. $CHURN - 1) {
            $cm->put(churn_key($v, $j), churn_val($v, $j)) or die "put churn $j returned false\n";
            $note->() if $j % 500 == 0;
        }
        $note->();
        for my $j (0 .. $CHURN - 1) {
            $cm->remove(churn_key($v, $j)) or die "remove churn $j returned false\n";
            $note->() if $j % 500 == 0;
        }
        $note->();
        $rounds++;
        $ctl->put(1, $rounds);
        $ctl->put(2, $grows);
        $ctl->put(3, $shrinks);
    }
    return "$rounds,$grows,$shrinks";
}

# ---- another process churns --------------------------------------------------

for my $name (qw(SS SI II)) {
    my $v = variant($name);
    for my $walker (qw(each cursor)) {
        subtest "$name: $walker walks while another process grows and shrinks the table" => sub {
            my $path = tmp_path("churn-$name");
            my $m = $v->{class}->new($path, $MAXE);
            fill_base($v, $m);
            my $ctl = variant('II')->{class}->new(tmp_path("ctl-$name"), 10);
            $ctl->put($_, 0) for 1 .. 3;    # 1: rounds done, 2: grows seen, 3: shrinks seen
            my $cap0 = $m->capacity;

            my $child = start_child(sub {
                my $r = eval { churn($v, $path, $ctl) };
                $ctl->put(1, 1_000_000) unless defined $r;    # the parent stops walking at once
                die $@ unless defined $r;
                return $r;
            }, alarm => 60);

            my (@walks, $capchanges, $churn_seen);
            $capchanges = $churn_seen = 0;
            my $t0 = Time::HiRes::time();
            under_alarm(60, sub {
                while (@walks < 3 || $ctl->get(1) < 3) {
                    my $w;
                    if ($walker eq 'each') {
                        $m->iter_reset;
                        $w = one_walk($v, $m, sub { $m->each });
                    }
                    else {
                        my $c = $m->cursor;
                        $w = one_walk($v, $m, sub { $c->next });
                    }
                    push @walks, $w;
                    $capchanges += $w->{capchanges};
                    $churn_seen += $w->{churn};
                    last if Time::HiRes::time() - $t0 > 40;
                }
            });
            $ctl->put(4, 1);    # the child may stop after its round
            my ($st, $out) = finish_child($child);
            is($st, 0, 'the churning child exited cleanly') or diag describe_status($st);
            like($out, qr/\Aok:\d+,\d+,\d+\z/, 'the child did all its work') or diag $out;
            my ($rounds, $grows, $shrinks) = $out =~ /(\d+),(\d+),(\d+)/;
            cmp_ok($grows // 0, '>=', 3 * 2, "the child's rounds grew the table (grows seen by the child: " . ($grows // '?') . ')');
            cmp_ok($shrinks // 0, '>=', 3, "... and shrank it (shrinks seen: " . ($shrinks // '?') . ')');

            my $i = 0;
            my $bad = 0;
            for my $w (@walks) {
                $i++;
                walk_ok($w, "walk $i ($w->{steps} steps, $w->{churn} churn entries, $w->{capchanges} capacity changes)")
                    or $bad++;
                last if $bad > 3;
            }
            diag(sprintf "%s %s: %d walks during %s child rounds; capacity changes seen during the walks: %d; churn entries returned: %d",
                 $name, $walker, scalar(@walks), $rounds // '?', $capchanges, $churn_seen);
            is($m->size, $BASE, 'afterwards the map holds the base entries');
            # And a quiet walk for good measure.
            $m->iter_reset;
            walk_ok(one_walk($v, $m, sub { $m->each }), 'a walk after the churn');
        };
    }
}

# ---- this process grows and shrinks the table during the walk -----------------

for my $name (qw(SS SI II)) {
    my $v = variant($name);
    for my $walker (qw(each cursor)) {
        for my $at ([ 1000, 3000 ], [ 4000, 4001 ], [ 0, 4990 ]) {
            my ($grow_at, $shrink_at) = @$at;
            subtest "$name: $walker walk; this process grows the table at step $grow_at, shrinks it at step $shrink_at" => sub {
                my $m = $v->{class}->new(tmp_path("self-$name"), $MAXE);
                fill_base($v, $m);
                my $cap0 = $m->capacity;
                my ($capmax, $capafter) = (0, 0);
                my $hook = sub {
                    my ($step) = @_;
                    if ($step == $grow_at) {
                        $m->put(churn_key($v, $_), churn_val($v, $_)) or die "put churn $_" for 0 .. $CHURN - 1;
                        $capmax = $m->capacity;
                    }
                    if ($step == $shrink_at) {
                        $m->remove(churn_key($v, $_)) or die "remove churn $_" for 0 .. $CHURN - 1;
                        $capafter = $m->capacity;
                    }
                };
                my $w;
                under_alarm(30, sub {
                    if ($walker eq 'each') {
                        $m->iter_reset;
                        $w = one_walk($v, $m, sub { $m->each }, $hook);
                    }
                    else {
                        my $c = $m->cursor;
                        $w = one_walk($v, $m, sub { $c->next }, $hook);
                    }
                });
                cmp_ok($capmax, '>=', 4 * $cap0, "the inserts doubled the capacity at least twice ($cap0 -> $capmax)");
                cmp_ok($capafter, '<', $capmax, "the removals shrank it ($capmax -> $capafter)");
                walk_ok($w, "the walk ($w->{steps} steps, $w->{churn} churn entries)");
                is($m->size, $BASE, 'the map holds the base entries');
            };
        }
    }
}

done_testing;
