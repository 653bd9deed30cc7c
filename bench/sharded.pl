#!/usr/bin/perl
# bench/sharded.pl - two writer processes on one map versus on a sharded map.
#
#   perl -Mblib bench/sharded.pl [N] [SHARDS]
#
# Each of two processes puts N keys of its own (SS, "w<i>:<n>" => 20 bytes),
# first into a single-file map (one writer lock for both), then into a map
# sharded over SHARDS files (default 4: independent locks). Both runs happen
# here, one after the other, on the same machine; the ratio is what counts.
use strict;
use warnings;
use File::Temp ();
use POSIX ();
use Time::HiRes qw(time);
use Data::HashMap::Shared::SS;

my $N      = shift // 200_000;
my $SHARDS = shift // 4;
my $dir = File::Temp::tempdir('dhms-shard-XXXXXX', CLEANUP => 1,
    -d '/dev/shm' ? (DIR => '/dev/shm') : (TMPDIR => 1));

# Two children write at once; returns total puts per second (best of 3).
sub race {
    my ($open) = @_;
    my $best = 0;
    for my $round (1 .. 3) {
        my $map = $open->($round);
        pipe(my $gate_r, my $gate_w) or die "pipe: $!";
        my @pids;
        for my $w (0, 1) {
            my $pid = fork // die "fork: $!";
            if (!$pid) {
                alarm 120;
                close $gate_w;
                sysread $gate_r, my $buf, 1;    # wait for the gate
                my $m = $open->($round);
                $m->put("w$w:$_", 'value-of-20-bytes-ok') or POSIX::_exit(1) for 1 .. $N;
                POSIX::_exit(0);
            }
            push @pids, $pid;
        }
        close $gate_r;
        my $t0 = time;
        close $gate_w;                          # open the gate
        for (@pids) { waitpid $_, 0; die "writer failed: $?\n" if $? }
        my $rate = 2 * $N / (time - $t0);
        die "lost entries\n" unless $map->size == 2 * $N;
        $best = $rate if $rate > $best;
    }
    return $best;
}

my $single = race(sub { Data::HashMap::Shared::SS->new("$dir/single-$_[0].map", 4 * $N) });
my $sharded = race(sub { Data::HashMap::Shared::SS->new_sharded("$dir/sharded-$_[0]", $SHARDS, 4 * $N) });
printf "2 writer processes, %d puts each (SS, best of 3)\n", $N;
printf "  one map (one lock)      %12.0f puts/s\n", $single;
printf "  %d shards (%d locks)      %12.0f puts/s   x%.2f\n", $SHARDS, $SHARDS, $sharded, $sharded / $single;
