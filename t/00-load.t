use strict;
use warnings;
use Test::More;
use B ();
use lib 't/lib';
use DHMSTest;

# Pins: the distribution and all ten variant classes load; every operation
# of this issue exists as a method; counters exist only on integer-value
# variants; the keywords exist only after `use`, only in that lexical scope,
# only for that variant, and compile to their own op (not a sub call).

require_ok('Data::HashMap::Shared');

my @methods = ((grep { $_ ne 'incr' && $_ ne 'decr' && $_ ne 'incr_by' } sort keys %OPS),
               qw(new stats path unlink));

for my $v (@VARIANTS) {
    require_ok($v->{class});
    my @missing = grep { !$v->{class}->can($_) } @methods;
    is("@missing", '', "$v->{name}: every method of this issue exists");
    # on string-value variants the counter methods exist only to croak with
    # advice (t/21-counters.t); their keywords do not exist (below)
    ok($v->{class}->can($_), "$v->{name} can $_") for @COUNTER_OPS;
}

for my $v (@VARIANTS) {
    my ($p, $class) = @$v{qw(prefix class)};
    my $m = $class->new(tmp_path($v->{name}), 100);
    isa_ok($m, $class);

    # Every keyword of the issue compiles once the class is used.
    ok(eval { kw_ops($v); 1 }, "$v->{name}: every keyword compiles after use $class")
        or diag $@;

    # Without `use`, shm_<p>_size is no keyword: it is a call to an undefined sub.
    my $r = eval "package KWTest::none_$p; no strict; shm_${p}_size(\$m); 1";
    ok(!$r, "$v->{name}: no keyword without use");
    like($@, qr/Undefined subroutine|syntax error|Bareword/, "... it is not a known name");

    # In a block's scope only.
    $r = eval "package KWTest::scope_$p; use strict; { use $class; } shm_${p}_size(\$m); 1";
    ok(!$r, "$v->{name}: keyword gone after the block that used the class");

    $r = eval "package KWTest::inscope_$p; use strict; my \$n; { use $class; \$n = shm_${p}_size \$m; } \$n";
    is($r, 0, "$v->{name}: keyword works inside the block") or diag $@;

    # Using one variant does not enable another's keywords.
    my $other = $v->{name} eq 'SS' ? variant('II') : variant('SS');
    $r = eval "package KWTest::other_$p; use strict; use $other->{class}; shm_${p}_size(\$m); 1";
    ok(!$r, "$v->{name}: use $other->{class} does not enable shm_${p}_*");

    # A keyword is a custom op, not an entersub.
    my $cv = kw_compile($v, 'shm_PFX_get $_[0], $_[1]');
    my %names;
    my $walk;
    $walk = sub {
        my ($op) = @_;
        while ($op && $$op) {
            $names{ $op->name }++;
            $walk->($op->first) if $op->can('first') && $op->flags & B::OPf_KIDS();
            $op = $op->sibling;
        }
    };
    $walk->(B::svref_2object($cv)->ROOT);
    ok(!$names{entersub}, "$v->{name}: shm_${p}_get compiles to its own op, not a sub call")
        or diag join ' ', sort keys %names;
}

# String-value variants have no counter keywords.
for my $v (grep { !$_->{counters} } @VARIANTS) {
    my ($p, $class) = @$v{qw(prefix class)};
    my $m = $class->new(tmp_path($v->{name}), 10);
    for my $op (@COUNTER_OPS) {
        my $args = $op eq 'incr_by' ? '$m, 1, 1' : '$m, 1';
        my $r = eval "package KWTest::noctr_$p; use strict; use $class; shm_${p}_$op($args); 1";
        ok(!$r, "$v->{name}: shm_${p}_$op is no keyword");
    }
    is($m->size, 0, "$v->{name}: nothing was stored");
}

done_testing;
