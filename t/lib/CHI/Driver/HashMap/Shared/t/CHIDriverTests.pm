package CHI::Driver::HashMap::Shared::t::CHIDriverTests;

# CHI's driver test suite (CHI::t::Driver, shipped with CHI) run against
# CHI::Driver::HashMap::Shared, as CHI::Driver::Development says: every
# cache lives in one temporary root_dir, removed at exit.

use strict;
use warnings;
use CHI::Test;
use File::Temp qw(tempdir);
use base qw(CHI::t::Driver);

my $root_dir;

sub testing_driver_class { 'CHI::Driver::HashMap::Shared' }

# CHI hands store() an expiry when asked to (expires_on_backend): the map
# then expires the entry itself; test_expires_on_backend checks both ways.
sub supports_expires_on_backend { 1 }

sub new_cache_options {
    my $self = shift;
    $root_dir ||= tempdir('chi-driver-hashmap-shared-XXXX', TMPDIR => 1, CLEANUP => 1);
    return ($self->SUPER::new_cache_options(), root_dir => $root_dir);
}

1;
