#!/usr/bin/env perl
# CHI with a shared-memory L1 cache in front of Redis. Every process on the
# host shares the L1 (CHI::Driver::HashMap::Shared: one map file per CHI
# namespace), so what one worker loaded is served to all the others from
# memory, with no round trip to Redis. Needs CHI (Debian: libchi-perl).
# Redis comes from CHI::Driver::Redis (not packaged by Debian: install it
# from CPAN) with REDIS_SERVER=host:port; without them, CHI's Memory driver
# stands in for Redis (one per cache object: nothing shared but the L1).
use strict;
use warnings;
use Data::HashMap::Shared::SI;
use File::Temp ();
use POSIX ();

unless (eval { require CHI; 1 }) {
    print "skipped: CHI is not installed (Debian: apt-get install libchi-perl)\n";
    exit 0;
}
my $redis = $ENV{REDIS_SERVER} && eval { require CHI::Driver::Redis; 1 };

my $dir   = File::Temp->newdir(-d '/dev/shm' ? (DIR => '/dev/shm') : ());
my $loads = Data::HashMap::Shared::SI->new("$dir/loads.map", 10);    # for the demo

sub new_cache {
    return CHI->new(
        $redis ? (driver => 'Redis', server => $ENV{REDIS_SERVER})
               : (driver => 'Memory', datastore => {}),
        namespace  => 'eg-chi-l1-cache',
        expires_in => '10 min',
        l1_cache   => {
            driver          => 'HashMap::Shared',
            root_dir        => $dir,          # one map file per namespace
            map_max_entries => 100_000,
            map_max_size    => 10_000,        # LRU inside the map
        },
    );
}

sub load_user {    # the slow source of truth (a database, say)
    my ($id) = @_;
    shm_si_incr $loads, 'loads';
    return { id => $id, name => "user $id" };
}

sub run_workers {    # each looks up users 1..25 through the cache
    my ($n) = @_;
    my @pids;
    for (1 .. $n) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            alarm 30;
            my $cache = new_cache();
            for my $id (1 .. 25) {
                my $user = $cache->compute("user:$id", undef, sub { load_user($id) });
                POSIX::_exit(1) unless $user->{name} eq "user $id";
            }
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    for my $pid (@pids) {
        waitpid $pid, 0;
        die "worker $pid failed: $?\n" if $?;
    }
}

print 'L2: ', ($redis ? "Redis at $ENV{REDIS_SERVER}" : "CHI's Memory driver, standing in for Redis"), "\n";
new_cache()->clear;    # start from empty caches (Redis keeps them across runs)
run_workers(1);
printf "first worker: %d loads from the source\n", shm_si_get($loads, 'loads');
run_workers(3);
printf "3 more workers: %d more loads (served by the shared L1)\n", shm_si_get($loads, 'loads') - 25;
printf "L1 map file: %d entries\n", new_cache()->l1_cache->shared_map->size;
