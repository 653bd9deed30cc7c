use strict;
use warnings;
use Test::More;
use Digest::SHA ();
use POSIX ();
use Time::HiRes ();
use lib 't/lib';
use DHMSTest;

# Pins freeze, frozen, readonly, new_readonly and sync (SPEC sections 3, 5
# Files, 7):
# - freeze needs a map in a file: anonymous and memfd maps croak "freeze
#   needs a map in a file" and stay writable;
# - freeze returns true (again when already frozen); afterwards frozen and
#   readonly are true and stats->{frozen} 1 on every handle, the one that
#   froze it included; every mutator, in both
#   calling styles, croaks "map is frozen" on this handle, on another handle
#   of this process (opened before or after the freeze), on an inherited and
#   on an own handle in another process, and on a handle opened later in a
#   new process; even when it would change nothing (a missing key, an empty
#   batch, flush_expired with nothing to flush, touch on a map without LRU
#   or TTL); the content is unchanged and every read still works;
# - a freeze in another process seals this process's handle;
# - a sharded map freezes every shard;
# - new_readonly croaks "new_readonly needs a frozen map" on an unfrozen
#   map (and leaves it untouched), validates like new; on a frozen map:
#   readonly and frozen true, stats readonly 1; get/exists/keys/values/
#   items/each/cursors/get_multi/to_hash/verify work (methods and keywords),
#   also through fork; mutators croak "map is frozen (opened with
#   new_readonly)"; it never writes a byte: the file's bytes and mtime are
#   unchanged after many reads of an LRU+TTL map (gets of present, evicted
#   and expired keys, walks, seeks) in this process and a child, and after
#   the handles are gone; it works on a 0444 file;
# - sync returns true on file maps (frozen too), anonymous and memfd maps.

eval "require $_->{class}; 1" or die $@ for @VARIANTS;

my @SOME = qw(II SS IS SI16);
my $FROZEN   = qr/map is frozen(?! \(opened with new_readonly\))/;
my $RO       = qr/map is frozen \(opened with new_readonly\)/;

# [name, sub { my ($h) = @_; ... }] for every mutator, with the calling
# style's op table $op (from exercise_forms); %o: ttl => 1 for a TTL map.
sub mutators {
    my ($v, $op, %o) = @_;
    my ($k1, $kn) = (vkey($v, 1), vkey($v, 9999));
    my ($x1, $x7) = (vval($v, 1), vval($v, 7));
    my @m = (
        [ put_existing        => sub { $op->{put}->($_[0], $k1, $x7) } ],
        [ put_new             => sub { $op->{put}->($_[0], $kn, $x7) } ],
        [ remove              => sub { $op->{remove}->($_[0], $k1) } ],
        [ remove_missing      => sub { $op->{remove}->($_[0], $kn) } ],
        [ take                => sub { $op->{take}->($_[0], $k1) } ],
        [ take_missing        => sub { $op->{take}->($_[0], $kn) } ],
        [ get_or_set_existing => sub { $op->{get_or_set}->($_[0], $k1, $x7) } ],
        [ get_or_set_new      => sub { $op->{get_or_set}->($_[0], $kn, $x7) } ],
        [ add                 => sub { $op->{add}->($_[0], $kn, $x7) } ],
        [ update              => sub { $op->{update}->($_[0], $k1, $x7) } ],
        [ swap                => sub { $op->{swap}->($_[0], $k1, $x7) } ],
        [ cas                 => sub { $op->{cas}->($_[0], $k1, $x1, $x7) } ],
        [ cas_take            => sub { $op->{cas_take}->($_[0], $k1, $x1) } ],
        [ clear               => sub { $op->{clear}->($_[0]) } ],
        [ pop                 => sub { my @x = $op->{pop}->($_[0]) } ],
        [ shift               => sub { my @x = $op->{shift}->($_[0]) } ],
        [ drain               => sub { my @x = $op->{drain}->($_[0], 5) } ],
        [ reserve             => sub { $op->{reserve}->($_[0], 10) } ],
        [ flush_expired       => sub { $op->{flush_expired}->($_[0]) } ],
        [ touch               => sub { $op->{touch}->($_[0], $k1) } ],
        [ flush_expired_partial => sub { my @x = $op->{flush_expired_partial}->($_[0], 10) } ],
        [ set_multi           => sub { $_[0]->set_multi($k1, $x7, $kn, $x7) } ],
        [ set_multi_empty     => sub { $_[0]->set_multi() } ],
        [ remove_multi        => sub { $_[0]->remove_multi($k1, $kn) } ],
    );
    push @m, (
        [ incr        => sub { $op->{incr}->($_[0], $k1) } ],
        [ incr_new    => sub { $op->{incr}->($_[0], $kn) } ],
        [ decr        => sub { $op->{decr}->($_[0], $k1) } ],
        [ incr_by     => sub { $op->{incr_by}->($_[0], $k1, 5) } ],
        [ max         => sub { $op->{max}->($_[0], $k1, 30000) } ],
        [ min         => sub { $op->{min}->($_[0], $k1, -30000) } ],
    ) if $v->{counters};
    push @m, (
        [ put_ttl    => sub { $_[0]->put_ttl($k1, $x7, 100) } ],
        [ add_ttl    => sub { $_[0]->add_ttl($kn, $x7, 100) } ],
        [ update_ttl => sub { $_[0]->update_ttl($k1, $x7, 100) } ],
        [ persist    => sub { $_[0]->persist($k1) } ],
        [ set_ttl    => sub { $_[0]->set_ttl($k1, 100) } ],
    ) if $o{ttl};
    return @m;
}

# Every mutator in both calling styles croaks $re on handle $h.
sub all_croak_ok {
    my ($v, $h, $re, $label, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    for my $form (exercise_forms($v)) {
        my ($style, $op) = @$form;
        for my $mu (mutators($v, $op, %o)) {
            my ($name, $code) = @$mu;
            croaks_ok($v, sub { $code->($h) }, $re, "$label: $name ($style) croaks");
        }
    }
}

# Inside a child: the names of the mutators that did not croak with $re.
sub mutators_not_croaking {
    my ($v, $h, $re, %o) = @_;
    my @bad;
    for my $form (exercise_forms($v)) {
        my ($style, $op) = @$form;
        for my $mu (mutators($v, $op, %o)) {
            my ($name, $code) = @$mu;
            my $err = croak_msg(sub { $code->($h) });
            push @bad, "$name ($style)" . ($err eq '' ? '' : ": $err") unless $err =~ $re;
        }
    }
    return @bad;
}

# The content of a map as a flat sorted string list (for equality checks).
sub content { my ($m) = @_; my $h = $m->to_hash; [ map { "$_=$h->{$_}" } sort keys %$h ] }

# Every read works on $h and gives the expected entries.
sub reads_ok {
    my ($v, $h, $want, $label) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    for my $form (exercise_forms($v)) {
        my ($style, $op) = @$form;
        subtest "$label: reads ($style)" => sub {
            my ($i) = (sort { $a <=> $b } map { $_->[0] } values %$want)[3];
            my ($k, $x) = (vkey($v, $i), '' . vval($v, $i));
            is($op->{get}->($h, $k), $x, 'get');
            ok($op->{exists}->($h, $k), 'exists');
            ok(!$op->{exists}->($h, vkey($v, 9999)), 'exists: missing');
            is($op->{size}->($h), scalar keys %$want, 'size');
            my %w = map { ($_ => $want->{$_}[1]) } keys %$want;
            is_deeply([ sort map { "$_" } $op->{keys}->($h) ], [ sort keys %w ], 'keys');
            is_deeply([ sort map { "$_" } $op->{values}->($h) ], [ sort values %w ], 'values');
            my @it = $op->{items}->($h);
            exactly_once_ok([ map { [ @it[ 2 * $_, 2 * $_ + 1 ] ] } 0 .. $#it / 2 ], \%w, 'items');
            my $th = $op->{to_hash}->($h);
            is_deeply({ map { ($_ => "$th->{$_}") } keys %$th }, \%w, 'to_hash');
            $op->{iter_reset}->($h);
            exactly_once_ok(walk_pairs(sub { $op->{each}->($h) }, 10_000), \%w, 'each');
            my $c = $op->{cursor}->($h);
            exactly_once_ok(walk_pairs(sub { $op->{cursor_next}->($c) }, 10_000), \%w, 'cursor');
            ok($op->{cursor_seek}->($c, $k), 'cursor_seek');
            is(($op->{cursor_next}->($c))[0], $k, '... next returns the key');
            $op->{cursor_reset}->($c);
            exactly_once_ok(walk_pairs(sub { $op->{cursor_next}->($c) }, 10_000), \%w, 'cursor_reset, walk again');
            is_deeply([ map { defined $_ ? "$_" : undef } $h->get_multi($k, vkey($v, 9999), $k) ], [ $x, undef, $x ], 'get_multi');
            ok($h->verify, 'verify');
            ok($op->{capacity}->($h) >= $op->{size}->($h), 'capacity');
            ok($op->{mmap_size}->($h) > 0, 'mmap_size');
        };
    }
}

# ===========================================================================
subtest 'freeze needs a map in a file' => sub {
    for my $name (@SOME) {
        my $v = variant($name);
        my $anon = $v->{class}->new(undef, 100);
        my $mem = $v->{class}->new_memfd("dhms-t82-$name", 100);
        my $via = $v->{class}->new_from_fd($mem->memfd);
        for ([ anonymous => $anon ], [ memfd => $mem ], [ 'new_from_fd of a memfd' => $via ]) {
            my ($what, $m) = @$_;
            croaks_ok($v, sub { $m->freeze }, qr/freeze needs a map in a file/, "$name $what: freeze croaks");
            ok(!$m->frozen, "$name $what: ... not frozen");
            is($m->stats->{frozen}, 0, "$name $what: ... stats frozen 0");
            ok($m->put(vkey($v, 1), vval($v, 1)), "$name $what: ... still writable");
            ok($m->sync, "$name $what: sync returns true");
        }
    }
};

# ===========================================================================
# Freezing a map in a file: every handle, every process.
for_each_variant {
    my ($v) = @_;
    my $path = tmp_path("fz-$v->{name}");
    my $m = $v->{class}->new($path, 1000);
    $m->put(vkey($v, $_), vval($v, $_)) for 0 .. 49;
    my $before = $v->{class}->new($path, 1);    # opened before the freeze
    ok(!$m->frozen, 'not frozen yet');
    is($m->stats->{frozen}, 0, 'stats frozen 0');
    ok($m->sync, 'sync returns true');
    my $want = { map { (vkey($v, $_) => [ $_, '' . vval($v, $_) ]) } 0 .. 49 };
    my $content = content($m);

    ok($m->freeze, 'freeze returns true');
    ok($m->frozen, 'frozen');
    is($m->stats->{frozen}, 1, 'stats frozen 1');
    ok($m->readonly, 'readonly: the handle that froze it cannot change it either');
    is($m->stats->{readonly}, 1, 'stats readonly 1');
    ok($before->frozen, 'a handle opened before the freeze sees it frozen');
    ok($before->readonly, '... and readonly');
    my $after = $v->{class}->new($path, 1);
    ok($after->frozen, 'a handle opened after the freeze is frozen');
    ok($after->readonly, '... and readonly');
    ok($m->freeze, 'freeze again returns true');
    ok($m->sync, 'sync of a frozen map returns true');

    all_croak_ok($v, $m, $FROZEN, 'this handle');
    all_croak_ok($v, $before, $FROZEN, 'handle opened before');
    all_croak_ok($v, $after, $FROZEN, 'handle opened after');
    is_deeply(content($m), $content, 'the content is unchanged');
    reads_ok($v, $m, $want, 'this handle');
    reads_ok($v, $before, $want, 'handle opened before');

    my ($st, $out) = run_in_child(sub {
        my $own = $v->{class}->new($path, 1);
        $own->frozen or die "own handle not frozen\n";
        ($own->get(vkey($v, 7)) // '') eq vval($v, 7) or die "own handle cannot read\n";
        ($m->get(vkey($v, 8)) // '') eq vval($v, 8) or die "inherited handle cannot read\n";
        my @bad = mutators_not_croaking($v, $m, $FROZEN);
        push @bad, map { "own: $_" } mutators_not_croaking($v, $own, $FROZEN);
        'read; not croaking: ' . join(', ', @bad);
    }, alarm => 20);
    is($out, 'ok:read; not croaking: ', 'another process: reads work; every mutator croaks on the inherited and on an own handle');
    is($st, 0, '... the child exited 0');
    is_deeply(content($m), $content, 'the content is still unchanged');
    undef $_ for $m, $before, $after;

    ($st, $out) = run_in_child(sub {
        my $h = $v->{class}->new($path, 5000);
        $h->frozen or die "not frozen on reopen\n";
        $h->stats->{frozen} == 1 or die "stats frozen is not 1\n";
        $h->max_entries == 1000 or die "max_entries changed\n";
        my $err = croak_msg(sub { $h->put(vkey($v, 1), vval($v, 2)) });
        $err =~ $FROZEN or die "put did not croak: $err\n";
        $h->size;
    }, alarm => 20);
    is($out, 'ok:50', 'after every handle is gone, a new process opens it frozen; put croaks');
};

# A TTL+LRU map: the TTL writers croak too.
for_each_variant {
    my ($v) = @_;
    my $path = tmp_path("fzttl-$v->{name}");
    my $m = $v->{class}->new($path, 1000, 100, 3600);
    $m->put(vkey($v, $_), vval($v, $_)) for 0 .. 49;
    $m->put_ttl(vkey($v, $_), vval($v, $_), 50) for 50 .. 59;
    my $content = content($m);
    ok($m->freeze, 'LRU+TTL map: freeze');
    all_croak_ok($v, $m, $FROZEN, 'LRU+TTL map', ttl => 1);
    my $left = $m->ttl_remaining(vkey($v, 55));
    ok(defined $left && $left > 0 && $left <= 50, 'ttl_remaining still reads');
    my @wt = $m->get_with_ttl(vkey($v, 55));
    is($wt[0], vval($v, 55), 'get_with_ttl still reads');
    is_deeply(content($m), $content, 'the content is unchanged');
} only => \@SOME;

# A freeze in another process seals this process's handle.
for_each_variant {
    my ($v) = @_;
    my $path = tmp_path("fzother-$v->{name}");
    my $m = $v->{class}->new($path, 100);
    $m->put(vkey($v, 1), vval($v, 1));
    my ($st, $out) = run_in_child(sub { my $h = $v->{class}->new($path, 1); $h->freeze ? 'frozen' : 'no' }, alarm => 20);
    is($out, 'ok:frozen', 'a child froze the map');
    ok($m->frozen, "this process's handle is frozen");
    croaks_ok($v, sub { $m->put(vkey($v, 2), vval($v, 2)) }, $FROZEN, '... put croaks');
    croaks_ok($v, sub { $m->remove(vkey($v, 1)) }, $FROZEN, '... remove croaks');
    croaks_ok($v, sub { $m->clear }, $FROZEN, '... clear croaks');
    croaks_ok($v, sub { $m->incr(vkey($v, 1)) }, $FROZEN, '... incr croaks') if $v->{counters};
    is($m->get(vkey($v, 1)), vval($v, 1), '... get still works');
} only => \@SOME;

# A sharded map freezes every shard.
for_each_variant {
    my ($v) = @_;
    my $prefix = tmp_path("fzsh-$v->{name}");
    my $m = $v->{class}->new_sharded($prefix, 4, 1000);
    $m->put(vkey($v, $_), vval($v, $_)) for 0 .. 99;
    ok($m->freeze, 'sharded: freeze');
    ok($m->frozen, 'sharded: frozen');
    is($m->stats->{frozen}, 1, 'sharded: stats frozen 1');
    ok($m->sync, 'sharded: sync returns true');
    my @bad = grep { my $k = vkey($v, $_); croak_msg(sub { $m->put($k, vval($v, 1)) }) !~ $FROZEN } 0 .. 99;
    is_deeply(\@bad, [], 'sharded: put croaks for keys of every shard');
    croaks_ok($v, sub { $m->clear }, $FROZEN, 'sharded: clear croaks');
    croaks_ok($v, sub { $m->set_multi(map { (vkey($v, $_), vval($v, $_)) } 0 .. 20) }, $FROZEN, 'sharded: set_multi croaks');
    is($m->size, 100, 'sharded: size unchanged');
    for my $i (0 .. 3) {
        my $r = $v->{class}->new_readonly("$prefix.$i");
        ok($r->readonly && $r->frozen, "shard $i opens with new_readonly");
    }
} only => \@SOME;

# ===========================================================================
# new_readonly

subtest 'new_readonly refuses an unfrozen map and validates like new' => sub {
    for my $name (@SOME) {
        my $v = variant($name);
        my $path = tmp_path("ro-$name");
        my $m = $v->{class}->new($path, 100);
        $m->put(vkey($v, 1), vval($v, 1));
        $m->sync;
        my $bytes = slurp($path);
        croaks_ok($v, sub { $v->{class}->new_readonly($path) }, qr/\Q$path\E.*new_readonly needs a frozen map/,
            "$name: an unfrozen map croaks, naming the path");
        ok(slurp($path) eq $bytes, "$name: ... the file is untouched");
        ok($m->put(vkey($v, 2), vval($v, 2)), "$name: ... and still writable");
        my $missing = tmp_path('missing');
        croaks_ok($v, sub { $v->{class}->new_readonly($missing) }, qr/\Q$missing\E.*No such file/, "$name: a missing file croaks");
        ok(!-e $missing, "$name: ... and is not created");
        my $junk = tmp_path('junk');
        spew($junk, "not a map\n" x 1000);
        croaks_ok($v, sub { $v->{class}->new_readonly($junk) }, qr/not a Data::HashMap::Shared file/, "$name: a foreign file croaks");
    }
    my $ss = tmp_path('ro-ss');
    my $m = Data::HashMap::Shared::SS->new($ss, 10);
    $m->freeze;
    croaks_ok('Data::HashMap::Shared::II', sub { Data::HashMap::Shared::II->new_readonly($ss) },
        qr/variant mismatch: file is SS, opened as II\b/, 'a frozen SS map opened as II croaks');
    croaks_ok('Data::HashMap::Shared::SS', sub { Data::HashMap::Shared::SS->new_readonly(undef) }, qr/./, 'new_readonly(undef) croaks');
};

for_each_variant {
    my ($v) = @_;
    my $path = tmp_path("ro-$v->{name}");
    my $m = $v->{class}->new($path, 1000);
    $m->put(vkey($v, $_), vval($v, $_)) for 0 .. 49;
    $m->freeze;
    my $want = { map { (vkey($v, $_) => [ $_, '' . vval($v, $_) ]) } 0 .. 49 };
    my $r = $v->{class}->new_readonly($path);
    isa_ok($r, $v->{class});
    ok($r->readonly, 'readonly');
    ok($r->frozen, 'frozen');
    is($r->stats->{readonly}, 1, 'stats readonly 1');
    is($r->stats->{frozen}, 1, 'stats frozen 1');
    is($r->path, $path, 'path');
    is($r->max_entries, 1000, 'max_entries');
    ok($m->readonly, 'the handle that froze it is readonly too');
    reads_ok($v, $r, $want, 'new_readonly');
    all_croak_ok($v, $r, $RO, 'new_readonly');
    my $fz = croak_msg(sub { $r->freeze });
    ok($fz eq '' || $fz =~ $RO, 'freeze on a new_readonly handle: true (already frozen) or "opened with new_readonly"')
        or diag("freeze croaked: $fz");
    my ($st, $out) = run_in_child(sub {
        ($r->get(vkey($v, 5)) // '') eq vval($v, 5) or die "inherited readonly handle cannot read\n";
        my $own = $v->{class}->new_readonly($path);
        my $n = 0;
        $own->iter_reset;
        $n++ while my @kv = $own->each;
        $n == 50 or die "own readonly handle walked $n\n";
        my @bad = mutators_not_croaking($v, $r, $RO);
        push @bad, map { "own: $_" } mutators_not_croaking($v, $own, $RO);
        $own->size . '; not croaking: ' . join(', ', @bad);
    }, alarm => 20);
    is($out, 'ok:50; not croaking: ', 'a child reads through the inherited and its own readonly handle; every mutator croaks on both');
};

# new_readonly never writes a byte: an LRU+TTL map (gets would mark entries
# used, expired entries would be removed by a writer), read in every way.
my %NW;
for my $name (@SOME) {
    my $v = variant($name);
    my $path = tmp_path("nowrite-$name");
    my $m = $v->{class}->new($path, 1000, 100, 3600);
    $m->put(vkey($v, $_), vval($v, $_)) for 0 .. 149;    # 50 evicted
    $m->get(vkey($v, $_)) for 60 .. 80;
    $m->put_ttl(vkey($v, $_), vval($v, $_), 1) for 140 .. 149;
    $m->freeze;
    undef $m;
    $NW{$name} = $path;
}
sleep 2;    # the 1-second entries are expired now

for_each_variant {
    my ($v) = @_;
    my $path = $NW{ $v->{name} };
    utime 946684800, 946684800, $path or die "utime: $!";    # 2000-01-01
    my $sha = Digest::SHA->new(256)->addfile($path, 'b')->hexdigest;
    my $mtime = (Time::HiRes::stat($path))[9];
    my $size = -s $path;
    my @keys = map { vkey($v, $_) } 0 .. 160;
    my $r = $v->{class}->new_readonly($path);
    my $r2 = $v->{class}->new_readonly($path);
    my $ops = kw_ops($v);
    my $cnext = kw_compile($v, 'shm_PFX_cursor_next $_[0]');
    my ($hits, $expired_seen) = (0, 0);
    for my $round (1 .. 20) {
        for my $h ($r, $r2) {
            for my $i (0 .. 160) {
                my $g = $round % 2 ? $h->get($keys[$i]) : $ops->{get}->($h, $keys[$i]);
                $hits++ if defined $g;
                $expired_seen++ if defined $g && $i >= 140 && $i <= 149;
                $h->exists($keys[$i]);
            }
            $h->iter_reset;
            1 while my @kv = $h->each;
            my $c = $h->cursor;
            1 while my @kv2 = $cnext->($c);
            $c->seek($keys[ 60 + $round ]);
            $c->next;
            $c->reset;
            my @x = ($h->keys, $h->values, $h->items, $h->get_multi(@keys));
            $h->to_hash;
            $h->verify;
            $h->stats;
            $h->get_with_ttl($keys[100]);
            $h->ttl_remaining($keys[100]);
            croak_msg(sub { $h->put($keys[1], vval($v, 1)) });
            croak_msg(sub { $h->touch($keys[70]) });
            croak_msg(sub { $h->flush_expired });
            croak_msg(sub { $h->clear });
        }
    }
    is($hits, 20 * 2 * 90, 'the reads found the 90 live entries every time');
    is($expired_seen, 0, 'expired entries are invisible');
    my ($st, $out) = run_in_child(sub {
        my $own = $v->{class}->new_readonly($path);
        for my $n (1 .. 20) { $_->get($keys[ 60 + $n ]) for $r, $own; my @k = $own->keys }
        'read';
    }, alarm => 20);
    is($out, 'ok:read', 'a child read too');
    is(Digest::SHA->new(256)->addfile($path, 'b')->hexdigest, $sha, 'the file\'s bytes are unchanged (handles open)');
    is((Time::HiRes::stat($path))[9], $mtime, '... its mtime too');
    undef $_ for $r, $r2;
    is(Digest::SHA->new(256)->addfile($path, 'b')->hexdigest, $sha, 'the file\'s bytes are unchanged (handles gone)');
    is((Time::HiRes::stat($path))[9], $mtime, '... its mtime too');
    is(-s $path, $size, '... its size too');
} only => \@SOME;

# A 0444 file: new_readonly needs only read permission.
for_each_variant {
    my ($v) = @_;
    my $path = tmp_path("ro444-$v->{name}");
    my $m = $v->{class}->new($path, 100);
    $m->put(vkey($v, $_), vval($v, $_)) for 0 .. 9;
    $m->freeze;
    undef $m;
    chmod 0444, $path or die "chmod: $!";
    my $r = $v->{class}->new_readonly($path);
    ok($r->readonly, 'new_readonly of a 0444 file');
    is($r->get(vkey($v, 3)), vval($v, 3), '... reads');
    is($r->size, 10, '... size');
    is((stat $path)[2] & 07777, 0444, '... the mode is unchanged');
    SKIP: {
        skip 'root may open a 0444 file for writing', 1 if $> == 0;
        croaks_ok($v, sub { $v->{class}->new($path, 100) }, qr/Permission denied/, 'new() of the 0444 file croaks (not root)');
    }
} only => \@SOME;

done_testing;
