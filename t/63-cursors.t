use strict;
use warnings;
use Test::More;
use lib 't/lib';
use DHMSTest;

# Pins the cursors of SPEC section 5 on every variant, in both calling
# styles ($map->cursor / $c->next / $c->reset / $c->seek($k), and
# shm_X_cursor / shm_X_cursor_next / _reset / _seek): a cursor is an object
# of class Data::HashMap::Shared::X::Cursor; next returns (k, v), () at the
# end and stays at the end until reset (in scalar context the key); seek
# returns true for a present key, and the next step returns that key, false
# for a missing one. Cursors are independent of each other and of each, and
# nest; removing entries during a walk is safe (entries present for the whole
# walk come exactly once); a cursor keeps its map alive; the UTF-8 flag is
# restored; a cursor given to another variant's keyword croaks naming both.

eval "require $_->{class}; 1" or die $@ for @VARIANTS;

sub cforms {
    my ($v) = @_;
    my ($meth, $kw) = forms($v);
    my %me = (%{ $meth->[1] },
        cursor => sub { $_[0]->cursor },
        next   => sub { $_[0]->next },
        reset  => sub { $_[0]->reset },
        seek   => sub { $_[0]->seek($_[1]) },
    );
    my %k = (%{ $kw->[1] },
        cursor => kw_compile($v, 'shm_PFX_cursor $_[0]'),
        next   => kw_compile($v, 'shm_PFX_cursor_next $_[0]'),
        reset  => kw_compile($v, 'shm_PFX_cursor_reset $_[0]'),
        seek   => kw_compile($v, 'shm_PFX_cursor_seek $_[0], $_[1]'),
    );
    return ([ method => \%me ], [ keyword => \%k ]);
}

# walk($op, $c, $limit): the rest of a cursor's walk as [k, v] pairs.
sub walk {
    my ($op, $c, $limit) = @_;
    my @r;
    while (my ($k, $x) = $op->{next}->($c)) {
        push @r, [ $k, $x ];
        last if @r > $limit;
    }
    return \@r;
}

# check_walk($pairs, \%want, $name): every wanted key exactly once, with its value.
sub check_walk {
    my ($pairs, $want, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my (%seen, @dup, @wrong);
    for my $p (@$pairs) {
        push @dup, $p->[0] if $seen{ $p->[0] }++;
        push @wrong, $p->[0] unless exists $want->{ $p->[0] } && $want->{ $p->[0] } eq $p->[1];
    }
    my @missing = grep { !$seen{$_} } keys %$want;
    ok(!@dup && !@wrong && !@missing, $name)
        or diag(sprintf "%d returned, %d wanted; duplicates: %s; wrong: %s; missing: %s",
                scalar(@$pairs), scalar(keys %$want), "@dup[0 .. ($#dup < 4 ? $#dup : 4)]",
                "@wrong[0 .. ($#wrong < 4 ? $#wrong : 4)]", "@missing[0 .. ($#missing < 4 ? $#missing : 4)]");
}

my $N = 200;

for_each_variant {
    my ($v) = @_;
    my %want = map { ('' . vkey($v, $_) => vval($v, $_)) } 0 .. $N - 1;
    for my $form (cforms($v)) {
        my ($fname, $op) = @$form;
        subtest $fname => sub {
            my $m = $v->{class}->new(tmp_path($v->{name}), 10_000);

            my $c = $op->{cursor}->($m);
            is(ref $c, "$v->{class}::Cursor", "a cursor is a $v->{class}::Cursor");
            is_deeply([ $op->{next}->($c) ], [], 'next on an empty map: ()');
            is_deeply([ $op->{next}->($c) ], [], '... again');

            $op->{put}->($m, vkey($v, $_), vval($v, $_)) for 0 .. $N - 1;
            $c = $op->{cursor}->($m);
            check_walk(walk($op, $c, $N + 5), \%want, "a full walk: every entry once, with its value");
            is_deeply([ $op->{next}->($c) ], [], 'then ()');
            is_deeply([ $op->{next}->($c) ], [], '... and it stays at the end');
            ok(!defined scalar($op->{next}->($c)), '... (undef in scalar context)');
            $op->{reset}->($c);
            check_walk(walk($op, $c, $N + 5), \%want, 'after reset: a full walk again');
            $op->{reset}->($c);
            $op->{next}->($c) for 1 .. 50;
            $op->{reset}->($c);
            check_walk(walk($op, $c, $N + 5), \%want, 'reset in mid-walk: a full walk');

            # Scalar context: the key.
            $op->{reset}->($c);
            my @ks;
            while (defined(my $k = $op->{next}->($c))) { push @ks, $k; last if @ks > $N + 5 }
            is_deeply([ sort @ks ], [ sort keys %want ], 'next in scalar context: the keys, each once');

            # seek
            my $target = vkey($v, 77);
            ok($op->{seek}->($c, $target), 'seek to a present key: true');
            is_deeply([ $op->{next}->($c) ], [ $target, vval($v, 77) ], '... the next step returns it');
            for my $i (3, 150, 0) {
                ok($op->{seek}->($c, vkey($v, $i)), "seek $i");
                is(scalar($op->{next}->($c)), vkey($v, $i), '... next (scalar) returns it');
            }
            ok(!$op->{seek}->($c, vkey($v, $N + 1)), 'seek to a missing key: false');
            $op->{reset}->($c);
            ok(!$op->{seek}->($c, vkey($v, $N + 2)), '... also after reset');
            $op->{reset}->($c);
            check_walk(walk($op, $c, $N + 5), \%want, 'seeking leaves the map alone: a full walk after reset');
            # After a seek the walk goes on from there to the end: nothing twice.
            ok($op->{seek}->($c, $target), 'seek again');
            my $rest = walk($op, $c, $N + 5);
            my %n;
            $n{ $_->[0] }++ for @$rest;
            ok(!grep({ $_ > 1 } values %n), 'the rest of the walk after seek returns no key twice');
            is($rest->[0][0], $target, '... and starts at the key');
            is_deeply([ $op->{next}->($c) ], [], '... and ends');

            # Two cursors are independent.
            my $c1 = $op->{cursor}->($m);
            my $c2 = $op->{cursor}->($m);
            my (@w1, @w2);
            for my $i (1 .. 3 * $N) {
                if ($i % 3) { my @p = $op->{next}->($c1); push @w1, [@p] if @p }
                else        { my @p = $op->{next}->($c2); push @w2, [@p] if @p }
            }
            push @w2, @{ walk($op, $c2, $N + 5) };
            check_walk(\@w1, \%want, 'two cursors interleaved: the first walks everything once');
            check_walk(\@w2, \%want, '... and so does the second');

            # Cursors and each do not disturb each other.
            $op->{iter_reset}->($m);
            my $c3 = $op->{cursor}->($m);
            my (@we, @wc);
            while (1) {
                my @e = $op->{each}->($m);
                my @p = $op->{next}->($c3);
                push @we, [@e] if @e;
                push @wc, [@p] if @p;
                last unless @e || @p;
                last if @we > $N + 5;
            }
            check_walk(\@we, \%want, 'each interleaved with a cursor: each walks everything once');
            check_walk(\@wc, \%want, '... and the cursor too');

            # Nesting.
            my $outer = $op->{cursor}->($m);
            my @wo;
            my $inner_ok = 0;
            while (my ($k, $x) = $op->{next}->($outer)) {
                push @wo, [ $k, $x ];
                if (@wo <= 10) {
                    my $in = $op->{cursor}->($m);
                    my $w = walk($op, $in, $N + 5);
                    my %s = map { ($_->[0] => 1) } @$w;
                    $inner_ok++ if @$w == $N && keys(%s) == $N;
                }
                last if @wo > $N + 5;
            }
            is($inner_ok, 10, 'a full inner walk inside each of the first 10 outer steps');
            check_walk(\@wo, \%want, '... and the outer walk is still complete, each entry once');
        };
    }
};

# ---- removing during a walk ---------------------------------------------------------

for_each_variant {
    my ($v) = @_;
    for my $form (cforms($v)) {
        my ($fname, $op) = @$form;
        subtest $fname => sub {
            my $m = $v->{class}->new(tmp_path($v->{name}), 10_000);
            my %want = map { ('' . vkey($v, $_) => vval($v, $_)) } 0 .. $N - 1;
            $op->{put}->($m, vkey($v, $_), vval($v, $_)) for 0 .. $N - 1;

            # Remove every entry as it is returned.
            my $c = $op->{cursor}->($m);
            my $w = [];
            while (my ($k, $x) = $op->{next}->($c)) {
                push @$w, [ $k, $x ];
                $op->{remove}->($m, $k) or last;
                last if @$w > $N + 5;
            }
            check_walk($w, \%want, 'removing the current entry: every entry still comes once');
            is($op->{size}->($m), 0, '... and the map is empty');

            # Remove other entries (ahead and behind) during the walk: the others come once.
            $op->{put}->($m, vkey($v, $_), vval($v, $_)) for 0 .. $N - 1;
            my %stay = map { ('' . vkey($v, $_) => vval($v, $_)) } grep { $_ % 3 } 0 .. $N - 1;
            my %gone = map { ('' . vkey($v, $_) => 1) } grep { !($_ % 3) } 0 .. $N - 1;
            $c = $op->{cursor}->($m);
            my @doomed = map { vkey($v, $_) } grep { !($_ % 3) } 0 .. $N - 1;
            my (%seen, $dup, $wrong, $steps);
            $dup = $wrong = $steps = 0;
            while (my ($k, $x) = $op->{next}->($c)) {
                $dup++ if $seen{$k}++;
                $wrong++ unless ($stay{$k} // '') eq $x || ($gone{$k} && $x eq $want{$k});
                for (1 .. 3) {    # a third of the way in, all of them are gone
                    my $d = shift @doomed;
                    $op->{remove}->($m, $d) if defined $d;
                }
                last if ++$steps > $N + 5;
            }
            my @missing = grep { !$seen{$_} } keys %stay;
            is(scalar(@missing), 0, 'removing others during the walk: every entry that stays comes');
            is($dup, 0, '... nothing twice');
            is($wrong, 0, '... every step is an entry of the map with its value');
            is($op->{size}->($m), scalar(keys %stay), 'the removed ones are gone');
        };
    }
};

# ---- a cursor keeps its map alive -------------------------------------------------

for_each_variant {
    my ($v) = @_;
    for my $form (cforms($v)) {
        my ($fname, $op) = @$form;
        my %want = map { ('' . vkey($v, $_) => vval($v, $_)) } 0 .. 49;
        my $m = $v->{class}->new(tmp_path($v->{name}), 100);
        $op->{put}->($m, vkey($v, $_), vval($v, $_)) for 0 .. 49;
        my $c = $op->{cursor}->($m);
        undef $m;
        check_walk(walk($op, $c, 60), \%want, "$fname: undef \$map; the cursor still walks it");
        $op->{reset}->($c);
        ok($op->{seek}->($c, vkey($v, 7)), '... and seeks in it');
        my $c2 = do {
            my $tmp = $v->{class}->new(tmp_path($v->{name}), 100);
            $op->{put}->($tmp, vkey($v, $_), vval($v, $_)) for 0 .. 49;
            $op->{cursor}->($tmp);
        };
        check_walk(walk($op, $c2, 60), \%want, "$fname: a cursor of a map that went out of scope walks it");
    }
};

# ---- UTF-8 flags -------------------------------------------------------------------

for_each_variant {
    my ($v) = @_;
    my $m = $v->{class}->new(tmp_path($v->{name}), 100);
    my $wide = "sm\x{263A}le";
    my $k = $v->{int_key} ? vkey($v, 1) : $wide;
    my $x = $v->{int_val} ? vval($v, 1) : $wide;
    $m->put($k, $x);
    $m->put($v->{int_key} ? vkey($v, 2) : "caf\xe9", $v->{int_val} ? vval($v, 2) : "caf\xe9");
    my %flag;
    my $c = $m->cursor;
    while (my ($ck, $cx) = $c->next) {
        $flag{"$ck"} = [ utf8::is_utf8($ck) ? 1 : 0, utf8::is_utf8($cx) ? 1 : 0 ];
    }
    my $got = $flag{$k};
    ok($got && $got->[0] == ($v->{int_key} ? 0 : 1) && $got->[1] == ($v->{int_val} ? 0 : 1),
       'the cursor restores the UTF-8 flags of key and value');
    my $o = $flag{ $v->{int_key} ? vkey($v, 2) : "caf\xe9" };
    ok($o && !$o->[0] && !$o->[1], '... and unflagged stays unflagged');
    if (!$v->{int_key}) {
        ok($c->seek("sm\xe2\x98\xbale"), 'seek by the bytes of a flagged key: true');
        my ($sk) = $c->next;
        ok($sk eq $wide && utf8::is_utf8($sk), '... next returns the key flagged');
    }
} only => [qw(II SS IS SI I16S SI16)];

# ---- misuse -----------------------------------------------------------------------

for_each_variant {
    my ($v) = @_;
    my $other = variant($v->{name} eq 'II' ? 'SS' : 'II');
    my $om = $other->{class}->new(tmp_path($other->{name}), 10);
    $om->put(vkey($other, 1), vval($other, 1));
    my $oc = $om->cursor;
    my $re = qr/not a \Q$v->{class}\E::Cursor \(got a cursor of a \Q$other->{class}\E map\)/;
    croaks_ok($v, sub { kw_compile($v, 'shm_PFX_cursor_next $_[0]')->($oc) }, $re,
              "shm_$v->{prefix}_cursor_next of a cursor of $other->{name} croaks, naming both");
    croaks_ok($v, sub { kw_compile($v, 'shm_PFX_cursor_reset $_[0]')->($oc) }, $re, "... cursor_reset too");
    croaks_ok($v, sub { kw_compile($v, 'shm_PFX_cursor_seek $_[0], $_[1]')->($oc, vkey($v, 1)) }, $re, "... cursor_seek too");
    is_deeply([ $oc->next ], [ vkey($other, 1), vval($other, 1) ], 'the other cursor is unharmed');
    my $m = $v->{class}->new(tmp_path($v->{name}), 10);
    croaks_ok($v, sub { kw_compile($v, 'shm_PFX_cursor_next $_[0]')->($m) }, qr/Cursor/, 'cursor_next of a map croaks');
    croaks_ok($v, sub { kw_compile($v, 'shm_PFX_cursor_next $_[0]')->({}) }, qr/Cursor/, 'cursor_next of a hashref croaks');
    croaks_ok($v, sub { kw_compile($v, 'shm_PFX_cursor $_[0]')->($om) }, qr/\Q$other->{name}\E|mismatch|not a/,
              'shm_X_cursor of another variant\'s map croaks');
};

done_testing;
