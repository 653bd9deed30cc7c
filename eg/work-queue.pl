#!/usr/bin/env perl
# A work queue: a producer adds jobs (job id => payload), workers pop them.
# pop removes and returns one entry under the writer lock, so every job goes
# to exactly one worker. add refuses a job id already queued, and returns
# false when the queue is full: that is the producer's back-pressure.
use strict;
use warnings;
use Data::HashMap::Shared::II;
use Data::HashMap::Shared::IS;
use File::Temp ();
use POSIX ();
use Time::HiRes ();

my $JOBS    = 200;
my $WORKERS = 4;

my $dir   = File::Temp->newdir(-d '/dev/shm' ? (DIR => '/dev/shm') : ());
my $queue = Data::HashMap::Shared::IS->new("$dir/queue.map", 1_000);
my $done  = Data::HashMap::Shared::II->new("$dir/done.map", 1_000);   # job => worker

for my $id (1 .. $JOBS) {
    shm_is_add $queue, $id, "resize image $id.png"
        or die "queue full or job $id already queued\n";
}

my @pids;
for my $w (1 .. $WORKERS) {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        alarm 30;
        while (my ($id, $payload) = shm_is_pop $queue) {
            Time::HiRes::sleep(0.001);             # "work" on $payload
            # add fails if the job was already done: it would be a duplicate
            shm_ii_add $done, $id, $w or POSIX::_exit(1);
        }
        POSIX::_exit(0);                           # queue empty: done
    }
    push @pids, $pid;
}
my $failed = 0;
for my $pid (@pids) {
    waitpid $pid, 0;
    $failed++ if $?;
}

my %share;
$share{$_}++ for shm_ii_values $done;
printf "processed %d of %d jobs, each exactly once%s\n", shm_ii_size($done), $JOBS,
    $failed ? " (but $failed workers saw a duplicate)" : '';
print 'jobs per worker: ', join(' ', map { "$_:" . ($share{$_} // 0) } 1 .. $WORKERS), "\n";
print 'left in queue: ', shm_is_size($queue), "\n";
exit($failed || shm_ii_size($done) != $JOBS ? 1 : 0);
