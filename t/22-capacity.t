use strict;
use warnings;
use Test::More;
use lib 't/lib';
use DHMSTest;

# Pins SPEC section 3 and 5 on sizing: max_entries is exact (the Nth
# distinct key goes in, the N+1th put is false; overwrites still work when
# full; incr of a new key croaks when full; get_or_set gives undef); the
# table grows with the data and shrinks after removals; tombstones stay
# bounded under churn; reserve; clear keeps the stat counters; arena_cap
# makes put false instead of croaking; a map created for 10,000,000 entries
# that holds 100 is small in resident memory and on disk (DESIGN invariant
# 6: the file may be sparse, so its apparent size does not count).

for_each_variant {
    my ($v) = @_;
    for my $form (forms($v)) {
        my ($fname, $op) = @$form;
        subtest "$fname: max_entries is exact" => sub {
            my $m = $v->{class}->new(tmp_path($v->{name}), 100);
            is($op->{max_entries}->($m), 100, 'max_entries 100');
            my $fails = 0;
            $op->{put}->($m, vkey($v, $_), vval($v, $_)) or $fails++ for 0 .. 98;
            is($fails, 0, '99 puts succeed');
            ok($op->{put}->($m, vkey($v, 99), vval($v, 99)), 'the 100th distinct key is accepted');
            is($op->{size}->($m), 100, 'size 100');
            my $r = eval { $op->{put}->($m, vkey($v, 100), vval($v, 100)) };
            is($@, '', 'the 101st put does not croak');
            ok(!$r, '... it returns false');
            ok(!$op->{exists}->($m, vkey($v, 100)), '... and stores nothing');
            is($op->{size}->($m), 100, 'size still 100');
            ok($op->{put}->($m, vkey($v, 5), vval($v, 500)), 'overwriting a key works when full');
            is($op->{get}->($m, vkey($v, 5)), vval($v, 500), '... value replaced');
            is($op->{get_or_set}->($m, vkey($v, 7), vval($v, 700)), vval($v, 7), 'get_or_set of a present key when full');
            is($op->{get_or_set}->($m, vkey($v, 101), vval($v, 101)), undef, 'get_or_set of a new key when full: undef');
            ok(!$op->{exists}->($m, vkey($v, 101)), '... nothing stored');
            if ($v->{counters}) {
                is($op->{incr}->($m, vkey($v, 8)), vval($v, 8) + 1, 'incr of a present key when full');
                croaks_ok($v, sub { $op->{incr}->($m, vkey($v, 102)) }, qr/full/i, 'incr of a new key when full croaks');
                croaks_ok($v, sub { $op->{incr_by}->($m, vkey($v, 102), 5) }, qr/full/i, 'incr_by of a new key when full croaks');
                ok(!$op->{exists}->($m, vkey($v, 102)), '... nothing stored');
            }
            is($op->{size}->($m), 100, 'size still 100');
            ok($op->{remove}->($m, vkey($v, 0)), 'remove one');
            ok($op->{put}->($m, vkey($v, 100), vval($v, 100)), 'then a new key fits');
            ok(!$op->{put}->($m, vkey($v, 103), vval($v, 103)), 'and the next one does not');
            is($op->{take}->($m, vkey($v, 1)), vval($v, 1), 'take one');
            ok($op->{put}->($m, vkey($v, 103), vval($v, 103)), 'then a new key fits');
            $op->{clear}->($m);
            $fails = 0;
            $op->{put}->($m, vkey($v, 1000 + $_), vval($v, $_)) or $fails++ for 0 .. 99;
            is($fails, 0, 'after clear, 100 new keys fit again');
        };
    }

    subtest 'max_entries 1' => sub {
        my $m = $v->{class}->new(tmp_path($v->{name}), 1);
        ok($m->put(vkey($v, 1), vval($v, 1)), 'one entry fits');
        ok(!$m->put(vkey($v, 2), vval($v, 2)), 'a second does not');
        ok($m->put(vkey($v, 1), vval($v, 3)), 'overwrite works');
        is($m->get(vkey($v, 1)), vval($v, 3), '... value replaced');
    };

    subtest 'capacity grows and shrinks' => sub {
        my $path = tmp_path($v->{name});
        my $m = $v->{class}->new($path, 100_000);
        my $c0 = $m->capacity;
        my $n = 20_000;
        $m->put(vkey($v, $_), vval($v, $_)) for 0 .. $n - 1;
        my $c1 = $m->capacity;
        cmp_ok($c1, '>=', $n, "capacity grew to hold $n entries ($c1)");
        cmp_ok($c1, '>', $c0, '... larger than at the start');
        my $mm1 = $m->mmap_size;
        my $blocks1 = (stat $path)[12];
        $m->remove(vkey($v, $_)) for 10 .. $n - 1;
        is($m->size, 10, '10 left');
        my $c2 = $m->capacity;
        cmp_ok($c2, '<', $c1, "capacity shrank after removing most entries ($c2)");
        cmp_ok($c2, '>=', 10, '... but still holds the rest');
        cmp_ok($m->tombstones, '<', $c2, 'tombstones < capacity');
        my $blocks2 = (stat $path)[12];
        cmp_ok($blocks2, '<', $blocks1, "disk blocks were returned ($blocks1 -> $blocks2)");
        my @wrong = grep { ($m->get(vkey($v, $_)) // '<undef>') ne vval($v, $_) } 0 .. 9;
        is("@wrong", '', 'the remaining entries read back');
        ok($m->put(vkey($v, 50), vval($v, 50)), 'and the map takes new keys');
    };

    subtest 'tombstones stay bounded under churn' => sub {
        my $m = $v->{class}->new(tmp_path($v->{name}), 1000);
        my $maxtomb = 0;
        my $maxcap = 0;
        my $ok = 1;
        for my $i (0 .. 19_999) {
            $ok &&= $m->put(vkey($v, $i), vval($v, $i));
            $m->remove(vkey($v, $i - 5)) if $i >= 5;
            my ($t, $c) = ($m->tombstones, $m->capacity);
            $maxtomb = $t if $t > $maxtomb;
            $maxcap = $c if $c > $maxcap;
            if ($t >= $c) { $ok = 0; diag "tombstones $t >= capacity $c at step $i"; last }
        }
        ok($ok, '20,000 put/remove cycles with 5 live keys');
        is($m->size, 5, 'size 5');
        cmp_ok($maxcap, '<=', 1024, "capacity stayed small (max $maxcap)");
        cmp_ok($maxtomb, '<', $maxcap, "tombstones stayed below capacity (max $maxtomb)");
        ok(!$m->exists(vkey($v, 3)), 'a missing-key lookup terminates');
        is($m->get(vkey($v, 19_999)), vval($v, 19_999), 'a live key reads back');
    };

    subtest 'reserve' => sub {
        my $m = $v->{class}->new(tmp_path($v->{name}), 5000);
        ok($m->reserve(3000), 'reserve 3000 of 5000');
        cmp_ok($m->capacity, '>=', 3000, '... capacity fits 3000');
        ok($m->reserve(5000), 'reserve max_entries');
        ok(!$m->reserve(5001), 'reserve max_entries + 1 is false');
        is($m->size, 0, 'reserve adds no entries');
        $m->put(vkey($v, $_), vval($v, $_)) for 0 .. 2999;
        is($m->size, 3000, 'entries go in after reserve');
        is($m->get(vkey($v, 2999)), vval($v, 2999), '... and read back');
    };

    subtest 'clear keeps the stat counters' => sub {
        my $m = $v->{class}->new(tmp_path($v->{name}), 1000);
        $m->put(vkey($v, $_), vval($v, $_)) for 0 .. 99;
        my @names = qw(stat_evictions stat_expired stat_recoveries);
        my %before = map { ($_ => $m->$_) } @names;
        $m->clear;
        is($m->size, 0, 'cleared');
        is($m->$_, $before{$_}, "$_ unchanged") for @names;
        is($m->max_entries, 1000, 'max_entries unchanged');
        ok($m->put(vkey($v, 1), vval($v, 1)), 'the map still works');
    };

    subtest 'a map for 10,000,000 entries holding 100 is small' => sub {
        my $path = tmp_path($v->{name});
        my $m = $v->{class}->new($path, 10_000_000);
        is($m->max_entries, 10_000_000, 'max_entries 10,000,000');
        $m->put(vkey($v, $_), vval($v, $_)) for 0 .. 99;
        is($m->size, 100, '100 entries');
        my $disk = (stat $path)[12] * 512;
        cmp_ok($disk, '<', 1 << 20, "disk use under 1 MiB ($disk bytes)");
        is($m->mmap_size, (stat $path)[7], 'mmap_size is the size of the (sparse) file');
        # Resident memory of the mapping, from the kernel's account of it.
        my ($rss, $found) = (0, 0);
        if (open my $fh, '<', '/proc/self/smaps') {
            my $in = 0;
            while (<$fh>) {
                if (/^[0-9a-f]+-[0-9a-f]+ /) { $in = /\s\Q$path\E$/; $found++ if $in }
                elsif ($in && /^Rss:\s+(\d+) kB/) { $rss += $1 * 1024 }
            }
        }
        SKIP: {
            skip 'no /proc/self/smaps entry for the map', 1 unless $found;
            cmp_ok($rss, '<', 1 << 20, "resident memory of the mapping under 1 MiB ($rss bytes)");
        }
    };
};

# String storage: arena_used follows the data, arena_cap caps it.
for_each_variant {
    my ($v) = @_;
    my $m = $v->{class}->new(tmp_path($v->{name}), 10_000);
    my $u0 = $m->arena_used;
    my $val = 'v' x 1000;
    $m->put(vkey($v, $_), $val) for 0 .. 99;
    cmp_ok($m->arena_used, '>=', $u0 + 100 * 1000, 'arena_used grows with 100 KB of values');

    my $cap = 64 * 1024;
    my $c = $v->{class}->new(tmp_path($v->{name}), 10_000, 0, 0, 0, $cap);
    is($c->arena_cap, $cap, 'arena_cap is what new got');
    my ($stored, $failed, $died) = (0, 0, '');
    for my $i (0 .. 199) {
        my $r = eval { $c->put(vkey($v, $i), sprintf('%04d', $i) x 250) };
        if ($@) { $died = $@; last }
        if ($r) { $stored++ } else { $failed++; last }
    }
    is($died, '', 'filling a capped arena does not croak');
    ok($failed, "put returns false once the arena cap is reached (after $stored)");
    cmp_ok($stored, '<', 200, '... before 200 KB went in');
    cmp_ok($stored, '>', 0, '... after some values went in');
    is($c->size, $stored, 'size counts the stored entries');
    cmp_ok($c->arena_used, '<=', $cap, 'arena_used within the cap');
    my @wrong = grep { ($c->get(vkey($v, $_)) // '') ne sprintf('%04d', $_) x 250 } 0 .. $stored - 1;
    is(scalar(@wrong), 0, 'the stored values are intact');
    ok($c->remove(vkey($v, 0)), 'remove one');
    ok($c->put(vkey($v, 0), 'small'), 'a small value fits again');
} val => 'bytes';

done_testing;
