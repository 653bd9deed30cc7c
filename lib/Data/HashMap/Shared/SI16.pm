package Data::HashMap::Shared::SI16;

use strict;
use warnings;

use Data::HashMap::Shared ();

our $VERSION = '1.00';

sub import   { Data::HashMap::Shared::_enable_keywords(__PACKAGE__, @_) }
sub unimport { Data::HashMap::Shared::_disable_keywords(__PACKAGE__) }

1;
__END__

=head1 NAME

Data::HashMap::Shared::SI16 - shared-memory hash map from byte string keys to int16 values

=head1 SYNOPSIS

    use Data::HashMap::Shared::SI16;

    my $map = Data::HashMap::Shared::SI16->new('/tmp/si16.shm', 100_000);

    # keywords: the fast path
    shm_si16_put $map, 'alpha', 100;
    my $v = shm_si16_get $map, 'alpha';

    # methods: the same operations
    $map->put('alpha', 100);
    my $w = $map->get('alpha');

=head1 DESCRIPTION

A L<Data::HashMap::Shared> map whose keys are byte strings and whose values are
int16s, stored in a file that any number of processes map and use at once.

C<use Data::HashMap::Shared::SI16;> loads the module and enables, in the
enclosing lexical scope, the keywords C<shm_si16_I<op>> (C<no
Data::HashMap::Shared::SI16;> disables them again). The methods exist
without the C<use>.

C<tie my %h, 'Data::HashMap::Shared::SI16', $path, $max_entries> gives a Perl
hash view of such a map (L<Data::HashMap::Shared/"TIED HASHES">).

See L<Data::HashMap::Shared> for everything: the constructor, every
operation, key and value rules, concurrency and limits.

=head1 SEE ALSO

L<Data::HashMap::Shared>

=cut
