use strict;
use warnings;
use Test::More;
use Errno qw(ELOOP ENOENT EACCES EISDIR);
use Fcntl qw(:mode);
use POSIX ();
use lib 't/lib';
use DHMSTest;

# Pins SPEC section 3 on files: attaching ignores the arguments (the header
# is authoritative); a file of another variant, a foreign file, a truncated
# file and a corrupt header croak with the path and the reason and never
# crash the process nor change the file; file modes are exact; O_NOFOLLOW
# and O_CLOEXEC; system call failures read "open(PATH): <strerror>"; path
# and unlink (object and class forms); constructor argument errors.

sub strerror { local $! = shift; "$!" }

# Writes $data to $path leaving holes where whole 4 KiB pages are zero, as
# the map's own files do.
sub spew_sparse {
    my ($path, $data) = @_;
    open my $fh, '>:raw', $path or die "open $path: $!";
    my $zero = "\0" x 4096;
    for (my $off = 0; $off < length $data; $off += 4096) {
        my $page = substr($data, $off, 4096);
        next if $page eq substr($zero, 0, length $page);
        sysseek($fh, $off, 0) or die "seek: $!";
        syswrite($fh, $page) == length $page or die "write: $!";
    }
    truncate($fh, length $data) or die "truncate: $!";
    close $fh or die "close: $!";
}

eval "require $_->{class}; 1" or die $@ for @VARIANTS;

# ---------------------------------------------------------------------------
subtest 'attaching ignores the arguments' => sub {
    for my $v (@VARIANTS) {
        my $path = tmp_path($v->{name});
        my $m = $v->{class}->new($path, 50);
        $m->put(vkey($v, $_), vval($v, $_)) for 0 .. 2;
        my $ac = $m->arena_cap;
        my $again = $v->{class}->new($path, 1000, 10, 60, 5, 12345, 0644);
        is($again->max_entries, 50, "$v->{name}: max_entries from the file");
        is($again->max_size, 0, "$v->{name}: max_size from the file");
        is($again->ttl, 0, "$v->{name}: ttl from the file");
        is($again->arena_cap, $ac, "$v->{name}: arena_cap from the file");
        is($again->size, 3, "$v->{name}: the entries are there");
        is($again->get(vkey($v, 2)), vval($v, 2), "$v->{name}: ... and read back");
        is((stat $path)[2] & 07777, 0600, "$v->{name}: the file mode is unchanged");
        $again->put(vkey($v, $_), vval($v, $_)) for 3 .. 49;
        ok(!$again->put(vkey($v, 50), vval($v, 50)), "$v->{name}: the file's max_entries is enforced");
    }
    my $path = tmp_path('SS');
    my $m = Data::HashMap::Shared::SS->new($path, 50, 10, 3600);
    is($m->max_size, 10, 'created with max_size 10');
    is($m->ttl, 3600, 'created with ttl 3600');
    my $again = Data::HashMap::Shared::SS->new($path, 1000);
    is($again->max_entries, 50, 'reopened: max_entries 50');
    is($again->max_size, 10, 'reopened: max_size 10');
    is($again->ttl, 3600, 'reopened: ttl 3600');
};

# ---------------------------------------------------------------------------
subtest 'variant mismatch' => sub {
    my %file;
    for my $v (@VARIANTS) {
        $file{ $v->{name} } = tmp_path($v->{name});
        my $m = $v->{class}->new($file{ $v->{name} }, 10);
        $m->put(vkey($v, 1), vval($v, 1));
    }
    for my $made (@VARIANTS) {
        my $path = $file{ $made->{name} };
        my $before = slurp($path);
        for my $as (@VARIANTS) {
            next if $as == $made;
            croaks_ok($as, sub { $as->{class}->new($path, 10) },
                      qr/\Q$path\E.*variant mismatch: file is $made->{name}, opened as $as->{name}\b|variant mismatch: file is $made->{name}, opened as $as->{name}\b.*\Q$path\E/,
                      "$made->{name} file opened as $as->{name}");
        }
        ok(slurp($path) eq $before, "$made->{name} file unchanged by the failed opens");
        my $m = $made->{class}->new($path, 10);
        is($m->get(vkey($made, 1)), vval($made, 1), "$made->{name} file still opens as $made->{name}");
    }
};

# ---------------------------------------------------------------------------
# Opens hostile files, each in a child, in parallel. $want is { key => value }
# of entries to read back. Returns ([$status, $outcome], ...) where the outcome
# is "open-died:<error>", "op-died:<error>" or the number of entries of
# $want that did not read back (the map opened and every operation worked).
sub hostile_open {
    my ($class, $paths, $want) = @_;
    my @codes = map {
        my $path = $_;
        sub {
            my $m = eval { $class->new($path, 10) };
            return "open-died:$@" unless $m;
            my $bad = eval {
                my $n = $m->size;
                my @k = $m->keys;
                my %h = %{ $m->to_hash };
                my $bad = grep { ($m->get($_) // "\0undef") ne $want->{$_} } sort keys %$want;
                $m->exists($_) for keys %$want;
                $m->put('probe', 'value') or die "put failed\n";
                ($m->get('probe') // '') eq 'value' or die "probe not read back\n";
                $m->remove('probe');
                $bad;
            };
            return defined $bad ? $bad : "op-died:$@";
        }
    } @$paths;
    my @res = run_in_children(\@codes, alarm => 20);
    $_->[1] =~ s/\Aok:// for @res;
    return @res;
}

subtest 'not our file' => sub {
    srand(20240601);
    my %files = (
        'random bytes' => join('', map { chr int rand 256 } 1 .. 4096),
        'a text file'  => "hello, world\n" x 100,
        'an ELF-ish header' => "\x7fELF" . ("\1" x 4092),
    );
    for my $what (sort keys %files) {
        my $path = tmp_path('foreign');
        spew($path, $files{$what});
        my ($st, $out) = @{ (hostile_open('Data::HashMap::Shared::SS', [$path], {}))[0] };
        is(describe_status($st), 'exit 0', "$what: no crash");
        like($out, qr/\Aopen-died:Data::HashMap::Shared::SS: .*not a Data::HashMap::Shared file/s, "$what: croaks 'not a Data::HashMap::Shared file'");
        like($out, qr/\Q$path\E/, "$what: the message names the path");
        ok(slurp($path) eq $files{$what}, "$what: the file is unchanged");
    }

    # An empty file is what a creator that died right after open() leaves: it
    # may be initialized, or refused; never a crash, never a half map.
    my $path = tmp_path('empty');
    spew($path, '');
    my ($st, $out) = @{ (hostile_open('Data::HashMap::Shared::SS', [$path], {}))[0] };
    is(describe_status($st), 'exit 0', 'empty file: no crash');
    like($out, qr/\A(?:0|open-died:Data::HashMap::Shared::SS: .*(?:not a Data::HashMap::Shared file|corrupt header).*)\z/s,
         'empty file: either a working map or a clear refusal');
};

# ---------------------------------------------------------------------------
sub good_file {
    my $path = tmp_path('SS');
    my $m = Data::HashMap::Shared::SS->new($path, 10_000);
    my %want = map { ("key:$_" => "value:$_:" . ('x' x ($_ % 50))) } 0 .. 1999;
    $m->put($_, $want{$_}) for keys %want;
    undef $m;
    return ($path, \%want);
}

subtest 'truncated file' => sub {
    my ($orig, $want) = good_file();
    my $data = slurp($orig);
    my $size = length $data;
    cmp_ok($size, '>', 8192, "the sample file has $size bytes");
    my @lens = grep { $_ >= 1 && $_ < $size } (10, 63, 4096, int($size / 2), $size - 4096, $size - 1);
    my @paths = map { my $p = tmp_path('trunc'); spew($p, substr($data, 0, $_)); $p } @lens;
    my @res = hostile_open('Data::HashMap::Shared::SS', \@paths, $want);
    for my $i (0 .. $#lens) {
        my ($len, $path, $st, $out) = ($lens[$i], $paths[$i], @{ $res[$i] });
        is(describe_status($st), 'exit 0', "truncated to $len bytes: no crash, no hang") or next;
        if ($out =~ /\Aopen-died:/) {
            like($out, qr/\Aopen-died:Data::HashMap::Shared::SS: .*(?:corrupt header|not a Data::HashMap::Shared file)/s,
                 "truncated to $len: open croaks 'corrupt header'");
            like($out, qr/\Q$path\E/, '... naming the path');
        }
        elsif ($out =~ /\Aop-died:/) {
            like($out, qr/\Aop-died:Data::HashMap::Shared::SS: /, "truncated to $len: an operation croaks cleanly");
        }
        else {
            ok($len >= $size - 4096 && $out eq '0', "truncated to $len: opened, so every entry must be intact")
                or diag "a file truncated to $len of $size bytes opened; entries not read back: $out";
        }
    }
    like($res[0][1], qr/\Aopen-died:/, 'a 10-byte file is refused at open');
    like($res[1][1], qr/\Aopen-died:/, 'a 63-byte file is refused at open');
};

subtest 'corrupt header: every byte of the first 64 flipped, and more' => sub {
    my $path0 = tmp_path('SS');
    my $m0 = Data::HashMap::Shared::SS->new($path0, 1000);
    my %want = map { ("key:$_" => "value:$_:" . ('x' x ($_ % 50))) } 0 .. 199;
    $m0->put($_, $want{$_}) for keys %want;
    undef $m0;
    my $data = slurp($path0);

    # [ name, [ offset, byte ], ... ]
    my $flip = sub { my ($off) = @_; [ "byte $off", [ $off, chr(ord(substr($data, $off, 1)) ^ 0xFF) ] ] };
    my @cases = map { $flip->($_) } 0 .. 63;
    srand(7);
    for my $i (1 .. 16) {
        push @cases, [ "random damage #$i", map { [ int rand 64, chr int rand 256 ] } 1 .. 4 ];
    }
    push @cases, [ 'first 64 bytes zeroed', map { [ $_, "\0" ] } 0 .. 63 ];
    push @cases, [ 'first 64 bytes all ones', map { [ $_, "\xff" ] } 0 .. 63 ];
    # Beyond the first 64 bytes: the low and the high byte of every 8-byte
    # word of the next 4 KiB (where a file keeps its locks, counters and
    # offsets), flipped.
    push @cases, map { ($flip->(8 * $_), $flip->(8 * $_ + 7)) } 8 .. 511;

    my $intact = 0;
    my %seen;
    while (my @batch = splice @cases, 0, 16) {
        my @paths;
        for my $c (@batch) {
            my ($what, @edits) = @$c;
            my $p = tmp_path('corrupt');
            my $d = $data;
            substr($d, $_->[0], 1) = $_->[1] for @edits;
            spew_sparse($p, $d);
            push @paths, $p;
        }
        my @res = hostile_open('Data::HashMap::Shared::SS', \@paths, \%want);
        for my $i (0 .. $#batch) {
            my ($what, $path, $st, $out) = ($batch[$i][0], $paths[$i], @{ $res[$i] });
            unlink $path;
            is(describe_status($st), 'exit 0', "$what: no crash, no hang") or next;
            if ($out =~ /\Aopen-died:/) {
                like($out, qr/\Aopen-died:Data::HashMap::Shared::SS: (?=.*\Q$path\E).*(not a Data::HashMap::Shared file|corrupt header|variant mismatch|format version)/s,
                     "$what: open croaks with the path and the reason");
                $seen{$1}++ if $out =~ /(not a Data::HashMap::Shared file|corrupt header)/;
            }
            elsif ($out =~ /\Aop-died:/) {
                like($out, qr/\Aop-died:Data::HashMap::Shared::SS: /, "$what: an operation croaks cleanly");
            }
            else {
                like($out, qr/\A\d+\z/, "$what: opened and every operation worked");
                $intact++ if $out eq '0';
                note "$what: opened; $out of 200 entries did not read back (undetected damage)" if $out ne '0';
            }
        }
    }
    ok($seen{'not a Data::HashMap::Shared file'}, 'some damage is reported as not our file');
    ok($seen{'corrupt header'}, 'some damage is reported as a corrupt header');
    note "$intact damaged files opened with every entry intact";
};

# ---------------------------------------------------------------------------
subtest 'file modes' => sub {
    my $old = umask;
    umask 022;
    my $p = tmp_path('mode');
    Data::HashMap::Shared::II->new($p, 10);
    is(sprintf('%04o', (stat $p)[2] & 07777), '0600', 'default mode 0600 (owner only)');
    umask 0;
    $p = tmp_path('mode');
    Data::HashMap::Shared::II->new($p, 10);
    is(sprintf('%04o', (stat $p)[2] & 07777), '0600', 'default mode 0600 with umask 0');
    umask 077;
    $p = tmp_path('mode');
    Data::HashMap::Shared::SS->new($p, 10, 0, 0, 0, 0, 0640);
    is(sprintf('%04o', (stat $p)[2] & 07777), '0640', 'mode 0640 under umask 077');
    umask 022;
    $p = tmp_path('mode');
    Data::HashMap::Shared::SS->new($p, 10, 0, 0, 0, 0, 0666);
    is(sprintf('%04o', (stat $p)[2] & 07777), '0666', 'mode 0666 under umask 022');
    umask $old;
    ok(S_ISREG((stat $p)[2]), 'a regular file');
};

# ---------------------------------------------------------------------------
subtest 'symlinks are refused (O_NOFOLLOW)' => sub {
    my $target = tmp_path('target');
    my $m = Data::HashMap::Shared::II->new($target, 10);
    $m->put(1, 2);
    my $before = slurp($target);
    my $link = tmp_path('link');
    symlink $target, $link or die "symlink: $!";
    my $eloop = strerror(ELOOP);
    croaks_ok('Data::HashMap::Shared::II', sub { Data::HashMap::Shared::II->new($link, 10) },
              qr/\Q$link\E.*(?:\Q$eloop\E|symlink|symbolic link)/i, 'a symlink to a map croaks, naming the path');
    ok(slurp($target) eq $before, 'the target is unchanged');

    my $nowhere = tmp_dir() . "/never-created.$$";
    my $dangling = tmp_path('dangling');
    symlink $nowhere, $dangling or die "symlink: $!";
    croaks_ok('Data::HashMap::Shared::II', sub { Data::HashMap::Shared::II->new($dangling, 10) },
              qr/\Q$dangling\E.*(?:\Q$eloop\E|symlink|symbolic link)/i, 'a dangling symlink croaks');
    ok(!-e $nowhere, 'the symlink target was not created');
};

# ---------------------------------------------------------------------------
subtest 'system call errors' => sub {
    my $enoent = strerror(ENOENT);
    my $p = tmp_dir() . "/no/such/dir/map.shm";
    croaks_ok('Data::HashMap::Shared::II', sub { Data::HashMap::Shared::II->new($p, 10) },
              qr/open\(\Q$p\E\): \Q$enoent\E/, 'missing directory: open(PATH): No such file or directory');

    my $dir = tmp_dir();
    croaks_ok('Data::HashMap::Shared::II', sub { Data::HashMap::Shared::II->new($dir, 10) },
              qr/\Q$dir\E/, 'a directory croaks, naming the path');

    my $eacces = strerror(EACCES);
    my $path = tmp_path('private');
    my $m = Data::HashMap::Shared::II->new($path, 10);
    $m->put(1, 1);
    my $attempt = sub {
        my $e = croak_msg(sub { Data::HashMap::Shared::II->new($path, 10) });
        return $e;
    };
    if ($> != 0) {
        chmod 0, $path;
        like($attempt->(), qr/\AData::HashMap::Shared::II: open\(\Q$path\E\): \Q$eacces\E at /,
             'no permission: open(PATH): Permission denied');
        chmod 0600, $path;
    }
    else {
        # Root bypasses permission checks: drop to nobody in a child.
        my $nobody = getpwnam('nobody');
        SKIP: {
            skip 'running as root and there is no nobody user', 2 unless defined $nobody;
            my ($st, $out) = run_in_child(sub {
                POSIX::setgid(scalar(getgrnam('nogroup')) // $nobody);
                POSIX::setuid($nobody) or die "setuid: $!";
                die "still root\n" if $> == 0;
                return $attempt->();
            });
            is(describe_status($st), 'exit 0', 'child as nobody ran');
            like($out, qr/\Aok:Data::HashMap::Shared::II: open\(\Q$path\E\): \Q$eacces\E at /,
                 'no permission: open(PATH): Permission denied');
        }
    }
    is($m->get(1), 1, 'the map is unchanged');
};

# ---------------------------------------------------------------------------
subtest 'O_CLOEXEC' => sub {
    my $path = tmp_path('cloexec');
    my $m = Data::HashMap::Shared::SS->new($path, 10);
    my @own = grep { (readlink($_) // '') eq $path } glob '/proc/self/fd/*';
    my $child = `ls -l /proc/self/fd/ 2>&1`;
    unlike($child, qr/\Q$path\E/, 'an exec\'d program does not inherit the map\'s descriptor')
        or diag "own fds on the file: @own";
    $m->put('still', 'works');
    is($m->get('still'), 'works', 'the map works');
};

# ---------------------------------------------------------------------------
subtest 'path and unlink' => sub {
    for my $v (@VARIANTS) {
        my $class = $v->{class};
        my $path = tmp_path($v->{name});
        my $m = $class->new($path, 100);
        is($m->path, $path, "$v->{name}: path");
        $m->put(vkey($v, 1), vval($v, 1));
        ok($m->unlink, "$v->{name}: unlink is true");
        ok(!-e $path, "$v->{name}: the file is gone");
        my $r = eval { $m->unlink };
        is($@, '', "$v->{name}: unlink again does not die");
        ok(!$r, "$v->{name}: ... and is false");
        is($m->get(vkey($v, 1)), vval($v, 1), "$v->{name}: the map is still usable: get");
        ok($m->put(vkey($v, 2), vval($v, 2)), "$v->{name}: ... put");
        is($m->size, 2, "$v->{name}: ... size");
        is($m->path, $path, "$v->{name}: path still reports the name");
        my $fresh = $class->new($path, 100);
        is($fresh->size, 0, "$v->{name}: a new map at the same path is a new, empty one");
        $fresh->put(vkey($v, 3), vval($v, 3));
        ok(!$m->exists(vkey($v, 3)), "$v->{name}: ... independent of the unlinked one");

        ok($class->unlink($path), "$v->{name}: $class->unlink(PATH) is true");
        ok(!-e $path, "$v->{name}: ... the file is gone");
        ok(!$class->unlink($path), "$v->{name}: class unlink again is false");
        is($fresh->get(vkey($v, 3)), vval($v, 3), "$v->{name}: the open handle still works");
    }
    my $none = tmp_dir() . '/no/such/dir/x.shm';
    my $r = eval { Data::HashMap::Shared::SS->unlink($none) };
    is($@, '', 'class unlink of a path in a missing directory does not die');
    ok(!$r, '... and is false');
};

# ---------------------------------------------------------------------------
subtest 'constructor argument errors' => sub {
    my $C = 'Data::HashMap::Shared::II';
    usage_croaks_ok($C, sub { $C->new() }, 'new', 'new() croaks with usage');
    usage_croaks_ok($C, sub { $C->new(tmp_path('args')) }, 'new', 'new(PATH) without max_entries croaks with usage');
    for my $bad (0, -1, 4294967296, 2**40, 'abc', '', 1.5) {
        croaks_ok($C, sub { $C->new(tmp_path('args'), $bad) }, qr/max_entries/, "max_entries '$bad' croaks");
    }
    {
        no warnings 'uninitialized';
        croaks_ok($C, sub { $C->new(tmp_path('args'), undef) }, qr/max_entries/, 'max_entries undef croaks');
    }
    my $p = tmp_path('args');
    my $big = $C->new($p, 4294967295);
    is($big->max_entries, 4294967295, 'max_entries 2**32-1 is accepted');
    ok($big->put(1, 1), '... and works');
    cmp_ok((stat $p)[12] * 512, '<', 1 << 20, '... with a small file');
    my $one = $C->new(tmp_path('args'), 1);
    is($one->max_entries, 1, 'max_entries 1 is accepted');

    croaks_ok($C, sub { $C->new(tmp_path('args'), 100, 101) }, qr/max_size/, 'max_size > max_entries croaks');
    croaks_ok($C, sub { $C->new(tmp_path('args'), 100, -1) }, qr/max_size/, 'max_size -1 croaks');
    croaks_ok($C, sub { $C->new(tmp_path('args'), 100, 0, -1) }, qr/ttl/, 'ttl -1 croaks');
    croaks_ok($C, sub { $C->new(tmp_path('args'), 100, 10, 0, 100) }, qr/lru_skip/, 'lru_skip 100 croaks');
    croaks_ok($C, sub { $C->new(tmp_path('args'), 100, 10, 0, -1) }, qr/lru_skip/, 'lru_skip -1 croaks');
    croaks_ok($C, sub { $C->new(tmp_path('args'), 100, 0, 0, 0, -1) }, qr/arena_cap/, 'arena_cap -1 croaks');
    usage_croaks_ok($C, sub { $C->new(tmp_path('args'), 100, 0, 0, 0, 0, 0600, 'extra') }, 'new', 'too many arguments croak with usage');
    croaks_ok($C, sub { $C->new("a\0b", 100) }, qr/./, 'a path with a NUL byte croaks');
    ok(!-e 'a', '... and creates nothing');
    croaks_ok($C, sub { $C->new('', 100) }, qr/./, 'an empty path croaks');
};

# ---------------------------------------------------------------------------
subtest 'handles: many at once, no leaks' => sub {
    my $path = tmp_path('handles');
    my $count_fds = sub { my @f = glob '/proc/self/fd/*'; scalar @f };
    my $count_maps = sub {
        open my $fh, '<', '/proc/self/maps' or return -1;
        scalar grep { /\s\Q$path\E$/ } <$fh>;
    };
    my $fd0 = $count_fds->();
    my @h = map { Data::HashMap::Shared::SS->new($path, 1000) } 1 .. 300;
    my $fails = 0;
    $h[$_]->put("k$_", "v$_") or $fails++ for 0 .. 299;
    is($fails, 0, '300 handles of one file in one process all put');
    is($h[0]->size, 300, '... and all see one map');
    is($h[299]->get('k0'), 'v0', '... the last handle sees the first one\'s entry');
    @h = ();
    is($count_maps->(), 0, 'no mapping of the file is left once the handles are gone');
    for (1 .. 2000) {
        my $m = Data::HashMap::Shared::SS->new($path, 1000);
        $m->get('k1');
    }
    is($count_fds->(), $fd0, '2,000 open/close cycles leak no descriptor');
    is($count_maps->(), 0, '... and no mapping');
    my $m = Data::HashMap::Shared::SS->new($path, 1000);
    is($m->get('k299'), 'v299', 'the entries persist across handles');
};

done_testing;
