#!/usr/bin/env perl
# A fixed-window rate limiter shared by every worker: at most $LIMIT
# requests per client per $WINDOW seconds. One counter per "client:window"
# key; the first incr creates it with the map's default TTL (one window),
# so old windows disappear by themselves.
use strict;
use warnings;
use Data::HashMap::Shared::SI;
use File::Temp ();
use POSIX ();

my $WINDOW  = 60;    # seconds
my $LIMIT   = 10;    # requests per client per window
my $WORKERS = 4;

my $dir  = File::Temp->newdir(-d '/dev/shm' ? (DIR => '/dev/shm') : ());
my $hits = Data::HashMap::Shared::SI->new("$dir/ratelimit.map", 100_000, 0, $WINDOW);
my $seen = Data::HashMap::Shared::SI->new("$dir/outcomes.map", 100);   # for the demo

sub allow {
    my ($client, $now) = @_;
    my $key = "$client:" . int($now / $WINDOW);
    my $n = eval { shm_si_incr $hits, $key };
    return 1 unless defined $n;    # map full: fail open (or closed, your call)
    return $n <= $LIMIT;
}

# Every worker sees the same clock second here, so the demo's counts do not
# depend on when it runs; a real server calls allow($client, time).
my $now = time;
my @pids;
for my $w (1 .. $WORKERS) {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        alarm 30;
        for my $client (('alice') x 8, ('bob') x 2) {
            my $outcome = allow($client, $now) ? 'allowed' : 'denied';
            shm_si_incr $seen, "$client:$outcome";
        }
        POSIX::_exit(0);
    }
    push @pids, $pid;
}
for my $pid (@pids) {
    waitpid $pid, 0;
    die "worker $pid failed: $?\n" if $?;
}

for my $client (qw(alice bob)) {
    my $allowed = shm_si_get($seen, "$client:allowed") // 0;
    my $denied  = shm_si_get($seen, "$client:denied")  // 0;
    printf "%s: %d of %d allowed\n", $client, $allowed, $allowed + $denied;
}
printf "alice in the next window: %s\n",
    allow('alice', $now + $WINDOW) ? 'allowed' : 'denied';
printf "window keys expire in: %d s\n", shm_si_ttl_remaining $hits, 'alice:' . int($now / $WINDOW);
