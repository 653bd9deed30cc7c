use strict;
use warnings;
use Test::More;
use lib 't/lib';

# CHI::Driver::HashMap::Shared passes CHI's own driver test suite
# (CHI::t::Driver, which needs CHI and Test::Class: Debian's libchi-perl and
# libtest-class-perl), then a few things that suite does not look at.

BEGIN {
    # CHI::t::Driver first: it loads Log::Any::Test before CHI, as CHI's
    # logging tests need.
    for my $m (qw(Test::Class CHI::t::Driver)) {
        next if eval "require $m; 1";
        my ($why) = $@ =~ /\A(Can't locate \S+)/;
        plan skip_all => "the CHI driver suite needs $m: " . ($why // 'it does not load')
            . ' (Debian: apt-get install libchi-perl libtest-class-perl '
            . 'libtest-warn-perl libtest-deep-perl)';
    }
}

use CHI::Driver::HashMap::Shared::t::CHIDriverTests;
use File::Temp qw(tempdir);
use POSIX ();

alarm 600;

CHI::Driver::HashMap::Shared::t::CHIDriverTests->runtests;

my $dir = tempdir('chi-dhms-XXXX', TMPDIR => 1, CLEANUP => 1);

subtest 'namespaces are map files under root_dir, shared across processes' => sub {
    my $cache = CHI->new(driver => 'HashMap::Shared', root_dir => $dir,
        namespace => 'pages');
    is($cache->short_driver_name, 'HashMap::Shared', 'the driver name');
    $cache->set(from_parent => 'hello');
    ok(-f "$dir/pages.map", 'pages.map holds the namespace');
    is($cache->map_path, "$dir/pages.map", 'map_path names it');
    isa_ok($cache->shared_map, 'Data::HashMap::Shared::SS');
    is_deeply([grep { $_ eq 'pages' } $cache->get_namespaces], ['pages'], 'get_namespaces lists it');
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        alarm 20;
        my $c = CHI->new(driver => 'HashMap::Shared', root_dir => $dir,
            namespace => 'pages');
        my $ok = ($c->get('from_parent') // '') eq 'hello';
        $c->set(from_child => [1, 2, 3]);
        POSIX::_exit($ok ? 0 : 1);
    }
    waitpid $pid, 0;
    is($?, 0, 'a child process read what the parent stored');
    is_deeply($cache->get('from_child'), [1, 2, 3], 'and the parent reads what the child stored');
};

subtest 'map options are passed through under names that do not clash' => sub {
    my $cache = CHI->new(driver => 'HashMap::Shared', root_dir => $dir,
        namespace => 'small', map_max_entries => 5, map_max_size => 3);
    my $map = $cache->shared_map;
    is($map->max_entries, 5, 'map_max_entries sets the map capacity');
    is($map->max_size,    3, 'map_max_size sets the map LRU size');
    $cache->set("k$_", $_) for 1 .. 10;
    is($map->size, 3, 'the map evicts at map_max_size');
    ok($map->ttl > 0, 'the map is created with expiry enabled');

    my $full = CHI->new(driver => 'HashMap::Shared', root_dir => $dir,
        namespace => 'full', map_max_entries => 2, on_set_error => 'die');
    $full->set(a => 1);
    $full->set(b => 2);
    like(eval { $full->set(c => 3); 1 } ? '' : $@, qr/the map is full \(2 of map_max_entries 2\)/,
        'a full map makes set fail with a message that says so');
};

subtest 'expires_on_backend gives the map entry its own lifetime' => sub {
    my $cache = CHI->new(driver => 'HashMap::Shared', root_dir => $dir,
        namespace => 'ttl', expires_on_backend => 1);
    $cache->set(short => 1, '1 hour');
    $cache->set(forever => 2);
    my $map = $cache->shared_map;
    my $left = $map->ttl_remaining('short');
    ok($left > 3500 && $left <= 3601, "an entry expiring in one hour lives 3600 s in the map (got $left)");
    is($map->ttl_remaining('forever'), 0, 'an entry that never expires is permanent in the map');
};

subtest 'bad options croak with what to do' => sub {
    like(eval { CHI->new(driver => 'HashMap::Shared'); 1 } ? '' : $@,
        qr/root_dir is required/, 'no root_dir');
    like(eval { CHI->new(driver => 'HashMap::Shared', root_dir => $dir, map_max_entries => 'lots'); 1 } ? '' : $@,
        qr/map_max_entries must be a non-negative integer \(got 'lots'\)/, 'map_max_entries not a number');
};

done_testing;
