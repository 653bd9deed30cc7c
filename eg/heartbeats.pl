#!/usr/bin/env perl
# Heartbeats with TTL: each worker refreshes its own entry with put_ttl
# every 0.2 s; an entry not refreshed for a second expires by itself. A
# monitor lists the live workers with keys (expired entries are never
# returned), without tracking PIDs or timestamps itself.
use strict;
use warnings;
use Data::HashMap::Shared::SI;
use File::Temp ();
use POSIX ();
use Time::HiRes ();

my $BEAT = 1;    # seconds a heartbeat stays valid

my $dir   = File::Temp->newdir(-d '/dev/shm' ? (DIR => '/dev/shm') : ());
# a default TTL turns expiry on; every heartbeat gives its own lifetime
my $beats = Data::HashMap::Shared::SI->new("$dir/heartbeats.map", 1_000, 0, 60);

pipe(my $ready_r, my $ready_w) or die "pipe: $!";   # "I have beaten once"
my @pids;
for my $w (1 .. 3) {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        alarm 30;
        close $ready_r;
        my $sent = 0;
        until (shm_si_exists $beats, 'stop') {
            my $hung = $w == 3 && $sent == 2;     # worker 3 hangs after 2 beats
            unless ($hung) {
                shm_si_put_ttl $beats, "worker:$w", time, $BEAT;
                syswrite $ready_w, 'r' if ++$sent == 1;
            }
            Time::HiRes::sleep(0.2);
        }
        POSIX::_exit(0);
    }
    push @pids, $pid;
}

sub live_workers { sort { $a cmp $b } grep { /^worker:/ } shm_si_keys $beats }

close $ready_w;
my $byte;
sysread $ready_r, $byte, 1 for 1 .. 3;    # every worker has beaten once
print 'live at start: ', join(' ', live_workers()), "\n";
Time::HiRes::sleep(2.8);                     # worker 3's heartbeat runs out
print 'live 2.8 s later: ', join(' ', live_workers()), "\n";

shm_si_put $beats, 'stop', 1;                # tell the workers to finish
for my $pid (@pids) {
    waitpid $pid, 0;
    die "worker $pid failed: $?\n" if $?;
}
