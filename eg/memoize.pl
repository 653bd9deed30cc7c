#!/usr/bin/env perl
# Memoizing an expensive function across processes, computing each result
# only once ("single flight"): the first process to claim a key with add_ttl
# computes it; the others wait for the stored result. A claimant that dies
# leaves a claim that expires after 10 s, and then another process computes.
# Results are Storable-frozen, so any Perl data can be memoized.
use strict;
use warnings;
use Data::HashMap::Shared::SI;
use Data::HashMap::Shared::SS;
use File::Temp ();
use List::Util ();
use POSIX ();
use Storable ();
use Time::HiRes ();

my $WORKERS = 4;

my $dir  = File::Temp->newdir(-d '/dev/shm' ? (DIR => '/dev/shm') : ());
# results live an hour (the default TTL); claims get their own 10 s
my $memo = Data::HashMap::Shared::SS->new("$dir/memo.map", 100_000, 0, 3600);
my $runs = Data::HashMap::Shared::SI->new("$dir/runs.map", 100);    # for the demo

sub prime_factors {    # the expensive function
    my ($n) = @_;
    shm_si_incr $runs, 'computed';
    Time::HiRes::sleep(0.01);
    my @f;
    for (my $d = 2; $d * $d <= $n; $d++) {
        while ($n % $d == 0) { push @f, $d; $n /= $d }
    }
    push @f, $n if $n > 1;
    return \@f;
}

sub memoized_prime_factors {
    my ($n) = @_;
    my $key = "prime_factors:$n";
    while (1) {
        my $frozen = shm_ss_get $memo, $key;
        return Storable::thaw($frozen) if defined $frozen;
        if (shm_ss_add_ttl $memo, "claim:$key", $$, 10) {    # ours to compute
            # another process may have stored it just before we claimed
            my $stored = shm_ss_get $memo, $key;
            my $result = defined $stored ? Storable::thaw($stored) : prime_factors($n);
            shm_ss_put $memo, $key, Storable::nfreeze($result) unless defined $stored;
            shm_ss_remove $memo, "claim:$key";
            return $result;
        }
        Time::HiRes::sleep(0.002);    # someone else computes it: wait
    }
}

my @numbers = map { 1_000_003 * $_ } 1 .. 20;
my @pids;
for my $w (1 .. $WORKERS) {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        alarm 30;
        for my $n (@numbers) {
            my $f = memoized_prime_factors($n);
            POSIX::_exit(1) unless List::Util::product(@$f) == $n;
        }
        POSIX::_exit(0);
    }
    push @pids, $pid;
}
for my $pid (@pids) {
    waitpid $pid, 0;
    die "worker $pid failed: $?\n" if $?;
}

printf "%d workers x %d calls: %d computations\n",
    $WORKERS, scalar @numbers, shm_si_get($runs, 'computed');
print "prime factors of $numbers[-1]: @{ memoized_prime_factors($numbers[-1]) }\n";
