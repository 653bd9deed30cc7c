package Data::HashMap::Shared::Tie;

# The tied-hash face of every variant, written once. Data::HashMap::Shared
# installs TIEHASH into each variant package (one loop, at load time); the
# object tie() keeps is of this class and holds the map and the cursor of
# the hash's own keys/each walk.

use strict;
use warnings;

use Carp ();
use Scalar::Util ();

our $VERSION = '1.00';

# TIEHASH of every variant class: the arguments of new, or one map object of
# that class (tie %h, ref($map), $map).
sub tiehash {
    my ($class, @args) = @_;
    my $map;
    if (@args == 1 && Scalar::Util::blessed($args[0]) && $args[0]->isa($class)) {
        $map = $args[0];
    }
    else {
        @args or Carp::croak("Usage: tie my %hash, '$class', \$path, \$max_entries, ... "
            . "(the arguments of $class->new), or tie my %hash, '$class', \$map");
        $map = $class->new(@args);
    }
    return bless { map => $map, cursor => undef }, __PACKAGE__;
}

sub map { $_[0]{map} }

# The map croaks from inside these methods; _rethrow croaks again with the
# same message from the caller's line (the tied-hash operation in user code).
sub _rethrow {
    my ($err) = @_;
    $err =~ s/ at \S+ line \d+\.?\n\z//;
    Carp::croak($err);
}

sub FETCH {
    my ($self, $key) = @_;
    my $value = eval { $self->{map}->get($key) };
    return $value unless $@;
    _rethrow($@);
}

sub STORE {
    my ($self, $key, $value) = @_;
    my $map = $self->{map};
    my $ok = eval { $map->put($key, $value) };
    _rethrow($@) if $@;
    return if $ok;
    Carp::croak(ref($map) . ": cannot store key in tied hash: the map is full (max_entries "
        . $map->max_entries . ")"
        . ($map->arena_cap ? " or its string storage reached arena_cap " . $map->arena_cap : ''));
}

sub EXISTS {
    my ($self, $key) = @_;
    my $bool = eval { $self->{map}->exists($key) };
    return $bool unless $@;
    _rethrow($@);
}

sub DELETE {
    my ($self, $key) = @_;
    my $value = eval { $self->{map}->take($key) };
    return $value unless $@;
    _rethrow($@);
}

sub CLEAR { $_[0]{map}->clear; return }

sub FIRSTKEY {
    my ($self) = @_;
    my $cursor = $self->{cursor} ||= $self->{map}->cursor;
    $cursor->reset;
    my ($key) = $cursor->next;
    return $key;
}

sub NEXTKEY {
    my ($self) = @_;
    my $cursor = $self->{cursor} or return $self->FIRSTKEY;
    my ($key) = $cursor->next;
    return $key;
}

sub SCALAR { $_[0]{map}->size }

1;
__END__

=head1 NAME

Data::HashMap::Shared::Tie - a Perl hash view of a Data::HashMap::Shared map

=head1 SYNOPSIS

    use Data::HashMap::Shared::SS;

    tie my %h, 'Data::HashMap::Shared::SS', '/tmp/tie.shm', 10_000;
    $h{alice} = 'Alice';
    print "$_ => $h{$_}\n" for sort keys %h;
    my $map = tied(%h)->map;          # the map object behind the hash

=head1 DESCRIPTION

This class is the object that C<tie> keeps for a hash tied to any
variant class of L<Data::HashMap::Shared>. You do not use it directly:
tie to the variant class, with the arguments of its C<new> (or one map
object of that class). The hash operations map to the operations of the
map: C<$h{k}> to C<get>, assignment to C<put> (croaking when the map is
full), C<exists> to C<exists>, C<delete> to C<take>, C<%h = ()> to
C<clear>, C<keys>/C<values>/C<each> to a cursor, and C<scalar(%h)> to
C<size>.

C<< tied(%h)->map >> returns the map object, for every operation a hash
has no syntax for (counters, TTLs, batches ...).

See L<Data::HashMap::Shared/"TIED HASHES"> for the details.

=head1 SEE ALSO

L<Data::HashMap::Shared>

=cut
