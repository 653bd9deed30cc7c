use strict;
use warnings;
use Test::More;
use File::Spec ();
use POSIX ();
use Time::HiRes ();
use lib 't/lib';
use DHMSTest;

# Pins SPEC section 7's "death detection must not rely on PIDs": processes in
# different PID namespaces (containers sharing the file) share one map.
# (a) Writers in three PID namespaces -- this one and two new ones, where each
#     writer is PID 1, so the two namespaced writers even have the same PID --
#     hammer one map at once: no increment and no entry is lost, no live
#     holder is taken for dead (stat_recoveries stays 0, though 16 MiB puts
#     hold the lock for up to tens of milliseconds, past the waiters' 10 ms
#     sleeps after which they check the holder's liveness), and verify
#     passes.
# (b) A writer inside another PID namespace is SIGKILLed (from here, by its
#     real PID) while it loops over long puts: this process's next put gets
#     through within seconds, verify passes, and over the rounds at least
#     one kill landed while the lock was held (stat_recoveries grew). Before
#     each kill the writer is SIGSTOPped for 300 ms while a writer here waits
#     for the lock: a stopped holder is alive and is never taken for dead.

# Namespaces need CAP_SYS_ADMIN (root, or a user namespace).
my @UNSHARE = qw(unshare --pid --fork);
if (system("unshare --pid --fork true >/dev/null 2>&1") != 0) {
    plan skip_all => 'cannot create a PID namespace here (`unshare --pid --fork true` failed: '
        . 'util-linux missing, not root, or not permitted in this container)';
}
# --kill-child: if unshare itself dies, the kernel kills the namespace too.
push @UNSHARE, '--kill-child' if system("unshare --pid --fork --kill-child true >/dev/null 2>&1") == 0;

require Data::HashMap::Shared::SI;
require Data::HashMap::Shared::SS;

# The writers' code: compiled here (for the writer of this namespace) and
# passed with -e to the perls run inside new namespaces.
my $WORKER = <<'EOC';
use strict;
use warnings;
use Data::HashMap::Shared::SI;
use Data::HashMap::Shared::SS;
sub big_value { my ($tag, $j) = @_; my $c = chr(65 + $j % 26); "$tag:$j:" . ($c x (16 << 20)) . ':end' }
sub hammer {
    my ($si_path, $ss_path, $tag, $wait) = @_;
    my $si = Data::HashMap::Shared::SI->new($si_path, 1);
    my $ss = Data::HashMap::Shared::SS->new($ss_path, 1);
    my @big = map { big_value($tag, $_) } 0 .. 1;
    $wait->();
    for my $i (1 .. 20_000) {
        $si->incr('total');
        if ($i % 4 == 0) {
            $si->put("$tag:" . $i / 4, $i) or die "$tag: put $i failed\n";
        }
        if ($i % 1000 == 0) {
            $ss->put("big:$tag", $big[ $i / 1000 % 2 ]) or die "$tag: big put $i failed\n";
        }
    }
    return "pid=$$";
}
sub long_val { my ($j) = @_; "v$j:" . (chr(97 + $j) x (4 << 20)) . ':end' }
# Loops over long puts until killed; says 'r' on STDOUT once it is going.
sub long_puts {
    my ($ss_path) = @_;
    my $ss = Data::HashMap::Shared::SS->new($ss_path, 1);
    my @vals = map { long_val($_) } 0 .. 7;
    my $n = 0;
    while (1) {
        $ss->put('long:' . $n % 8, $vals[ $n % 8 ]) or die "long put failed\n";
        syswrite STDOUT, 'r' if ++$n == 4;
    }
}
1;
EOC
eval $WORKER or die $@;

# The include path for the perls started by unshare (cwd is kept).
my @INC_ARGS = map { '-I' . File::Spec->rel2abs($_) } grep { !ref } @INC;

# ns_spawn($code, @args): runs `unshare --pid --fork $^X -e $code @args` with
# STDIN and STDOUT on pipes and STDERR in a file. Returns { pid (of unshare),
# in (its STDIN, ours to write), out (its STDOUT, ours to read), err (the
# file) }; ns_reap($w) waits for it and passes its STDERR on as diagnostics.
sub ns_spawn {
    my ($code, @args) = @_;
    pipe(my $in_r, my $in_w) or die "pipe: $!";
    pipe(my $out_r, my $out_w) or die "pipe: $!";
    my $err = tmp_path('ns-stderr');
    STDOUT->flush; STDERR->flush;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        close $in_w; close $out_r;
        POSIX::dup2(fileno $in_r, 0) // POSIX::_exit(120);
        POSIX::dup2(fileno $out_w, 1) // POSIX::_exit(121);
        open STDERR, '>', $err or POSIX::_exit(123);
        { exec @UNSHARE, $^X, @INC_ARGS, '-e', "alarm 60;\n$WORKER\n$code", @args }
        POSIX::_exit(122);
    }
    close $in_r; close $out_w;
    return { pid => $pid, in => $in_w, out => $out_r, err => $err };
}

sub ns_reap {
    my ($w) = @_;
    waitpid($w->{pid}, 0);
    my $st = $?;
    # util-linux 2.38's unshare says this when its child was killed by a
    # signal (it then exits with the signal); it is not the writer's output.
    my @err = grep { !/^unshare: sigprocmask unblock failed/ } split /^/, slurp($w->{err});
    diag "[namespaced writer] $_" for @err;
    unlink $w->{err};
    return $st;
}

# The process state letter from /proc/PID/stat ('T' when stopped).
sub proc_state {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return '';
    my $s = <$fh> // '';
    return $s =~ /\)\s+(\S)/ ? $1 : '';
}

# The real PID (in our namespace) of the namespace's PID 1: the only child of
# the unshare process. Waits up to 5 s for it to appear.
sub ns_init_pid {
    my ($unshare_pid) = @_;
    my $deadline = Time::HiRes::time() + 5;
    while (Time::HiRes::time() < $deadline) {
        if (open my $fh, '<', "/proc/$unshare_pid/task/$unshare_pid/children") {
            my ($kid) = split ' ', (<$fh> // '');
            return $kid if $kid;
        }
        Time::HiRes::sleep(0.005);
    }
    return undef;
}

sub read_all { my ($fh) = @_; local $/; my $s = <$fh>; close $fh; return $s // '' }

# ---- (a) live writers in three PID namespaces ------------------------------
{
    my $si_path = tmp_path('ns-si');
    my $ss_path = tmp_path('ns-ss');
    my $si = Data::HashMap::Shared::SI->new($si_path, 100_000);
    my $ss = Data::HashMap::Shared::SS->new($ss_path, 100);
    $si->put('total', 0);

    # Barrier: every writer waits for EOF on a pipe we close when all are up.
    my @ns = map {
        my $tag = "ns$_";
        ns_spawn('print hammer($ARGV[0], $ARGV[1], $ARGV[2], sub { local $/; my $x = <STDIN> })',
                 $si_path, $ss_path, $tag);
    } 1 .. 2;
    $ns[$_]{tag} = 'ns' . ($_ + 1) for 0 .. 1;
    pipe(my $go_r, my $go_w) or die "pipe: $!";
    my $plain = start_child(sub {
        close $go_w;
        close $_->{in} for @ns;
        hammer($si_path, $ss_path, 'plain', sub { my $b; sysread $go_r, $b, 1 });
    }, alarm => 60);
    close $go_r;
    close $_->{in} for @ns;    # release the namespaced writers ...
    close $go_w;               # ... and the plain one

    my ($st, $out) = finish_child($plain);
    is(describe_status($st) . " $out", "exit 0 ok:pid=$plain->{pid}", 'the writer of this PID namespace finished');
    for my $w (@ns) {
        my $said = read_all($w->{out});
        is(describe_status(ns_reap($w)), 'exit 0', "the writer in PID namespace $w->{tag} finished");
        is($said, 'pid=1', "... and ran as PID 1 of its namespace");
    }

    is($si->get('total'), 60_000, 'three writers x 20,000 incr: the total is exact');
    my @missing;
    for my $tag (qw(plain ns1 ns2)) {
        for my $j (1 .. 5000) {
            my $g = $si->get("$tag:$j");
            push @missing, "$tag:$j=" . ($g // 'undef') unless defined $g && $g == 4 * $j;
        }
    }
    is(scalar(@missing), 0, 'three writers x 5,000 puts: every entry is there with its value')
        or diag "first: @missing[0 .. ($#missing < 4 ? $#missing : 4)]";
    is($si->size, 15_001, 'size is exact');
    for my $tag (qw(plain ns1 ns2)) {
        my $g = $ss->get("big:$tag") // '';
        ok($g eq big_value($tag, 0), "the last 16 MiB put of $tag is complete");
    }
    is($si->stat_recoveries, 0, 'no live writer was taken for dead (counter map)');
    is($ss->stat_recoveries, 0, 'no live writer was taken for dead (map of 16 MiB values)');
    ok(eval { $si->verify }, 'verify passes (counter map)') or diag $@;
    ok(eval { $ss->verify }, 'verify passes (map of 16 MiB values)') or diag $@;
    ok(eval { under_alarm(10, sub { $si->put('after', 1) && $ss->put('after', 'x') }) }, 'both maps stay usable')
        or diag $@;
}

# ---- (b) a writer in another PID namespace: stopped, then SIGKILLed ----------
# Each round: the namespaced writer loops over 4 MiB puts (so that it holds
# the lock most of the time). It is stopped (SIGSTOP) for 300 ms while a
# writer here waits for the lock: a stopped holder is alive, so the waiter
# must keep waiting and nothing may be recovered. Then it continues, and is
# SIGKILLed at a random moment; our next put must get through.
{
    my $path = tmp_path('ns-kill');
    my $m = Data::HashMap::Shared::SS->new($path, 1000);
    my %stable = map { ("stable:$_" => "stable value $_ " . ('s' x ($_ % 40))) } 0 .. 99;
    $m->put($_, $stable{$_}) for keys %stable;
    my $rec0 = $m->stat_recoveries;
    my $rec = $rec0;
    my (@grew, @blocked);
    for my $round (1 .. 6) {
        my $w = ns_spawn('long_puts($ARGV[0])', $path);
        close $w->{in};
        my $b = '';
        is(sysread($w->{out}, $b, 1), 1, "round $round: the namespaced writer is running");
        my $inner = ns_init_pid($w->{pid});
        ok($inner, "round $round: found the real PID of the namespace's PID 1");
        my $cmd = '';
        $cmd = read_all($_) for grep { $inner && open $_, '<', "/proc/$inner/cmdline" } my $fh;
        like($cmd, qr/long_puts/, "round $round: ... and it is the writer");
        unless ($inner) {
            kill 'KILL', $w->{pid};
            ns_reap($w);
            next;
        }

        # Stopped, not dead: never taken for dead.
        kill 'STOP', $inner;
        my $until = Time::HiRes::time() + 2;
        Time::HiRes::sleep(0.001) while proc_state($inner) ne 'T' && Time::HiRes::time() < $until;
        is(proc_state($inner), 'T', "round $round: the writer is stopped");
        my $waiter = start_child(sub {
            my $t = Time::HiRes::time();
            $m->put("waiter:$round", "waited $round") or die "put returned false\n";
            return sprintf '%.3f', Time::HiRes::time() - $t;
        }, alarm => 20);
        Time::HiRes::sleep(0.3);
        is($m->stat_recoveries, $rec, "round $round: a stopped (live) holder is not taken for dead");
        kill 'CONT', $inner;
        my ($wst, $wout) = finish_child($waiter);
        like(describe_status($wst) . " $wout", qr/\Aexit 0 ok:\d/, "round $round: the waiter got through after SIGCONT");
        my ($waited) = $wout =~ /ok:([\d.]+)/;
        push @blocked, $round if defined $waited && $waited >= 0.25;
        is($m->stat_recoveries, $rec, "round $round: ... without a recovery");
        is($m->get("waiter:$round"), "waited $round", "round $round: ... and its put is there");

        # Dead: recovered.
        Time::HiRes::sleep(rand 0.1);
        ok(kill('KILL', $inner), "round $round: SIGKILL sent to the writer (PID $inner here, 1 inside)");
        my $st = ns_reap($w);
        close $w->{out};

        my $t0 = Time::HiRes::time();
        my $ok = eval {
            under_alarm(10, sub { $m->put("after:$round", "after $round") or die "put returned false\n" });
        };
        my $dt = Time::HiRes::time() - $t0;
        ok($ok, sprintf("round %d: the next put succeeds under alarm 10 (%.1f ms)", $round, $dt * 1000)) or diag $@;
        is($m->get("after:$round"), "after $round", "round $round: ... and reads back");
        ok(eval { $m->verify }, "round $round: verify passes") or diag $@;
        my @bad = grep { ($m->get($_) // '') ne $stable{$_} } sort keys %stable;
        is(scalar(@bad), 0, "round $round: entries the writer never touched are intact");
        my @torn = grep { my $g = $m->get("long:$_"); defined $g && $g ne long_val($_) } 0 .. 7;
        is(scalar(@torn), 0, "round $round: every long value is absent or complete");
        my $now = $m->stat_recoveries;
        cmp_ok($now, '>=', $rec, "round $round: stat_recoveries never goes down");
        push @grew, $round if $now > $rec;
        $rec = $now;
    }
    ok(@blocked >= 1, 'in at least one round the waiter met the stopped writer holding the lock and waited'
        . ' (rounds: ' . (join(',', @blocked) || 'none') . ')');
    ok(@grew >= 1, 'in at least one round the kill landed while the writer held the lock, and was recovered'
        . ' (stat_recoveries grew in rounds: ' . (join(',', @grew) || 'none') . ')');
    note "stat_recoveries went from $rec0 to $rec over 6 rounds";
}

done_testing;
