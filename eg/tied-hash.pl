#!/usr/bin/env perl
# A plain Perl hash that several processes share: tie it to a map file
# and use it as any hash. Every process that ties the same file sees the
# same entries; tied(%hash)->map gives the map for everything else.
use strict;
use warnings;
use Data::HashMap::Shared::SI;
use File::Temp ();
use POSIX ();

my $dir = File::Temp->newdir(-d '/dev/shm' ? (DIR => '/dev/shm') : ());
tie my %seen, 'Data::HashMap::Shared::SI', "$dir/seen.map", 10_000;

my @words = qw(apple banana cherry apple banana apple);
my $pid = fork // die "fork: $!";
if ($pid == 0) {                   # the child counts the words ...
    alarm 30;
    tied(%seen)->map->incr($_) for @words;    # atomic counters
    $seen{total} = scalar @words;             # plain hash assignment
    POSIX::_exit(0);
}
waitpid $pid, 0;
die "child failed: $?\n" if $?;

delete $seen{total};               # ... and the parent sees them
print join(', ', map { "$_=$seen{$_}" } sort keys %seen), "\n";
printf "%d distinct words, banana seen: %s\n", scalar(%seen), exists $seen{banana} ? 'yes' : 'no';
