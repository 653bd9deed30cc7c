use strict;
use warnings;
use Test::More;
use Config;
use Fcntl qw(F_GETFD F_SETFD FD_CLOEXEC);
use File::Spec ();
use IO::Handle ();
use POSIX ();
use Socket qw(AF_UNIX SOCK_STREAM PF_UNSPEC SOL_SOCKET);
use lib 't/lib';
use DHMSTest;

# Pins SPEC section 3 on maps in no file:
# - new(undef, ...): an anonymous map; path undef, unlink false, memfd -1;
#   every operation works (both calling styles); two anonymous maps are
#   independent; LRU and TTL work; a fork child shares it (changes visible
#   both ways at once), concurrent counters lose nothing.
# - new_memfd($name, ...): memfd returns a close-on-exec descriptor whose
#   /proc link names the memfd; path undef, unlink false; the sizing and
#   policy arguments are applied, the file mode too; every operation works.
# - new_from_fd($fd): attaches to the map in a descriptor (a memfd or a map
#   file), dups it (the caller may close its copy), validates it like a file
#   ("not a Data::HashMap::Shared file", "variant mismatch: file is SS,
#   opened as II"). The map reaches processes that did not inherit it:
#   (a) a program exec'd with FD_CLOEXEC cleared, (b) a fresh program that
#   reopens /proc/PID/fd/FD, (c) a process that receives it over a Unix
#   socket (SCM_RIGHTS, sendmsg/recvmsg by the syscall builtin). Each reads
#   the parent's entries and writes entries the parent sees.

eval "require $_->{class}; 1" or die $@ for @VARIANTS;

my @SOME = qw(II SS IS SI16);

# A one-byte pipe handshake between parent and child.
sub chan { pipe(my $r, my $w) or die "pipe: $!"; $w->autoflush(1); return ($r, $w) }
sub wait_for { my ($r) = @_; my $b; sysread($r, $b, 1) == 1 or die "peer went away\n"; }
sub signal_to { my ($w) = @_; syswrite($w, 'x') == 1 or die "signal: $!\n"; }

# The open flags of one of our descriptors (from /proc/self/fdinfo).
sub fd_flags {
    my ($fd) = @_;
    open my $fh, '<', "/proc/self/fdinfo/$fd" or return undef;
    local $/;
    my $info = <$fh>;
    return $info =~ /^flags:\s*([0-7]+)/m ? oct $1 : undef;
}
my $O_CLOEXEC = 02000000;    # Linux, x86_64 and aarch64 alike

sub fd_mode { (stat "/proc/self/fd/$_[0]")[2] & 07777 }

# The arguments that give an exec'ed perl this process's @INC (blib included).
sub inc_args { map { '-I' . File::Spec->rel2abs($_) } grep { !ref && -d } @INC }

# Runs `perl -e $script @args` in a new program; $prep runs in the forked
# child before exec (what it returns is kept alive until exec).
# -> ($wait_status, $stdout)
sub run_perl {
    my ($prep, $script, @args) = @_;
    STDOUT->flush; STDERR->flush;
    my $pid = open(my $out, '-|') // die "fork: $!";
    if (!$pid) {
        alarm 20;
        my @keep;
        eval { @keep = $prep->() if $prep; 1 } or do { print "prep failed: $@"; STDOUT->flush; POSIX::_exit(126) };
        { no warnings 'exec'; exec $^X, inc_args(), '-e', $script, @args; }
        print "exec failed: $!";
        STDOUT->flush;
        POSIX::_exit(127);
    }
    my $got = do { local $/; <$out> } // '';
    close $out;
    return ($?, $got);
}

# What the exec'ed programs run: attach, check key 1, write key 2 (and
# count 50 increments of key 3), report.
my $ATTACH = <<'EOS';
use strict; use warnings; use POSIX ();
my ($class, $how, $where, $k1, $x1, $k2, $x2, $k3, $counters) = @ARGV;
alarm 20;
my $out = eval {
    eval "require $class; 1" or die $@;
    my $m;
    if ($how eq 'fd') { $m = $class->new_from_fd($where) }
    else {
        open(my $fh, '+<', $where) or die "open $where: $!\n";
        $m = $class->new_from_fd(fileno $fh);
        close $fh;    # new_from_fd dup'ed it
    }
    my $got = $m->get($k1);
    die "key 1 reads " . ($got // 'undef') . ", not $x1\n" unless defined $got && $got eq $x1;
    $m->put($k2, $x2) or die "put failed\n";
    if ($counters) { $m->incr($k3) for 1 .. 50 }
    "ok size=" . $m->size;
} // "died: $@";
print $out;
STDOUT->flush;
POSIX::_exit(0);
EOS

# ---- SCM_RIGHTS by sendmsg/recvmsg through the syscall builtin -------------

my %SYS = ('x86_64-linux' => [ 46, 47 ], 'aarch64-linux' => [ 211, 212 ]);
my ($ARCH) = $Config{archname} =~ /\A(x86_64-linux|aarch64-linux)/;
my $SCM_RIGHTS = 1;
my $SCM_SKIP = !$ARCH ? "no sendmsg/recvmsg syscall numbers for $Config{archname} (and Socket::MsgHdr is not used)"
             : ($Config{ptrsize} != 8) ? 'needs 64-bit pointers' : '';

sub _addr { unpack 'J', pack 'p', $_[0] }

# struct msghdr (56 bytes): name, namelen, iov, iovlen, control, controllen, flags
sub _msghdr { pack 'J L x4 J J J J i x4', 0, 0, _addr($_[0]), 1, _addr($_[1]), length $_[1], 0 }

sub send_fd {
    my ($sock, $fd) = @_;
    my $byte = 'F';
    my $iov  = pack 'JJ', _addr($byte), 1;
    my $cmsg = pack 'J i i i x4', 20, SOL_SOCKET, $SCM_RIGHTS, $fd;    # CMSG_LEN(4) = 20, CMSG_SPACE(4) = 24
    my $hdr  = _msghdr($iov, $cmsg);
    my $n = syscall($SYS{$ARCH}[0], fileno($sock), $hdr, 0);
    die "sendmsg: $!\n" unless $n == 1;
}

sub recv_fd {
    my ($sock) = @_;
    my $byte = "\0";
    my $iov  = pack 'JJ', _addr($byte), 1;
    my $cmsg = "\0" x 24;
    my $hdr  = _msghdr($iov, $cmsg);
    my $n = syscall($SYS{$ARCH}[1], fileno($sock), $hdr, 0);
    die "recvmsg: $!\n" unless $n == 1;
    my ($len, $level, $type, $fd) = unpack 'J i i i', $cmsg;
    die "no SCM_RIGHTS message (len $len, level $level, type $type)\n"
        unless $len == 20 && $level == SOL_SOCKET && $type == $SCM_RIGHTS;
    return $fd;
}

# The descriptors of this process that are the memfd named $name.
sub memfds_named {
    my ($name) = @_;
    opendir my $d, '/proc/self/fd' or die "opendir: $!";
    return grep { (readlink("/proc/self/fd/$_") // '') =~ m{\A/memfd:\Q$name\E(?: \(deleted\))?\z} } grep { /\A\d+\z/ } readdir $d;
}

# ===========================================================================
# Anonymous maps

for_each_variant {
    my ($v) = @_;
    my $m = $v->{class}->new(undef, 1000);
    is($m->path, undef, 'path is undef');
    ok(!$m->unlink, 'unlink returns false');
    is($m->memfd, -1, 'memfd is -1');
    is($m->max_entries, 1000, 'max_entries');
    ok($m->sync, 'sync returns true');
    exercise_map($v, $m, 'anonymous map: every operation');

    my $other = $v->{class}->new(undef, 1000);
    $m->put(vkey($v, 1), vval($v, 1));
    ok(!$other->exists(vkey($v, 1)), 'two anonymous maps are independent');
    is($other->size, 0, '... the other is empty');

    my $lru = $v->{class}->new(undef, 100, 10, 60);
    is($lru->max_size, 10, 'LRU+TTL anonymous map: max_size');
    is($lru->ttl, 60, '... ttl');
    $lru->put(vkey($v, $_), vval($v, $_)) for 0 .. 29;
    is($lru->size, 10, '... holds max_size entries');
    is($lru->stat_evictions, 20, '... evicted 20');
    ok($lru->exists(vkey($v, 29)), '... the newest stays');
    my $left = $lru->ttl_remaining(vkey($v, 29));
    ok(defined $left && $left >= 58 && $left <= 60, '... entries carry the TTL') or diag("ttl_remaining: " . ($left // 'undef'));
    ok($lru->put_ttl(vkey($v, 40), vval($v, 40), 5), '... put_ttl');
    ok($lru->verify, '... verify');
};

# An anonymous map is shared with fork children: changes visible both ways.
for_each_variant {
    my ($v) = @_;
    my $m = $v->{class}->new(undef, 1000);
    $m->put(vkey($v, 1), vval($v, 1));
    my ($to_child_r, $to_child_w) = chan();
    my ($to_parent_r, $to_parent_w) = chan();
    my $pid = spawn_child(sub {
        close $to_child_w; close $to_parent_r;
        ($m->get(vkey($v, 1)) // '') eq vval($v, 1) or die "child: the map lacks what the parent put before fork\n";
        wait_for($to_child_r);
        ($m->get(vkey($v, 2)) // '') eq vval($v, 2) or die "child: the parent's put after fork is not visible\n";
        $m->put(vkey($v, 3), vval($v, 3)) or die "child: put failed\n";
        $m->remove(vkey($v, 1)) or die "child: remove failed\n";
        $m->incr(vkey($v, 5)) if $v->{counters};
        signal_to($to_parent_w);
        wait_for($to_child_r);    # stay alive until the parent has checked
    }, alarm => 20);
    close $to_child_r; close $to_parent_w;
    ok($m->put(vkey($v, 2), vval($v, 2)), 'parent puts after fork');
    signal_to($to_child_w);
    wait_for($to_parent_r);
    is($m->get(vkey($v, 3)), vval($v, 3), "parent sees the child's put");
    ok(!$m->exists(vkey($v, 1)), "parent sees the child's remove");
    is($m->get(vkey($v, 5)), 1, "parent sees the child's incr") if $v->{counters};
    is($m->size, $v->{counters} ? 3 : 2, 'size agrees');
    signal_to($to_child_w);
    waitpid($pid, 0);
    is(describe_status($?), 'exit 0', "the child saw the parent's changes");
    ok($m->put(vkey($v, 6), vval($v, 6)), 'the map works after the child left');
    is($m->get(vkey($v, 6)), vval($v, 6), '... and reads back');
    ok($m->verify, '... verify');
} only => \@SOME;

# 4 children x 5,000 increments on an anonymous map lose nothing.
for_each_variant {
    my ($v) = @_;
    my $m = $v->{class}->new(undef, 100);
    my $ops = kw_ops($v);
    children_ok(4, sub {
        for (1 .. 5000) { $ops->{incr}->($m, vkey($v, 1)); $m->incr(vkey($v, 2 + $_ % 3)) }
    }, '4 children incremented', alarm => 30);
    is($m->get(vkey($v, 1)), 20_000, '4 x 5,000 incr: exactly 20,000');
    is($m->get(vkey($v, 2)) + $m->get(vkey($v, 3)) + $m->get(vkey($v, 4)), 20_000, '... and over 3 keys: 20,000');
} only => [qw(II SI16 I32)];

# 3 children write distinct keys into an anonymous map; the parent sees all.
for_each_variant {
    my ($v) = @_;
    my $m = $v->{class}->new(undef, 10_000);
    children_ok(3, sub {
        my ($c) = @_;
        for my $j (0 .. 999) { $m->put(vkey($v, $c * 1000 + $j), vval($v, $c * 1000 + $j)) or die "put $c/$j failed\n" }
    }, '3 writers of distinct keys', alarm => 30);
    is($m->size, 3000, 'size 3000');
    my @bad = grep { ($m->get(vkey($v, $_)) // '') ne vval($v, $_) } 0 .. 2999;
    is_deeply(\@bad, [], 'every entry as its writer left it');
    ok($m->verify, 'verify');
} only => [qw(SS IS)];

# ===========================================================================
# memfd maps

for_each_variant {
    my ($v) = @_;
    my $name = "dhms-t80-$v->{name}";
    my $m = $v->{class}->new_memfd($name, 1000);
    my $fd = $m->memfd;
    ok(defined $fd && $fd > 2, "memfd returns a descriptor ($fd)");
    like(readlink("/proc/self/fd/$fd") // '', qr{\A/memfd:\Q$name\E(?: \(deleted\))?\z}, 'it is the memfd named $name');
    my $flags = fd_flags($fd);
    ok(defined $flags && ($flags & $O_CLOEXEC), 'the descriptor is close-on-exec');
    ok(defined $flags && ($flags & 3) == 2, 'the descriptor is read-write');
    is(sprintf('%04o', fd_mode($fd)), '0600', 'default mode 0600 (owner only)');
    is($m->path, undef, 'path is undef');
    ok(!$m->unlink, 'unlink returns false');
    is($m->memfd, $fd, 'memfd is stable');
    is($m->max_entries, 1000, 'max_entries');
    ok($m->sync, 'sync returns true');
    exercise_map($v, $m, 'memfd map: every operation');

    my $p = $v->{class}->new_memfd("$name-args", 500, 100, 3600, 5, 1 << 20, 0640);
    is($p->max_entries, 500, 'all arguments: max_entries');
    is($p->max_size, 100, '... max_size');
    is($p->ttl, 3600, '... ttl');
    is($p->stats->{lru_skip}, 5, '... lru_skip');
    is($p->arena_cap, 1 << 20, '... arena_cap');
    is(sprintf('%04o', fd_mode($p->memfd)), '0640', '... file_mode applied exactly');
    isnt($p->memfd, $fd, 'another memfd map has another descriptor');
};

# new_from_fd in one process: memfd and file descriptors; it dups.
for_each_variant {
    my ($v) = @_;
    my $m = $v->{class}->new_memfd("dhms-t80-from-$v->{name}", 1000);
    $m->put(vkey($v, $_), vval($v, $_)) for 1 .. 10;
    my $copy = POSIX::dup($m->memfd) // die "dup: $!";
    my $h = $v->{class}->new_from_fd($copy);
    isa_ok($h, $v->{class});
    POSIX::close($copy);
    is($h->size, 10, 'attached through a copy of the descriptor, which is closed again');
    is($h->get(vkey($v, 7)), vval($v, 7), "reads the creator's entries");
    ok($h->put(vkey($v, 11), vval($v, 11)), 'writes');
    is($m->get(vkey($v, 11)), vval($v, 11), '... the creator sees it');
    $m->remove(vkey($v, 1));
    ok(!$h->exists(vkey($v, 1)), "... and it sees the creator's remove");
    is($h->path, undef, 'path is undef');
    ok(!$h->unlink, 'unlink returns false');
    ok($h->memfd >= 0, 'memfd gives its descriptor');
    ok(($h->memfd != $m->memfd), '... its own (dup), not the creator\'s');
    undef $m;
    is($h->get(vkey($v, 7)), vval($v, 7), 'the map lives on after the creating handle is gone');
    exercise_map($v, do { $h->clear; $h }, 'map attached by new_from_fd: every operation');

    # A map file's descriptor.
    my $path = tmp_path($v->{name});
    my $f = $v->{class}->new($path, 100);
    $f->put(vkey($v, 3), vval($v, 3));
    open(my $fh, '+<', $path) or die "open $path: $!";
    my $viafd = $v->{class}->new_from_fd(fileno $fh);
    close $fh;
    is($viafd->get(vkey($v, 3)), vval($v, 3), "a map file's descriptor: reads");
    ok($viafd->put(vkey($v, 4), vval($v, 4)), '... writes');
    is($f->get(vkey($v, 4)), vval($v, 4), '... visible through the path');
} only => \@SOME;

subtest 'new_from_fd validates like a file' => sub {
    my $junk = tmp_path('junk');
    spew($junk, "this is not a map\n" x 1000);
    for my $name (@SOME) {
        my $v = variant($name);
        open(my $fh, '+<', $junk) or die "open: $!";
        croaks_ok($v, sub { $v->{class}->new_from_fd(fileno $fh) }, qr/not a Data::HashMap::Shared file/,
            "$name: a descriptor of a foreign file");
        close $fh;
        my $empty = tmp_path('empty');
        spew($empty, '');
        open($fh, '+<', $empty) or die "open: $!";
        croaks_ok($v, sub { $v->{class}->new_from_fd(fileno $fh) }, qr/./, "$name: a descriptor of an empty file");
        close $fh;
        pipe(my $r, my $w) or die "pipe: $!";
        my $gone = fileno $r;
        close $r; close $w;
        croaks_ok($v, sub { $v->{class}->new_from_fd($gone) }, qr/./, "$name: a closed descriptor");
        croaks_ok($v, sub { $v->{class}->new_from_fd(-1) }, qr/./, "$name: descriptor -1");
    }
    my $ss = Data::HashMap::Shared::SS->new_memfd('dhms-t80-ss', 10);
    $ss->put('a', 'b');
    croaks_ok('Data::HashMap::Shared::II', sub { Data::HashMap::Shared::II->new_from_fd($ss->memfd) },
        qr/variant mismatch: file is SS, opened as II\b/, 'an SS memfd opened as II');
    my $si16 = Data::HashMap::Shared::SI16->new_memfd('dhms-t80-si16', 10);
    croaks_ok('Data::HashMap::Shared::SI', sub { Data::HashMap::Shared::SI->new_from_fd($si16->memfd) },
        qr/variant mismatch: file is SI16, opened as SI\b/, 'an SI16 memfd opened as SI');
    my $path = tmp_path('IS');
    Data::HashMap::Shared::IS->new($path, 10);
    open(my $fh, '+<', $path) or die;
    croaks_ok('Data::HashMap::Shared::I16S', sub { Data::HashMap::Shared::I16S->new_from_fd(fileno $fh) },
        qr/variant mismatch: file is IS, opened as I16S\b/, 'an IS file descriptor opened as I16S');
    is($ss->get('a'), 'b', 'the SS map is untouched');
};

# A memfd map is shared with fork children (inherited handle and descriptor).
for_each_variant {
    my ($v) = @_;
    my $m = $v->{class}->new_memfd("dhms-t80-fork-$v->{name}", 1000);
    $m->put(vkey($v, 1), vval($v, 1));
    my ($st, $out) = run_in_child(sub {
        ($m->get(vkey($v, 1)) // '') eq vval($v, 1) or die "inherited handle lacks key 1\n";
        my $own = $v->{class}->new_from_fd($m->memfd);
        $own->put(vkey($v, 2), vval($v, 2)) or die "put failed\n";
        $m->put(vkey($v, 3), vval($v, 3)) or die "put failed\n";
        if ($v->{counters}) { $own->incr(vkey($v, 4)) for 1 .. 100 }
        'done';
    }, alarm => 20);
    is($out, 'ok:done', 'the child used the inherited map and its own new_from_fd handle');
    is($st, 0, '... and exited 0');
    is($m->get(vkey($v, 2)), vval($v, 2), "parent sees the child's put (own handle)");
    is($m->get(vkey($v, 3)), vval($v, 3), "parent sees the child's put (inherited handle)");
    is($m->get(vkey($v, 4)), 100, "parent sees the child's 100 incr") if $v->{counters};
} only => \@SOME;

# ===========================================================================
# Handing the memfd to processes that did not inherit it

# (a) exec with FD_CLOEXEC cleared; without clearing it, the program does
# not get the descriptor.
for_each_variant {
    my ($v) = @_;
    my $name = "dhms-t80-exec-$v->{name}";
    my $m = $v->{class}->new_memfd($name, 1000);
    my $fd = $m->memfd;
    $m->put(vkey($v, 1), vval($v, 1));
    my @args = ($v->{class}, 'fd', $fd, vkey($v, 1), vval($v, 1), vkey($v, 2), vval($v, 2), vkey($v, 3), $v->{counters} ? 1 : 0);
    my ($st, $out) = run_perl(sub {
        open(my $fh, '+<&=', $fd) or die "fdopen $fd: $!\n";
        fcntl($fh, F_SETFD, 0) or die "fcntl: $!\n";
        (fcntl($fh, F_GETFD, 0) & FD_CLOEXEC) and die "FD_CLOEXEC still set\n";
        $fh;    # kept open until exec: closing it would close the descriptor
    }, $ATTACH, @args);
    is($st, 0, 'exec: the program exited 0');
    is($out, 'ok size=' . ($v->{counters} ? 3 : 2), "exec: new_from_fd(\$ARGV[...]) read the parent's entry and wrote");
    is($m->get(vkey($v, 2)), vval($v, 2), "exec: the parent sees the program's put");
    is($m->get(vkey($v, 3)), 50, "exec: the parent sees the program's 50 incr") if $v->{counters};

    ($st, $out) = run_perl(undef, q{
        use POSIX (); use IO::Handle ();
        my ($fd, $name) = @ARGV;
        my $l = readlink("/proc/self/fd/$fd") // '';
        print $l =~ m{\A/memfd:\Q$name\E} ? 'inherited' : 'not inherited';
        STDOUT->flush;
        POSIX::_exit(0);
    }, $fd, $name);
    is($out, 'not inherited', 'exec without clearing FD_CLOEXEC: the program does not get the descriptor');
} only => \@SOME;

# (b) /proc/PID/fd/FD reopened by a fresh program (which holds no
# descriptor of the memfd).
for_each_variant {
    my ($v) = @_;
    my $name = "dhms-t80-proc-$v->{name}";
    my $m = $v->{class}->new_memfd($name, 1000);
    $m->put(vkey($v, 1), vval($v, 1));
    my $where = "/proc/$$/fd/" . $m->memfd;
    my ($st, $out) = run_perl(undef, $ATTACH, $v->{class}, 'proc', $where,
        vkey($v, 1), vval($v, 1), vkey($v, 2), vval($v, 2), vkey($v, 3), $v->{counters} ? 1 : 0);
    is($st, 0, '/proc: the program exited 0');
    is($out, 'ok size=' . ($v->{counters} ? 3 : 2), "/proc: the program reopened $where, read and wrote");
    is($m->get(vkey($v, 2)), vval($v, 2), "/proc: the parent sees the program's put");
    is($m->get(vkey($v, 3)), 50, "/proc: the parent sees the program's 50 incr") if $v->{counters};
} only => \@SOME;

# (c) SCM_RIGHTS over a Unix socket, to a process forked before the map
# existed; both then count on one key at the same time.
SKIP: {
    skip "SCM_RIGHTS: $SCM_SKIP", 1 if $SCM_SKIP;
    for_each_variant {
        my ($v) = @_;
        my $name = "dhms-t80-scm-$v->{name}";
        socketpair(my $ps, my $cs, AF_UNIX, SOCK_STREAM, PF_UNSPEC) or die "socketpair: $!";
        my $h = start_child(sub {
            close $ps;
            my @before = memfds_named($name);
            die "the child already holds the memfd (@before)\n" if @before;
            my $fd = recv_fd($cs);
            my $m = $v->{class}->new_from_fd($fd);
            POSIX::close($fd);
            ($m->get(vkey($v, 1)) // '') eq vval($v, 1) or die "received map lacks key 1\n";
            $m->put(vkey($v, 2), vval($v, 2)) or die "put failed\n";
            syswrite($cs, 'a') == 1 or die "ack: $!\n";
            if ($v->{counters}) { $m->incr(vkey($v, 3)) for 1 .. 5000 }
            'attached size=' . $m->size;
        }, alarm => 20);
        close $cs;
        my $m = $v->{class}->new_memfd($name, 1000);
        $m->put(vkey($v, 1), vval($v, 1));
        send_fd($ps, $m->memfd);
        my $ack = '';
        sysread($ps, $ack, 1);
        is($ack, 'a', 'the child received the descriptor and attached');
        if ($v->{counters}) { $m->incr(vkey($v, 3)) for 1 .. 5000 }
        my ($st, $out) = finish_child($h);
        is($st, 0, 'the child exited 0');
        like($out, qr/\Aok:attached size=\d+\z/, 'the child read the parent\'s entry and wrote') or diag($out);
        is($m->get(vkey($v, 2)), vval($v, 2), "the parent sees the child's put");
        is($m->get(vkey($v, 3)), 10_000, 'parent and child each incremented 5,000 times: 10,000') if $v->{counters};
        ok($m->verify, 'verify');
    } only => \@SOME;
}

done_testing;
