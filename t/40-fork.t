use strict;
use warnings;
use Test::More;
use POSIX ();
use lib 't/lib';
use DHMSTest;

# Pins SPEC sections 3 and 7 across processes: handles survive fork and
# changes are visible both ways at once; concurrent counters lose no update;
# concurrent writers of distinct keys lose no entry; several processes
# creating one new path at the same moment all get one map, initialized once;
# get_or_set, take and remove are atomic across processes.

eval "require $_->{class}; 1" or die $@ for @VARIANTS;

# A one-byte pipe handshake between parent and child.
sub chan { pipe(my $r, my $w) or die "pipe: $!"; $w->autoflush(1); return ($r, $w) }
sub wait_for { my ($r) = @_; my $b; sysread($r, $b, 1) == 1 or die "peer went away\n"; }
sub signal_to { my ($w) = @_; syswrite($w, 'x') == 1 or die "signal: $!\n"; }

for_each_variant {
    my ($v) = @_;
    my $path = tmp_path($v->{name});
    my $m = $v->{class}->new($path, 1000);
    $m->put(vkey($v, 1), vval($v, 1));

    my ($to_child_r, $to_child_w) = chan();
    my ($to_parent_r, $to_parent_w) = chan();
    my $pid = spawn_child(sub {
        close $to_child_w; close $to_parent_r;
        # The inherited handle sees what the parent put before fork.
        ($m->get(vkey($v, 1)) // '') eq vval($v, 1) or die "child: inherited handle lacks key 1\n";
        # ... and what it puts after (after the parent's signal).
        wait_for($to_child_r);
        ($m->get(vkey($v, 2)) // '') eq vval($v, 2) or die "child: parent's put after fork not visible\n";
        # A handle opened in the child sees it too.
        my $own = $v->{class}->new($path, 5);
        ($own->get(vkey($v, 2)) // '') eq vval($v, 2) or die "child: own handle lacks key 2\n";
        $own->max_entries == 1000 or die "child: own handle has max_entries " . $own->max_entries . "\n";
        # Writes through both handles, then tell the parent.
        $m->put(vkey($v, 3), vval($v, 3)) or die "child: put 3 failed\n";
        $own->put(vkey($v, 4), vval($v, 4)) or die "child: put 4 failed\n";
        $m->remove(vkey($v, 1)) or die "child: remove 1 failed\n";
        $m->incr(vkey($v, 5)) if $v->{counters};
        signal_to($to_parent_w);
        # Wait for the parent's verdict before leaving, so everything above
        # is checked while this process is still alive.
        wait_for($to_child_r);
    });
    close $to_child_r; close $to_parent_w;
    ok($m->put(vkey($v, 2), vval($v, 2)), 'parent puts after fork');
    signal_to($to_child_w);
    wait_for($to_parent_r);
    is($m->get(vkey($v, 3)), vval($v, 3), 'parent sees the child\'s put through the inherited handle');
    is($m->get(vkey($v, 4)), vval($v, 4), 'parent sees the child\'s put through its own handle');
    ok(!$m->exists(vkey($v, 1)), 'parent sees the child\'s remove');
    is($m->get(vkey($v, 5)), 1, 'parent sees the child\'s incr') if $v->{counters};
    is($m->size, $v->{counters} ? 4 : 3, 'size agrees');
    signal_to($to_child_w);
    waitpid($pid, 0);
    is(describe_status($?), 'exit 0', 'the child saw the parent\'s changes');
    ok($m->put(vkey($v, 6), vval($v, 6)), 'the parent\'s handle works after the child left');
    is($m->get(vkey($v, 6)), vval($v, 6), '... and reads back');
};

# 4 children x 5,000 increments of one key: no update is lost.
for_each_variant {
    my ($v) = @_;
    my $path = tmp_path($v->{name});
    my $m = $v->{class}->new($path, 100);
    my $key = vkey($v, 1);
    my $ops = kw_ops($v);
    $ops->{put}->($m, vkey($v, 2), 0);
    children_ok(4, sub {
        my ($i) = @_;
        my $h = $i % 2 ? $m : $v->{class}->new($path, 100);    # inherited and own handles
        for (1 .. 5000) {
            $ops->{incr}->($h, $key);
            $ops->{incr_by}->($h, vkey($v, 2), 2);
            $ops->{decr}->($h, vkey($v, 2));
        }
    }, '4 children incremented');
    is($m->get($key), 20_000, '4 x 5,000 incr of a new key: exactly 20,000');
    is($m->get(vkey($v, 2)), 20_000, '4 x 5,000 (incr_by 2, decr): exactly 20,000');
} counters => 1;

# Concurrent writers of distinct keys, with removals: no entry is lost or torn.
for my $name (qw(SS IS SI II)) {
    my $v = variant($name);
    my $path = tmp_path($name);
    my $m = $v->{class}->new($path, 20_000);
    my $per = 2000;
    my $val = sub {    # self-describing: child, index, checksum
        my ($c, $j) = @_;
        return $v->{int_val} ? $c * 1_000_000 + $j : "c=$c;j=$j;" . ('z' x (($c * 7 + $j) % 40)) . ';sum=' . ($c * 31 + $j);
    };
    my $key = sub { my ($c, $j) = @_; $v->{int_key} ? $c * 100_000 + $j : "c$c:j$j" };
    children_ok(4, sub {
        my ($c) = @_;
        my $h = $v->{class}->new($path, 20_000);
        for my $j (0 .. $per - 1) {
            $h->put($key->($c, $j), $val->($c, $j)) or die "put $c/$j failed\n";
            # remove every third key again, once it has been put
            $h->remove($key->($c, $j - 2)) or die "remove $c/" . ($j - 2) . " failed\n" if $j >= 2 && ($j - 2) % 3 == 0;
        }
        # re-read everything this child owns
        for my $j (0 .. $per - 3) {
            my $got = $h->get($key->($c, $j));
            if ($j % 3 == 0) { die "child $c: $j should be gone\n" if defined $got }
            else { ($got // '') eq $val->($c, $j) or die "child $c: key $j reads " . ($got // 'undef') . "\n" }
        }
    }, "$name: 4 writers of distinct keys");
    my ($bad, $n) = (0, 0);
    for my $c (0 .. 3) {
        for my $j (0 .. $per - 1) {
            my $gone = $j <= $per - 3 && $j % 3 == 0;
            my $got = $m->get($key->($c, $j));
            if ($gone) { $bad++ if defined $got }
            else { $n++; $bad++ unless ($got // '') eq $val->($c, $j) }
        }
    }
    is($bad, 0, "$name: every entry is as its writer left it");
    is($m->size, $n, "$name: size $n");
    is(scalar(my @k = $m->keys), $n, "$name: keys agrees");
}

# Race-free creation: 8 processes create one new path at the same moment.
for my $name (qw(SS II)) {
    my $v = variant($name);
    for my $round (1 .. 5) {
        my $path = tmp_path("race-$name");
        ok(!-e $path, "$name round $round: the path does not exist yet");
        children_ok(8, sub {
            my ($i) = @_;
            # Each asks for another size; exactly one creator's wins.
            my $m = $v->{class}->new($path, 100 + $i);
            my $me = $m->max_entries;
            $m->put(vkey($v, $i), $me) or die "put failed\n" if $v->{int_val};
            $m->put(vkey($v, $i), "max=$me") or die "put failed\n" unless $v->{int_val};
            $m->exists(vkey($v, $i)) or die "own key missing\n";
        }, "$name round $round: 8 simultaneous creators, no error");
        my $m = $v->{class}->new($path, 1);
        is($m->size, 8, "$name round $round: one map holds all 8 keys");
        my $me = $m->max_entries;
        ok($me >= 100 && $me <= 107, "$name round $round: max_entries $me is one creator's");
        my @saw = map { my $g = $m->get(vkey($v, $_)) // 'undef'; $g =~ s/^max=//; $g } 0 .. 7;
        is_deeply(\@saw, [ ($me) x 8 ], "$name round $round: every process saw the same max_entries");
    }
}

# get_or_set is atomic: 8 processes ask for one new key with different
# defaults; exactly one default is stored and every process got it back.
for my $name (qw(SS II SI IS)) {
    my $v = variant($name);
    for my $round (1 .. 3) {
        my $path = tmp_path("gos-$name");
        my $m = $v->{class}->new($path, 1000);
        my $key = vkey($v, 42);
        children_ok(8, sub {
            my ($i) = @_;
            my $h = $v->{class}->new($path, 1);
            my $got = $h->get_or_set($key, vval($v, 100 + $i));
            defined $got or die "get_or_set returned undef\n";
            # record what this process got back
            $h->put(vkey($v, 200 + $i), $got) or die "record failed\n";
        }, "$name round $round: 8 racing get_or_set calls");
        my $stored = $m->get($key);
        my @defaults = map { vval($v, 100 + $_) } 0 .. 7;
        ok((grep { $_ eq $stored } @defaults), "$name round $round: the stored value is one process's default");
        my @got = map { $m->get(vkey($v, 200 + $_)) } 0 .. 7;
        is_deeply(\@got, [ ($stored) x 8 ], "$name round $round: every process got the stored value back");
    }
}

# take and remove are atomic: 4 processes race over the same 2,000 keys;
# each key is taken or removed by exactly one of them.
for my $name (qw(SS II IS SI)) {
    my $v = variant($name);
    my $path = tmp_path("take-$name");
    my $m = $v->{class}->new($path, 10_000);
    my $n = 2000;
    $m->put(vkey($v, $_), vval($v, $_)) for 0 .. $n - 1;
    my $tally = tmp_path("tally-$name");
    my $t = Data::HashMap::Shared::SS->new($tally, 100);
    children_ok(4, sub {
        my ($i) = @_;
        my $h = $v->{class}->new($path, 1);
        my @order = $i % 2 ? (0 .. $n - 1) : reverse(0 .. $n - 1);
        my ($taken, $removed, $wrong) = (0, 0, 0);
        for my $j (@order) {
            if ($j % 2) {
                my $got = $h->take(vkey($v, $j));
                next unless defined $got;
                $taken++;
                $wrong++ if $got ne vval($v, $j);
            }
            else {
                $removed++ if $h->remove(vkey($v, $j));
            }
        }
        die "took $wrong wrong values\n" if $wrong;
        my $tt = Data::HashMap::Shared::SS->new($tally, 1);
        $tt->put("taken:$i", $taken) && $tt->put("removed:$i", $removed) or die "tally failed\n";
    }, "$name: 4 processes take and remove the same keys");
    my $taken = 0;
    my $removed = 0;
    $taken += $t->get("taken:$_") // 0 for 0 .. 3;
    $removed += $t->get("removed:$_") // 0 for 0 .. 3;
    is($taken, $n / 2, "$name: each odd key was taken exactly once");
    is($removed, $n / 2, "$name: each even key was removed exactly once");
    is($m->size, 0, "$name: the map is empty");
}

# Many processes attached at once, each with its own handle and the
# inherited one.
{
    my $v = variant('II');
    my $path = tmp_path('many');
    my $m = $v->{class}->new($path, 1000);
    children_ok(64, sub {
        my ($i) = @_;
        my $h = $v->{class}->new($path, 1);
        for (1 .. 500) { $h->incr(1); $m->incr(2) }
        $h->put(1000 + $i, $i) or die "put failed\n";
    }, '64 processes attached at once');
    is($m->get(1), 32_000, '64 x 500 incr through own handles');
    is($m->get(2), 32_000, '64 x 500 incr through inherited handles');
    is($m->size, 66, 'every process left its key');
}

done_testing;
