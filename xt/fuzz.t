use strict;
use warnings;
use Test::More;
use lib 't/lib';
use DHMSTest qw(:DEFAULT :fuzz);

# The long fuzz run of t/45-fuzz.t (see there and xt/README): hostile map
# files of every variant, mutated and opened in a child that runs every kind
# of operation; a signal, a hang or a bad exit fails, and the file is kept as
# /tmp/dhms-fuzz-crash-<n>.map with a replay command.
#
#   FUZZ_ITERS=20000 (default)   iterations
#   FUZZ_JOBS=N                  children at a time (default: the CPUs, up to 8)
#   FUZZ_SEED=S                  repeat a run (the seed is printed)

eval "require $_->{class}; 1" or die $@ for @VARIANTS;

sub ncpu {
    open my $fh, '<', '/proc/cpuinfo' or return 2;
    my $n = grep { /^processor\s*:/ } <$fh>;
    return $n || 2;
}

my $iters = $ENV{FUZZ_ITERS} // 20_000;
my $jobs  = $ENV{FUZZ_JOBS} // (ncpu() > 8 ? 8 : ncpu());
fuzz_run(iters => $iters, jobs => $jobs, alarm => 10, label => 'xt/fuzz', seed => $ENV{FUZZ_SEED});

done_testing;
