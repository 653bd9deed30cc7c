package CHI::Driver::HashMap::Shared;

use strict;
use warnings;

use Carp qw(croak);
use Encode ();
use File::Path ();
use File::Spec ();
use Scalar::Util ();
use Data::HashMap::Shared::SS ();

use Moo;
extends 'CHI::Driver';

our $VERSION = '1.00';

has root_dir        => (is => 'ro');
has dir_create_mode => (is => 'ro', default => sub { oct 775 });
has map_max_entries => (is => 'ro', default => sub { 100_000 });
has map_max_size    => (is => 'ro', default => sub { 0 });
has map_arena_cap   => (is => 'ro', default => sub { 0 });
has map_file_mode   => (is => 'ro', default => sub { oct 600 });

# The default lifetime a map created here gives to writes made outside this
# driver (the driver itself always gives each entry its own; see store).
my $MAP_DEFAULT_TTL = 86_400;

# One map handle per file and process, shared by every cache object of the
# namespace; weak, so the file is closed with the last of them.
my %open_maps;

sub BUILD {
    my ($self) = @_;
    my $dir = $self->root_dir;
    croak 'CHI::Driver::HashMap::Shared: root_dir is required: '
        . 'the directory that holds one map file per namespace'
        unless defined $dir && length $dir;
    for my $opt (qw(map_max_entries map_max_size map_arena_cap)) {
        my $v = $self->$opt;
        croak "CHI::Driver::HashMap::Shared: $opt must be a non-negative integer (got "
            . (defined $v ? "'$v'" : 'undef') . ')'
            unless defined $v && $v =~ /\A\d+\z/;
    }
    if (!-d $dir) {
        File::Path::make_path($dir, { mode => $self->dir_create_mode, error => \my $err });
        croak "CHI::Driver::HashMap::Shared: cannot create root_dir $dir: "
            . join('; ', map { values %$_ } @$err)
            if !-d $dir;
    }
    return;
}

# The namespace's map file: root_dir/<escaped namespace>.map
sub map_path {
    my ($self) = @_;
    my $ns = $self->namespace;
    $ns = Encode::encode_utf8($ns) if utf8::is_utf8($ns);
    return File::Spec->catfile($self->root_dir, $self->escape_for_filename($ns) . '.map');
}

# The Data::HashMap::Shared::SS map of this namespace (created on first use).
sub shared_map {
    my ($self) = @_;
    return $self->{shared_map} ||= do {
        my $path = $self->map_path;
        my $map  = $open_maps{$path};
        if (!$map) {
            $map = Data::HashMap::Shared::SS->new($path, $self->map_max_entries,
                $self->map_max_size, $MAP_DEFAULT_TTL, 0, $self->map_arena_cap,
                $self->map_file_mode);
            $open_maps{$path} = $map;
            Scalar::Util::weaken($open_maps{$path});
        }
        $map;
    };
}

sub fetch {
    my ($self, $key) = @_;
    return $self->shared_map->get($key);
}

# CHI keeps the expiry inside $data and checks it on every get. With
# expires_on_backend it also passes $expires_in: the map then drops the entry
# itself (whole seconds, at least 1, as the map counts time); otherwise the
# entry is permanent in the map until CHI removes it.
sub store {
    my ($self, $key, $data, $expires_in) = @_;
    my $ttl = 0;
    if (defined $expires_in) {
        $ttl = int($expires_in);
        $ttl++ if $ttl < $expires_in;
        $ttl = 1 if $ttl < 1;
    }
    my $map = $self->shared_map;
    $map->put_ttl($key, $data, $ttl)
        or croak sprintf 'CHI::Driver::HashMap::Shared: cannot store in %s: the map is '
        . 'full (%d of map_max_entries %d)%s', $self->map_path, $map->size,
        $map->max_entries, $map->arena_cap ? ' or its arena_cap is reached' : '';
    return;
}

sub remove {
    my ($self, $key) = @_;
    $self->shared_map->remove($key);
    return;
}

sub clear {
    my ($self) = @_;
    croak 'clear takes no arguments' if @_ > 1;
    $self->shared_map->clear;
    return;
}

sub get_keys {
    my ($self) = @_;
    return $self->shared_map->keys;
}

sub fetch_multi_hashref {
    my ($self, $keys) = @_;
    return {} unless @$keys;
    my @values = $self->shared_map->get_multi(@$keys);
    my %h;
    @h{@$keys} = @values;
    return \%h;
}

sub get_namespaces {
    my ($self) = @_;
    opendir my $dh, $self->root_dir
        or croak 'CHI::Driver::HashMap::Shared: cannot read root_dir ' . $self->root_dir . ": $!";
    my @names = map { /\A(.+)\.map\z/s ? $1 : () } readdir $dh;
    closedir $dh;
    return map {
        my $ns = $self->unescape_for_filename($_);
        my $decoded = eval { Encode::decode_utf8($ns, Encode::FB_CROAK()) };
        defined $decoded ? $decoded : $ns;
    } sort @names;
}

1;
__END__

=encoding utf8

=head1 NAME

CHI::Driver::HashMap::Shared - CHI cache in Data::HashMap::Shared map files, shared by processes

=head1 SYNOPSIS

    use CHI;

    my $cache = CHI->new(
        driver          => 'HashMap::Shared',
        root_dir        => '/var/cache/myapp',   # one map file per namespace
        namespace       => 'pages',
        map_max_entries => 500_000,             # capacity of the map file
        map_max_size    => 100_000,             # LRU inside the map (optional)
        expires_in      => '10 min',
    );

    $cache->set($url, $html);
    my $html = $cache->get($url);

=head1 DESCRIPTION

A L<CHI> driver that keeps each namespace in a
L<Data::HashMap::Shared::SS> map file under C<root_dir>
(F<root_dir/E<lt>escaped namespaceE<gt>.map>). Every process that creates a
cache with the same C<root_dir> and namespace shares the same entries, live,
at memory speed: reads take no lock, a process that dies mid-write never
corrupts the file, and the files survive restarts (they are ordinary map
files: C<hashmap-shared stat FILE> shows one).

It passes CHI's own driver test suite (C<CHI::t::Driver>, run by
F<t/74-chi-driver.t> when CHI and Test::Class are installed).

=head1 CONSTRUCTOR OPTIONS

Besides CHI's own options:

=over

=item root_dir

Required: the directory for the map files, created (with
C<dir_create_mode>, default 0775) if missing.

=item map_max_entries

Capacity of each namespace's map, fixed when its file is created (default
100_000). A C<set> of a new key into a full map fails (CHI's C<on_set_error>
decides what that does) unless C<map_max_size> is set. Files are sparse: a
large value costs address space, not memory.

=item map_max_size

If above 0, the map evicts its least recently used entry when a new key
arrives at this size (see L<Data::HashMap::Shared/"EVICTION AND EXPIRY">).
Named so as not to clash with CHI's own C<max_size>, which counts bytes and
works with this driver too (CHI then discards entries itself).

=item map_arena_cap

Cap in bytes on the map's string storage (default 0: grows with the data).

=item map_file_mode

Permissions of a new map file (default 0600; 0660 to share with a group).

=back

The C<map_*> options apply when a namespace's file is created; an existing
file keeps the values it was created with.

=head1 EXPIRY

CHI stores each entry's expiry inside the serialized value and checks it on
every C<get>, so expiry works as with any driver. With CHI's
C<expires_on_backend> option, the driver also gives the map entry its own
time to live (whole seconds, rounded up, at least one): the map then drops
expired entries by itself, and they no longer count against
C<map_max_entries>. Maps are created with expiry enabled for that reason;
writes made to the file outside this driver get a default lifetime of one day.

=head1 METHODS

=over

=item shared_map

The namespace's L<Data::HashMap::Shared::SS> handle, for what CHI does not
offer (C<stats>, C<flush_expired>, C<verify>).

=item map_path

The namespace's map file.

=back

=head1 SEE ALSO

L<CHI>, L<CHI::Driver::Development>, L<Data::HashMap::Shared>, and
L<Data::HashMap::Shared::Cookbook> for this driver as CHI's C<l1_cache> in
front of a Redis cache.

=head1 AUTHOR

The Data::HashMap::Shared developers.

=head1 COPYRIGHT AND LICENSE

This software is copyright (c) 2026 by the Data::HashMap::Shared developers.

This is free software; you can redistribute it and/or modify it under the
same terms as the Perl 5 programming language system itself.

=cut
