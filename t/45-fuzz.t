use strict;
use warnings;
use Test::More;
use POSIX ();
use Time::HiRes ();
use lib 't/lib';
use DHMSTest qw(:DEFAULT :fuzz);

# Pins SPEC section 7's "bad input never crashes the process": a corrupt,
# truncated or hostile file croaks on open or on the operation that meets the
# damage; it never reads or writes outside the mapping, and never hangs.
#
# A bounded fuzz run (xt/fuzz.t is the long one): valid files of every
# variant (plain, churned onto the other table region, LRU+TTL with evicted
# and expired entries; long keys and values; removed entries) are copied,
# mutated (bit flips, random bytes, zeroed ranges, copied chunks, interesting
# integers, small increments; half of them in the header page; sometimes the
# length) and opened in a child that runs a fixed sequence of every kind of
# operation (DHMSTest::fuzz_ops) under alarm 10. The child must exit
# normally: a signal (SIGSEGV, SIGBUS, SIGABRT ...) or a hang fails the test,
# and the file is kept as /tmp/dhms-fuzz-crash-<n>.map.
#
# Then a file truncated to half its size by another process while two
# processes are attached (one reading, one writing in a loop): both survive
# (no SIGBUS) and croak saying the file was truncated; opening the truncated
# file croaks. (This was the known gap of DESIGN.md section 6 -- SIGBUS --
# until the SIGBUS handler of commit 0b517df; it was first written here as a
# TODO test and is now a real assertion.)
#
# Last, targeted cases the random mutations rarely hit: hostile values in the
# words processes coordinate through (the lock word naming a slot out of
# range, or the opener's own slot and next generation; counter flags other
# than 0 and 1; a huge slot_hwm; an odd seq) must not hang or crash either.
#
# And the same words naming a *live* process (SPEC section 7, "no call waits
# without end"): a forged word that a live process seems to hold makes the
# waiting calls croak after wait_timeout, naming what they waited for and
# the process slot; a word no live process can have written is cleared at
# once and counted; in this process and in a forked child.

eval "require $_->{class}; 1" or die $@ for @VARIANTS;

my $iters = $ENV{FUZZ_ITERS_SHORT} // 300;
fuzz_run(iters => $iters, jobs => 2, alarm => 10, label => 't/45-fuzz', seed => $ENV{FUZZ_SEED});

# ---- truncation while attached ------------------------------------------------
{
    my $v = variant('SS');
    my $path = tmp_path('truncated');
    {
        my $m = $v->{class}->new($path, 5000);
        $m->put("k$_", "value $_ " . ('t' x 2000)) for 0 .. 1999;
    }
    my $size = -s $path;
    my @k = map { "k$_" } 0 .. 1999;

    # Two processes attached: one reads in a loop, one writes in a loop.
    my %kid;
    my %say;
    for my $role (qw(reader writer)) {
        pipe(my $r, my $w) or die "pipe: $!";
        $say{$role} = $r;
        $kid{$role} = start_child(sub {
            close $r;
            my $h = $v->{class}->new($path, 1);
            my $until = Time::HiRes::time() + 1.5;
            my ($n, $croaks, $first) = (0, 0, '');
            while (Time::HiRes::time() < $until) {
                for my $key (@k) {
                    unless (eval { $role eq 'reader' ? $h->get($key) : $h->put($key, "new $key " . ('w' x 2000)); 1 }) {
                        $first = $@ unless $croaks++;
                    }
                    $n++;
                    syswrite $w, 'r' if $n == 100;
                }
            }
            return "$n operations, $croaks croaks, first: $first";
        }, alarm => 20);
        close $w;
    }
    for my $role (qw(reader writer)) {
        my $b;
        sysread($say{$role}, $b, 1);
    }
    truncate($path, int($size / 2)) or die "truncate: $!";
    note "truncated $path from $size to " . int($size / 2) . ' bytes while two processes were attached';
    for my $role (qw(reader writer)) {
        my ($st, $out) = finish_child($kid{$role});
        note "the $role: " . describe_status($st) . " $out";
        is(describe_status($st), 'exit 0', "a $role attached while the file is truncated to half survives (no SIGBUS)");
        like($out, qr/\Aok:\d+ operations, [1-9]\d* croaks, first: \Q$v->{class}\E: .*truncated/,
             "... its operations croak saying the file was truncated");
    }

    # Opening the truncated file afterwards is bad input like any other: it
    # croaks, it does not crash.
    my ($st, $out) = run_in_child(sub {
        my $m = $v->{class}->new($path, 1);
        my $n = 0;
        $m->get($_) for @k;
        'opened';
    }, alarm => 10);
    is(describe_status($st), 'exit 0', 'opening the truncated file does not crash');
    like($out, qr/\Adied:\Q$v->{class}\E: .*\Q$path\E/, '... it croaks naming the file') or diag $out;
}


# Read / write raw bytes of a map file (the mapping sees them at once).
my $peek = sub { my ($path, $off, $fmt, $n) = @_; open my $fh, '<:raw', $path or die; sysseek $fh, $off, 0; my $b; sysread $fh, $b, $n; unpack $fmt, $b };
my $poke = sub { my ($path, $off, $bytes) = @_; open my $fh, '+<:raw', $path or die; sysseek $fh, $off, 0; syswrite $fh, $bytes or die; close $fh };

# ---- hostile words in the shared state ---------------------------------------
# The words that processes coordinate through -- the writer lock word, seq,
# slot_hwm, each process slot's generation and counter flag -- are input like
# any other: a file whose words are garbage, or name states no live process
# can be in, must not make any operation hang or crash. Each case pokes a
# fresh map (offsets from rust/src/layout.rs, checked below) and runs
# new/get/exists/put/incr/remove/keys/verify in a child under alarm 5.
{
    my $v = variant('SI');
    my %OFF = (lock => 256, seq => 320, size => 448, slot_hwm => 504, slots => 4096, slot_size => 64);
    my $fresh = sub {
        my $path = tmp_path('hostile-words');
        my $m = $v->{class}->new($path, 100);
        $m->put('a', 1);
        $m->put('b', 2);
        return $path;
    };
    my $gen0   = sub { $peek->($_[0], $OFF{slots}, 'L<', 4) };
    my $active = sub { my ($path, $slot, $val) = @_; $poke->($path, $OFF{slots} + $slot * $OFF{slot_size} + 4, pack 'L<', $val) };

    # The layout the offsets assume: after one handle came and went, slot
    # 0's generation is 1, slot_hwm is 1, the lock word names no owner, size
    # is 2.
    my $probe = $fresh->();
    my @layout = ($gen0->($probe), $peek->($probe, $OFF{slot_hwm}, 'Q<', 8),
        $peek->($probe, $OFF{lock}, 'Q<', 8) & 0xffff, $peek->($probe, $OFF{size}, 'Q<', 8));
    SKIP: {
        skip "the file layout is not the one these offsets assume (slot 0 gen, slot_hwm, lock owner, size: @layout); "
            . 'update %OFF from rust/src/layout.rs', 1 unless "@layout" eq '1 1 0 2';
        my @cases = (
            [ 'a never-claimed slot below slot_hwm has counter flag 2' => sub {
                $poke->($_[0], $OFF{slot_hwm}, pack 'Q<', 11); $active->($_[0], 10, 2) } ],
            [ 'a never-claimed slot below slot_hwm has counter flag 0xffffffff' => sub {
                $poke->($_[0], $OFF{slot_hwm}, pack 'Q<', 11); $active->($_[0], 10, 0xffffffff) } ],
            [ 'a dead slot has counter flag 1 (a counter killed midway)' => sub {
                $poke->($_[0], $OFF{slot_hwm}, pack 'Q<', 11); $active->($_[0], 10, 1) } ],
            [ 'the slot the next opener claims has counter flag 1' => sub { $active->($_[0], 0, 1) } ],
            [ 'slot_hwm is 2**64-1' => sub { $poke->($_[0], $OFF{slot_hwm}, pack 'q<', -1) } ],
            [ 'the lock word names slot 65534' => sub { $poke->($_[0], $OFF{lock}, pack 'Q<', 0xffff) } ],
            [ 'the lock word has only the waiters bit' => sub { $poke->($_[0], $OFF{lock}, pack 'Q<', 1 << 31) } ],
            [ 'the lock word names a dead holder (slot 0, its generation)' => sub {
                $poke->($_[0], $OFF{lock}, pack 'Q<', ($gen0->($_[0]) << 32) | 1) } ],
            [ 'the lock word names the slot and generation the next opener will claim' => sub {
                $poke->($_[0], $OFF{lock}, pack 'Q<', (($gen0->($_[0]) + 1) << 32) | 1) } ],
            [ 'size is 0 though the table holds two entries' => sub { $poke->($_[0], $OFF{size}, pack 'Q<', 0) } ],
            [ 'seq is odd, the lock free' => sub { $poke->($_[0], $OFF{seq}, pack 'Q<', 7) } ],
            [ 'seq is odd, the lock held by a dead holder' => sub {
                $poke->($_[0], $OFF{seq}, pack 'Q<', 7); $poke->($_[0], $OFF{lock}, pack 'Q<', ($gen0->($_[0]) << 32) | 1) } ],
        );
        for my $case (@cases) {
            my ($name, $mutate) = @$case;
            my $path = $fresh->();
            $mutate->($path);
            my $keep = slurp($path);
            my ($st, $out) = run_in_child(sub {
                my @did;
                my $m = $v->{class}->new($path, 100);
                for my $op (
                    [ get => sub { $m->get('a') } ], [ exists => sub { $m->exists('b') } ],
                    [ incr => sub { $m->incr('a') } ], [ remove => sub { $m->remove('b') } ],
                    [ remove => sub { $m->remove('a') } ], [ keys => sub { my @k = $m->keys } ],
                    [ to_hash => sub { $m->to_hash } ], [ put => sub { $m->put('c', 3) } ],
                    [ size => sub { $m->size >= 0 or die "size is negative" } ],
                    [ verify => sub { $m->verify } ],
                ) {
                    push @did, eval { $op->[1]->(); 1 } ? $op->[0] : "$op->[0](croaked: " . ($@ =~ s/ at \S+ line \d+\.\n//r) . ')';
                }
                join ' ', @did;
            }, alarm => 5);
            my $ok = is(describe_status($st), 'exit 0', "hostile shared state: $name: no crash, no hang");
            note "  $out";
            $ok &&= unlike($out, qr/internal error|size is negative/,
                "hostile shared state: $name: no caught panic (internal error), no negative size");
            unless ($ok) {
                my $kept = "/tmp/dhms-hostile-" . ($name =~ s/\W+/-/gr) . '.map';
                spew($kept, $keep);
                diag "  the file as it was opened is kept as $kept (variant SI)";
            }
        }
    }
}

# ---- hostile words naming a live process -------------------------------------
# SPEC section 7, "no call waits without end". A word that names a live
# process which never lets go -- the writer lock word, its counter flag, a
# change left in progress (seq odd) -- makes the waiting call croak once it
# has seen no progress for wait_timeout (0.3 s here), naming what it waited
# for and the process slot; every other call goes on. A word no live process
# can have written -- a lock word naming a slot never claimed or a generation
# the slot does not have, a counter flag that is not its slot's generation,
# a slot generation forged under its live owner -- is cleared at once and
# counted in stat_recoveries. A damaged table descriptor croaks at once.
# Each case: a fresh map, a live process attached (it claims slot 0 and
# idles), the word forged, then get/incr/put/keys by a handle (slot 1) in
# this process and, on another fresh copy, in a forked child under alarm:
# each call must croak as expected or get through, within a bound (5 s, for
# a 0.3 s timeout). Then, the live process killed, the map must verify with
# its entries intact.
{
    my $v = variant('SI');
    my %OFF = (lock => 256, seq => 320, table => 384, slots => 4096, slot_size => 64);
    my $gen    = sub { my ($path, $slot) = @_; $peek->($path, $OFF{slots} + $slot * $OFF{slot_size}, 'L<', 4) };
    my $setgen = sub { my ($path, $slot, $g) = @_; $poke->($path, $OFF{slots} + $slot * $OFF{slot_size}, pack 'L<', $g) };
    my $flag   = sub { my ($path, $slot, $val) = @_; $poke->($path, $OFF{slots} + $slot * $OFF{slot_size} + 4, pack 'L<', $val) };
    my $lock   = sub { my ($path, $slot, $g) = @_; $poke->($path, $OFF{lock}, pack 'Q<', ($g << 32) | ($slot + 1)) };
    my $odd    = sub { my ($path) = @_; $poke->($path, $OFF{seq}, pack 'Q<', $peek->($path, $OFF{seq}, 'Q<', 8) | 1) };

    # A live process attached to $path: a child that opened a handle (the
    # lowest free process slot: 0) and idles until killed.
    my $live = sub {
        my ($path) = @_;
        pipe(my $r, my $w) or die "pipe: $!";
        my $pid = spawn_child(sub {
            close $r;
            my $h = $v->{class}->new($path, 100);
            syswrite $w, 'r';
            sleep 1 while 1;
        }, alarm => 60);
        close $w;
        sysread($r, my $b, 1) == 1 or die "the live process did not start";
        return $pid;
    };
    my $bound = 5;
    my $lock_to   = qr/timed out after 0\.3 s waiting for the writer lock held by process slot 0 \(alive but making no progress; see wait_timeout\)/;
    my $flag_to   = qr/timed out after 0\.3 s waiting for the counter operation of process slot 0 to finish \(alive but making no progress; see wait_timeout\)/;
    my $change_to = qr/timed out after 0\.3 s waiting for the change in progress by process slot 0 \(the writer lock holder\) to finish/;
    my $damaged   = qr/corrupt map: the table descriptor is invalid/;
    my %all_ok = (get => 'ok', incr => 'ok', put => 'ok', keys => 'ok');

    # [ name, forge(path, live generation) before the handle opens,
    #   { op => 'ok' | qr/croak/ } (new: 'ok' unless given), recovered,
    #   forge(path) after it opened ]
    my @cases = (
        [ 'the writer lock word names the live process (its slot and generation)',
          sub { $lock->($_[0], 0, $_[1]) },
          { get => 'ok', incr => $lock_to, put => $lock_to, keys => $lock_to }, 0 ],
        [ "the live process's counter flag holds its generation (a counter operation that never ends)",
          sub { $flag->($_[0], 0, $_[1]) },
          { get => 'ok', incr => 'ok', put => $flag_to, keys => $flag_to }, 0 ],
        [ 'seq is odd, the lock word naming the live process (a change it never finishes)',
          sub { $odd->($_[0]); $lock->($_[0], 0, $_[1]) },
          { get => $change_to, incr => $lock_to, put => $lock_to, keys => $lock_to }, 0 ],
        [ "the lock word names the live process's slot with another generation",
          sub { $lock->($_[0], 0, $_[1] + 1) }, \%all_ok, 1 ],
        [ 'the lock word names slot 4000, never claimed',
          sub { $lock->($_[0], 4000, 7) }, \%all_ok, 1 ],
        [ "the live process's counter flag is not its generation",
          sub { $flag->($_[0], 0, $_[1] + 7) }, \%all_ok, 1 ],
        [ "the live process's counter flag is 0xffffffff",
          sub { $flag->($_[0], 0, 0xffffffff) }, \%all_ok, 1 ],
        [ "the live process's slot generation is forged; the lock word names its real one",
          sub { $lock->($_[0], 0, $_[1]); $setgen->($_[0], 0, $_[1] + 5) }, \%all_ok, 1 ],
        [ "the live process's slot generation is zeroed; its counter flag holds the real one",
          sub { $flag->($_[0], 0, $_[1]); $setgen->($_[0], 0, 0) }, \%all_ok, 1 ],
        [ 'seq is odd, the lock free (a change nobody finishes)',
          sub { $odd->($_[0]) }, \%all_ok, 1 ],
        [ 'the table descriptor is garbage when the map is opened',
          sub { $poke->($_[0], $OFF{table}, pack 'q<', -1) },
          { new => qr/corrupt header: table descriptor 0xffffffffffffffff is invalid/ }, 0 ],
        [ 'the table descriptor turns to garbage while the map is open',
          sub { }, { get => $damaged, incr => $damaged, put => $damaged, keys => $damaged }, 0,
          sub { $poke->($_[0], $OFF{table}, pack 'q<', -1) } ],
    );

    # The operations, each timed: "op<TAB>ok|croak<TAB>seconds<TAB>message"
    # lines, then "recovered<TAB>N".
    my $run_ops = sub {
        my ($path, $late) = @_;
        my ($m, $rec0, @out);
        my $timed = sub {
            my ($name, $code) = @_;
            my $t = Time::HiRes::time();
            my $ok = eval { $code->(); 1 };
            my $msg = $ok ? '' : $@ =~ s/\s+\z//r =~ s/\n/ /gr;
            push @out, join "\t", $name, $ok ? 'ok' : 'croak', sprintf('%.3f', Time::HiRes::time() - $t), $msg;
            return $ok;
        };
        $timed->(new => sub { $m = $v->{class}->new($path, 100) }) or return join "\n", @out;
        $m->wait_timeout(0.3);
        $rec0 = $m->stat_recoveries;
        $late->($path) if $late;
        $timed->(@$_) for [ get => sub { $m->get('a') } ], [ incr => sub { $m->incr('a') } ],
                          [ put => sub { $m->put('c', 3) } ], [ keys => sub { my @k = $m->keys } ];
        push @out, "recovered\t" . ($m->stat_recoveries - $rec0);
        return join "\n", @out;
    };

    my $layout_ok;
    for my $case (@cases) {
        my ($name, $forge, $expect, $recovered, $late) = @$case;
        my %want = (new => 'ok', %$expect);
        for my $where ('this process', 'a forked child') {
            my $path = tmp_path('live-words');
            {
                my $m = $v->{class}->new($path, 100);
                $m->put('a', 1);
                $m->put('b', 2);
            }
            my $pid = $live->($path);
            my $g = $gen->($path, 0);
            # The layout the offsets assume: the live process claimed slot 0
            # (generation 2, after the creator's 1), the lock word is free.
            $layout_ok //= $g == 2 && ($peek->($path, $OFF{lock}, 'Q<', 8) & 0xffff) == 0;
            unless ($layout_ok) {
                kill 'KILL', $pid; waitpid $pid, 0;
                fail("hostile live words: the file layout is not the one these offsets assume "
                    . "(slot 0 generation $g); update %OFF from rust/src/layout.rs");
                last;
            }
            $forge->($path, $g);
            my ($st, $out);
            if ($where eq 'this process') {
                $out = eval { 'ok:' . under_alarm(20, sub { $run_ops->($path, $late) }) } // "died:$@";
                $st = 0;
            }
            else {
                ($st, $out) = run_in_child(sub { $run_ops->($path, $late) }, alarm => 20);
            }
            is(describe_status($st), 'exit 0', "live words, $where: $name: no crash, no hang");
            my ($body) = $out =~ /\Aok:(.*)\z/s;
            ok(defined $body, "live words, $where: $name: the operations ran") or diag $out;
            my %got = map { my @f = split /\t/, $_, 4; ($f[0] => [ @f[1 .. 3] ]) } split /\n/, $body // '';
            for my $op (grep { exists $want{$_} } qw(new get incr put keys)) {
                my ($res, $secs, $msg) = @{ $got{$op} // [ 'missing', 0, '' ] };
                my $want = $want{$op};
                if (ref $want) {
                    ok($res eq 'croak' && $msg =~ $want, "live words, $where: $name: $op croaks as expected")
                        or diag "$op: $res $msg";
                }
                else {
                    is("$res $msg", 'ok ', "live words, $where: $name: $op gets through");
                }
                cmp_ok($secs, '<', $bound, "live words, $where: $name: $op ends within ${bound} s ($secs s)");
            }
            my $rec = $got{recovered}[0] // 0;
            if ($recovered) {
                cmp_ok($rec, '>=', 1, "live words, $where: $name: the forged word is cleared and counted ($rec)");
            }
            else {
                is($rec, 0, "live words, $where: $name: nothing is taken for dead");
            }
            kill 'KILL', $pid;
            waitpid $pid, 0;
            next if $name =~ /table descriptor/;
            # The live process gone, the map is whole: nothing the croaking
            # calls did left it half-changed.
            my ($vst, $vout) = run_in_child(sub {
                my $m = $v->{class}->new($path, 100);
                $m->wait_timeout(0.3);
                $m->verify;
                join ',', map { $m->get($_) // 'undef' } qw(a b);
            }, alarm => 20);
            like(describe_status($vst) . " $vout", qr/\Aexit 0 ok:[12],2\z/,
                "live words, $where: $name: afterwards the map verifies, its entries intact");
        }
    }
}

done_testing;
