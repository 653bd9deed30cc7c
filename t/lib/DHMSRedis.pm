package DHMSRedis;

# A Redis (or Valkey) server for the t/9x-redis-*.t tests.
#
# redis_base() returns a location without its #MAP part:
#   - $ENV{DHMS_TEST_REDIS} when set (e.g. redis+unix:///tmp/x/s.sock; .ci/run
#     starts a server on a unix socket and sets it);
#   - otherwise a server of our own, started from redis-server (or
#     valkey-server; DHMS_TEST_SERVER=valkey-server picks it) on PATH, on a
#     unix socket in a temporary directory, with
#     no TCP port and nothing saved, stopped when the test ends;
#   - otherwise the whole test is skipped, saying why.
# own_server() always starts a server of our own (the restart test kills it).
# map_location($name) is a fresh map name for this process on that server.

use strict;
use warnings;

use Exporter 'import';
use File::Temp ();
use POSIX ();
use Time::HiRes ();
use Test::More ();

our @EXPORT = qw(redis_base own_server map_location server_binary server_version);

my @OWN;    # servers started by this process: { pid, dir, sock }

sub server_binary {
    # DHMS_TEST_SERVER=valkey-server picks the program of our own servers
    my @progs = $ENV{DHMS_TEST_SERVER} ? ($ENV{DHMS_TEST_SERVER}) : qw(redis-server valkey-server);
    for my $b (@progs) {
        return $b if $b =~ m{/} && -x $b;
        for my $d (split /:/, $ENV{PATH} // '', -1) {
            my $p = ($d eq '' ? '.' : $d) . "/$b";
            return $p if -x $p && !-d $p;
        }
        return "/usr/sbin/$b" if -x "/usr/sbin/$b";
        return "/usr/bin/$b"  if -x "/usr/bin/$b";
    }
    return;
}

# start_server($dir): a server on $dir/s.sock (returns the record).
sub start_server {
    my ($dir) = @_;
    my $bin = server_binary() or return;
    my $sock = "$dir/s.sock";
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDOUT, '>', "$dir/server.log";
        open STDERR, '>&', \*STDOUT;
        exec $bin, '--port', '0', '--unixsocket', $sock, '--unixsocketperm', '700',
            '--save', '', '--appendonly', 'no', '--dir', $dir, '--daemonize', 'no'
            or POSIX::_exit(127);
    }
    my $srv = { pid => $pid, dir => $dir, sock => $sock, bin => $bin };
    for (1 .. 200) {
        last if -S $sock;
        Time::HiRes::sleep(0.025);
    }
    die "the test server did not start: see $dir/server.log\n" unless -S $sock;
    push @OWN, $srv;
    return $srv;
}

# stop($srv): shut it down (SIGTERM; SIGKILL if it lingers).
sub stop_server {
    my ($srv) = @_;
    return unless $srv->{pid};
    kill 'TERM', $srv->{pid};
    for (1 .. 200) {
        last if waitpid($srv->{pid}, POSIX::WNOHANG()) != 0;
        Time::HiRes::sleep(0.025);
    }
    kill 'KILL', $srv->{pid} if kill 0, $srv->{pid};
    waitpid($srv->{pid}, 0);
    $srv->{pid} = 0;
}

# kill_server($srv): SIGKILL, as a crash would.
sub kill_server {
    my ($srv) = @_;
    kill 'KILL', $srv->{pid};
    waitpid($srv->{pid}, 0);
    $srv->{pid} = 0;
}

# restart_server($srv): a new server on the same socket.
sub restart_server {
    my ($srv) = @_;
    unlink $srv->{sock};
    @OWN = grep { $_ != $srv } @OWN;
    my $new = start_server($srv->{dir}) or die "cannot restart the server";
    %$srv = %$new;
    @OWN = map { $_ == $new ? $srv : $_ } @OWN;
    return $srv;
}

my $MAIN = $$;
END {
    local $?;    # waitpid must not change the exit status of the test
    if ($$ == $MAIN) { stop_server($_) for @OWN }
}

sub _skip_all {
    my ($why) = @_;
    Test::More::plan(skip_all => $why);
    exit 0;
}

sub _require_backend {
    require Data::HashMap::Shared::II;
    my $ok = eval { Data::HashMap::Shared::II->new('redis+unix:///nonexistent/dhms-probe.sock#probe', 1); 1 };
    _skip_all('this build has no Redis backend (configured with --no-redis)')
        if !$ok && $@ =~ /no Redis\/Valkey support/;
}

my $BASE;
sub redis_base {
    return $BASE if $BASE;
    _require_backend();
    if (my $env = $ENV{DHMS_TEST_REDIS}) {
        return $BASE = $env;
    }
    my $srv = own_server();
    return $BASE = "redis+unix://$srv->{sock}";
}

sub own_server {
    _require_backend();
    server_binary() or _skip_all('no redis-server (or valkey-server) on PATH and DHMS_TEST_REDIS not set');
    my $dir = File::Temp::tempdir('dhms-redis-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    return start_server($dir);
}

sub server_version {
    my $bin = server_binary() or return 'unknown';
    my $v = `$bin --version 2>/dev/null` // '';
    return $v =~ /v=(\S+)/ ? "$bin $1" : $bin;
}

my $N = 0;
sub map_location {
    my ($name, $base) = @_;
    $base //= redis_base();
    $N++;
    return "$base#dhms-test-$name-$$-$N";
}

1;
