#!/usr/bin/perl
# bench/fill.pl - the latency of every put while an II map fills from empty.
#
#   perl -Mblib bench/fill.pl [--smoke] [--lru] [--dir DIR] [N]
#
# Creates an II map for N entries (default 10,000,000; --smoke 200,000) in
# DIR (default /dev/shm, else $TMPDIR) and puts keys 1..N into it, timing
# each put on its own with CLOCK_MONOTONIC. Prints the put count, the total
# time, p50, p99, p99.9 and max of the per-put latency, the slowest puts
# with the capacity the table grew to at each, and how many resizes there
# were. The budget (DESIGN.md, issue "No pause that grows with the map"):
# slowest put <= 5 ms, p99.9 <= 50 us. With --lru the map is an LRU map
# whose max_size is N (= max_entries), and 3N puts go in: the last 2N each
# evict one entry (no budget: LRU maps still resize at once while they grow,
# DESIGN.md section 14). Each put is timed by two clock reads
# around a method call, so the floor (~0.1-0.3 us) is the clock and the
# method call, not the map.
use strict;
use warnings;
use File::Temp ();
use Getopt::Long qw(GetOptions);
use Time::HiRes qw(CLOCK_MONOTONIC clock_gettime);
use Data::HashMap::Shared::II;

my ($smoke, $dir, $lru) = (0, undef, 0);
GetOptions('smoke' => \$smoke, 'dir=s' => \$dir, 'lru' => \$lru)
    or die "usage: perl -Mblib $0 [--smoke] [--lru] [--dir DIR] [N]\n";
my $n = shift // ($smoke ? 200_000 : 10_000_000);
$n =~ tr/_//d;
$dir //= -d '/dev/shm' ? '/dev/shm' : File::Temp::tempdir(CLEANUP => 1);
my $path = "$dir/dhms-fill-$$.map";
unlink $path;
END { unlink $path if defined $path }
$SIG{$_} = sub { exit 1 } for qw(HUP INT TERM);

my $m = Data::HashMap::Shared::II->new($path, $n, $lru ? $n : 0);
my $puts = $lru ? 3 * $n : $n;
my @lat = (0) x $puts;
my @slow;    # [latency, key, capacity after]
my ($resizes, $cap) = (0, $m->capacity);
my $t0 = clock_gettime(CLOCK_MONOTONIC);
for my $i (1 .. $puts) {
    my $a = clock_gettime(CLOCK_MONOTONIC);
    $m->put($i, $i) or die "put $i failed\n";
    my $d = clock_gettime(CLOCK_MONOTONIC) - $a;
    $lat[$i - 1] = $d;
    if ($d > 0.001) {
        push @slow, [ $d, $i, $m->capacity ];
    }
    if ($i % 1024 == 0 || $d > 0.0002) {
        my $c = $m->capacity;
        if ($c != $cap) { $resizes++; $cap = $c }
    }
}
my $total = clock_gettime(CLOCK_MONOTONIC) - $t0;
die "size ", $m->size, " != $n\n" unless $m->size == $n;

my @s = sort { $a <=> $b } @lat;
my $q = sub { $s[ int($_[0] * ($#s)) ] };
printf "Data::HashMap::Shared %s: filling an II map of %s entries in %s; perl %s\n",
    $Data::HashMap::Shared::VERSION // '?', commify($n), $dir, $^V unless $lru;
printf "Data::HashMap::Shared %s: %s puts into an LRU II map of max_size %s in %s; perl %s\n",
    $Data::HashMap::Shared::VERSION // '?', commify($puts), commify($n), $dir, $^V if $lru;
printf "%-10s %10s %10s %10s %10s %10s %10s\n", 'puts', 'total s', 'p50 us', 'p99 us', 'p99.9 us', 'max ms', 'resizes';
printf "%-10s %10.2f %10.2f %10.2f %10.2f %10.2f %10d\n", commify($puts), $total,
    1e6 * $q->(0.5), 1e6 * $q->(0.99), 1e6 * $q->(0.999), 1e3 * $s[-1], $resizes;
printf "budget: max <= 5 ms: %s; p99.9 <= 50 us: %s\n",
    $s[-1] <= 0.005 ? 'met' : 'NOT met', $q->(0.999) <= 50e-6 ? 'met' : 'NOT met' unless $lru;
my @worst = (sort { $b->[0] <=> $a->[0] } @slow)[0 .. 9];
print "slowest puts (ms, key, capacity after):\n";
printf "  %8.2f  %10s  %12s\n", 1e3 * $_->[0], commify($_->[1]), commify($_->[2]) for grep { defined } @worst;
printf "final capacity %s, load %.2f\n", commify($m->capacity), $n / $m->capacity;

sub commify { my $x = sprintf '%.0f', shift; 1 while $x =~ s/^(\d+)(\d{3})/$1,$2/; $x }
