#!/usr/bin/env perl
# Request counters across pre-forked workers: each worker counts what it
# serves in one shared map, with no lock between workers; the parent (or
# any other process) reads the totals whenever it likes.
use strict;
use warnings;
use Data::HashMap::Shared::SI;
use File::Temp ();
use POSIX ();

my $WORKERS  = 4;
my $REQUESTS = 2_500;    # per worker

my $dir   = File::Temp->newdir(-d '/dev/shm' ? (DIR => '/dev/shm') : ());
# The map's location: a file here, or the first argument, such as
# redis://db.internal:6379/0#requests (see "More than one host" below).
my $where = shift // "$dir/requests.map";
my $stats = Data::HashMap::Shared::SI->new($where, 1_000);

my @pids;
for my $w (1 .. $WORKERS) {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {                       # a worker
        alarm 30;                          # never outlive a stuck run
        for my $n (1 .. $REQUESTS) {
            my $status = $n % 50 ? 200 : 404;    # "serve" a request
            shm_si_incr $stats, 'requests';
            shm_si_incr $stats, "status:$status";
            shm_si_incr $stats, "worker:$w";
        }
        POSIX::_exit(0);                   # no END blocks, no temp dir cleanup
    }
    push @pids, $pid;
}
for my $pid (@pids) {
    waitpid $pid, 0;
    die "worker $pid failed: $?\n" if $?;
}

my $total = shm_si_get $stats, 'requests';
print "requests: $total\n";
for my $key (sort grep { /^(?:status|worker):/ } shm_si_keys $stats) {
    my $count = shm_si_get $stats, $key;
    print "$key: $count\n";
}
