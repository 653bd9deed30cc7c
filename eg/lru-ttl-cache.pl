#!/usr/bin/env perl
# A cache shared by every process, bounded by LRU and by TTL: at most 100
# pages, each fresh for about a second. A miss computes the page and
# get_or_set stores it, or returns what another process stored meanwhile,
# so all callers agree on one value.
use strict;
use warnings;
use Data::HashMap::Shared::SS;
use File::Temp ();

my $dir = File::Temp->newdir(-d '/dev/shm' ? (DIR => '/dev/shm') : ());
# max_entries 1000, LRU max_size 100, default TTL 1 second
my $cache = Data::HashMap::Shared::SS->new("$dir/pages.map", 1_000, 100, 1);

my ($hits, $misses) = (0, 0);

sub render {                     # the expensive part
    my ($id) = @_;
    return "<html><body>page $id</body></html>";
}

sub cached_render {
    my ($id) = @_;
    my $key  = "page:$id";
    my $html = shm_ss_get $cache, $key;    # lock-free; marks the entry used
    if (defined $html) {
        $hits++;
        return $html;
    }
    $misses++;
    return shm_ss_get_or_set $cache, $key, render($id);
}

cached_render($_) for 1 .. 100, 1 .. 100;    # 100 misses, then 100 hits
print "after 200 requests: $misses misses, $hits hits\n";

for my $id (101 .. 150) {                    # 50 new pages evict 50 old ones
    cached_render($id);
    cached_render(1);                        # page 1 stays hot
}
printf "size: %d of max_size %d, evictions: %d\n",
    shm_ss_size($cache), shm_ss_max_size($cache), shm_ss_stat_evictions($cache);
printf "hot page 1 still cached: %s\n", shm_ss_exists($cache, 'page:1') ? 'yes' : 'no';

sleep 2;                                     # let every entry expire
my $fresh = grep { shm_ss_exists $cache, "page:$_" } 1 .. 150;
my $flushed = shm_ss_flush_expired $cache;
print "after 2 seconds: $fresh fresh, $flushed expired entries flushed\n";
