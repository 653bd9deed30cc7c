package Data::HashMap::Shared::I16S;

use strict;
use warnings;

use Data::HashMap::Shared ();

our $VERSION = '1.00';

sub import   { Data::HashMap::Shared::_enable_keywords(__PACKAGE__, @_) }
sub unimport { Data::HashMap::Shared::_disable_keywords(__PACKAGE__) }

1;
__END__

=head1 NAME

Data::HashMap::Shared::I16S - shared-memory hash map from int16 keys to byte string values

=head1 SYNOPSIS

    use Data::HashMap::Shared::I16S;

    my $map = Data::HashMap::Shared::I16S->new('/tmp/i16s.shm', 100_000);

    # keywords: the fast path
    shm_i16s_put $map, 42, 'one hundred';
    my $v = shm_i16s_get $map, 42;

    # methods: the same operations
    $map->put(42, 'one hundred');
    my $w = $map->get(42);

=head1 DESCRIPTION

A L<Data::HashMap::Shared> map whose keys are int16s and whose values are
byte strings, stored in a file that any number of processes map and use at once.

C<use Data::HashMap::Shared::I16S;> loads the module and enables, in the
enclosing lexical scope, the keywords C<shm_i16s_I<op>> (C<no
Data::HashMap::Shared::I16S;> disables them again). The methods exist
without the C<use>.

C<tie my %h, 'Data::HashMap::Shared::I16S', $path, $max_entries> gives a Perl
hash view of such a map (L<Data::HashMap::Shared/"TIED HASHES">).

See L<Data::HashMap::Shared> for everything: the constructor, every
operation, key and value rules, concurrency and limits.

=head1 SEE ALSO

L<Data::HashMap::Shared>

=cut
