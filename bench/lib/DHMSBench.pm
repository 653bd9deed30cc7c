package DHMSBench;

# What bench/vs.pl times and bench/instructions.pl counts, in one place, so
# that the two measure the same loop over the same data: the keys and values
# of each variant, and the loop every single-process workload compiles.

use strict;
use warnings;
use Exporter 'import';

our @EXPORT_OK = qw(%VARIANT keys_for fill_value put_value loop_source random_order);

# key and value kinds of the variants measured
our %VARIANT = (
    II => { key => 'int', value => 'int' },
    IS => { key => 'int', value => 'str' },
    SS => { key => 'str', value => 'str' },
    SI => { key => 'str', value => 'int' },
);

# The N keys of a variant, its i-th fill value, and the value puts store.
sub keys_for { my ($v, $n) = @_; $VARIANT{$v}{key} eq 'int' ? [ 1 .. $n ] : [ map { "key:$_" } 1 .. $n ] }
sub fill_value { my ($v, $i) = @_; $VARIANT{$v}{value} eq 'int' ? $i : sprintf 'val:%016d', $i }
sub put_value  { my ($v) = @_; $VARIANT{$v}{value} eq 'int' ? 7_777_777 : 'value-of-20-bytes-ok' }

# The same keys in a random order, the same on every run and every perl
# (a Fisher-Yates shuffle driven by a fixed linear congruential sequence,
# not by perl's rand): the order a "random order" row reads them in.
sub random_order {
    my ($keys) = @_;
    my @k = @$keys;
    my $s = 20_261_201;
    for (my $i = $#k; $i > 0; $i--) {
        $s = ($s * 1_103_515_245 + 12_345) % 2_147_483_648;
        my $j = $s % ($i + 1);
        @k[ $i, $j ] = @k[ $j, $i ];
    }
    return \@k;
}

# The source of the loop of one workload: compiled, it gives a sub
# ($m, \%hash, \@keys, $v) that returns a pass. Both sides (the map's
# keyword, a plain Perl hash) get the same closure shape: lexical $m / %h /
# $x / $v, and one `for my $k (@keys) { STATEMENT }` per pass.
sub loop_source {
    my ($variant, $stmt) = @_;
    my $src = <<'PERL';
use strict; use warnings;
use feature 'refaliasing'; no warnings 'experimental::refaliasing';
use Data::HashMap::Shared::%V%;
sub {
    my ($m, $hash, $keys, $v) = @_;
    \my %h = $hash;
    \my @keys = $keys;
    my $x;
    return sub { for my $k (@keys) { %STMT%; } return };
}
PERL
    $src =~ s/%V%/$variant/;
    $src =~ s/%STMT%/$stmt/;
    return $src;
}

1;
