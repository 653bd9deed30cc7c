#!/usr/bin/env perl
# Feature flags read by every worker on every request: a read is lock-free
# and costs about as much as a Perl hash lookup, so workers need no cache
# and see a change the moment it is made (here by the parent; from a shell,
# with `hashmap-shared put FILE new_checkout 1`).
use strict;
use warnings;
use Data::HashMap::Shared::SS;
use File::Temp ();
use POSIX ();
use Time::HiRes ();

my $WORKERS = 3;

my $dir   = File::Temp->newdir(-d '/dev/shm' ? (DIR => '/dev/shm') : ());
my $flags = Data::HashMap::Shared::SS->new("$dir/flags.map", 1_000);
shm_ss_put $flags, 'new_checkout', 0;
shm_ss_put $flags, 'banner', 'Welcome!';

pipe(my $ready_r, my $ready_w) or die "pipe: $!";  # "I run the old path"
my @pids;
for my $w (1 .. $WORKERS) {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        alarm 30;
        close $ready_r;
        my ($old, $new) = (0, 0);
        while ($new < 100) {                       # serve requests
            if (shm_ss_get $flags, 'new_checkout') { $new++ } else { $old++ }
            my $banner = shm_ss_get $flags, 'banner';
            syswrite $ready_w, 'r' if $old == 1;
            Time::HiRes::sleep(0.001);
        }
        POSIX::_exit($old > 0 ? 0 : 1);            # it did see the old setting
    }
    push @pids, $pid;
}
close $ready_w;
my $byte;
sysread $ready_r, $byte, 1 for 1 .. $WORKERS;   # all run the old code path
shm_ss_put $flags, 'new_checkout', 1;              # flip it for everyone
shm_ss_put $flags, 'banner', 'Try the new checkout!';

my $switched = 0;
for my $pid (@pids) {
    waitpid $pid, 0;
    $switched++ if $? == 0;
}
print "$switched of $WORKERS workers switched to new_checkout without a restart\n";
my @names = sort { $a cmp $b } shm_ss_keys $flags;
print 'flags now: ', join(', ', map { "$_=" . shm_ss_get($flags, $_) } @names), "\n";
exit($switched == $WORKERS ? 0 : 1);
