use strict;
use warnings;
use Test::More;
use lib 't/lib';
use DHMSTest;

# Pins SPEC section 2: a keyword takes a fixed number of comma-separated
# terms, the map first; items after that count belong to the enclosing list;
# the parenthesised form works; each term is a full expression; the map may
# be any expression; list operations follow the agreed scalar-context
# results. Methods with the wrong number of arguments croak.

for_each_variant {
    my ($v) = @_;
    my $m = $v->{class}->new(tmp_path($v->{name}), 100);
    my ($k, $x) = (vkey($v, 1), vval($v, 1));
    $m->put($k, $x);

    # Extra items go to the enclosing call: is() receives (value, $x, name).
    kw_run($v, q{
        my ($m, $k, $x) = @_;
        is(shm_PFX_get $m, $k, $x, 'is(shm_PFX_get $m, $k, $x, name)');
    }, $m, $k, $x);

    my @l = kw_run($v, q{ my ($m) = @_; (shm_PFX_size $m, 7, 8) }, $m);
    is_deeply(\@l, [ 1, 7, 8 ], 'size takes one term, the rest stays in the list');

    @l = kw_run($v, q{ my ($m, $k) = @_; (shm_PFX_exists $m, $k, 'after') }, $m, $k);
    is(scalar(@l), 2, 'exists takes two terms');
    ok($l[0], '... the first is the answer');
    is($l[1], 'after', '... the second is the next list item');

    my ($k2, $x2) = (vkey($v, 2), vval($v, 2));
    @l = kw_run($v, q{ my ($m, $k, $x) = @_; (shm_PFX_put $m, $k, $x, 'tail1', 'tail2') }, $m, $k2, $x2);
    is(scalar(@l), 3, 'put takes three terms');
    ok($l[0], '... put returned true');
    is("@l[1,2]", 'tail1 tail2', '... the rest stays in the list');
    is($m->get($k2), $x2, '... and the right value was stored');

    # Parenthesised form.
    is(kw_run($v, q{ my ($m, $k) = @_; shm_PFX_get($m, $k) }, $m, $k), $x, 'shm_PFX_get($m, $k)');
    @l = kw_run($v, q{ my ($m, $k) = @_; (shm_PFX_get($m, $k), 'z') }, $m, $k);
    is_deeply(\@l, [ $x, 'z' ], 'parenthesised form inside a list');
    is(kw_run($v, q{ my ($m) = @_; shm_PFX_size($m) }, $m), 2, 'shm_PFX_size($m)');

    # Terms are full expressions; the map can be an element or a call.
    my %h = (map => $m);
    my @a = ($m);
    is(kw_run($v, q{ my ($h, $k) = @_; shm_PFX_get $h->{map}, $k }, \%h, $k), $x, 'map as $h->{map}');
    is(kw_run($v, q{ my ($a, $k) = @_; shm_PFX_get $a->[0], $k }, \@a, $k), $x, 'map as $a->[0]');
    is(kw_run($v, q{ my ($m, $k) = @_; my $f = sub { $m }; shm_PFX_get $f->(), $k }, $m, $k), $x, 'map as a call');
    if ($v->{int_key}) {
        my $base = $k - 1;
        is(kw_run($v, q{ my ($m, $b) = @_; shm_PFX_get $m, $b + 1 }, $m, $base), $x, 'key term is an expression ($b + 1)');
    }
    else {
        is(kw_run($v, q{ my ($m) = @_; shm_PFX_get $m, 'key' . ':' . 1 }, $m), $x, 'key term is an expression (concatenation)');
    }

    # Used inside conditions and as an operand.
    ok(kw_run($v, q{ my ($m, $k) = @_; (shm_PFX_exists $m, $k) ? 1 : 0 }, $m, $k), 'in a condition');
    is(kw_run($v, q{ my ($m) = @_; my $n = 0; $n = shm_PFX_size $m; $n * 10 }, $m), 20, 'assigned then used');

    # Scalar context of the list operations (decided for the glue).
    is(kw_run($v, q{ my ($m) = @_; my $n = shm_PFX_keys $m; $n }, $m), 2, 'keys in scalar context: count');
    is(kw_run($v, q{ my ($m) = @_; my $n = shm_PFX_values $m; $n }, $m), 2, 'values in scalar context: count');
    is(kw_run($v, q{ my ($m) = @_; my $n = shm_PFX_items $m; $n }, $m), 4, 'items in scalar context: element count');
    is(scalar($m->keys), 2, 'method keys in scalar context: count');
    is(scalar($m->values), 2, 'method values in scalar context: count');
    is(scalar($m->items), 4, 'method items in scalar context: element count');
    my %want = (do { no warnings; ($k => 1, $k2 => 1) });
    my $ek = kw_run($v, q{ my ($m) = @_; shm_PFX_iter_reset $m; my $e = shm_PFX_each $m; $e }, $m);
    ok(defined $ek && $want{$ek}, 'each in scalar context: a key');
    $m->iter_reset;
    my $mk = scalar $m->each;
    ok(defined $mk && $want{$mk}, 'method each in scalar context: a key');
    $m->iter_reset;

    # Wrong number of terms is a compile-time error.
    ok(!eval { kw_compile($v, 'my ($m) = @_; shm_PFX_get $m;'); 1 }, 'shm_PFX_get with one term does not compile');
    ok(!eval { kw_compile($v, 'my ($m) = @_; shm_PFX_put $m, 1;'); 1 }, 'shm_PFX_put with two terms does not compile');

    # Wrong number of method arguments croaks.
    usage_croaks_ok($v, sub { $m->get }, 'get', 'get with no key croaks with usage');
    usage_croaks_ok($v, sub { $m->put($k) }, 'put', 'put with no value croaks with usage');
    usage_croaks_ok($v, sub { $m->put($k, $x, 3) }, 'put', 'put with an extra argument croaks with usage');
    usage_croaks_ok($v, sub { $m->get_or_set($k) }, 'get_or_set', 'get_or_set with no default croaks with usage');
    usage_croaks_ok($v, sub { $m->size(1) }, 'size', 'size with an argument croaks with usage');
    usage_croaks_ok($v, sub { $m->keys(1) }, 'keys', 'keys with an argument croaks with usage');
    usage_croaks_ok($v, sub { $m->reserve }, 'reserve', 'reserve without a count croaks with usage');
    is($m->size, 2, 'nothing changed');

    # A keyword on something that is not a map of its class croaks, never
    # crashes (each attempt runs in a child so that a crash is reported).
    my $other = $v->{name} eq 'SS' ? variant('II') : variant('SS');
    eval "require $other->{class}; 1" or die $@;
    my $om = $other->{class}->new(tmp_path($other->{name}), 10);
    my @bad = (
        [ 'a string'             => 'not a map' ],
        [ 'undef'                => undef ],
        [ 'a hashref'            => {} ],
        [ 'a fake object'        => bless({}, $v->{class}) ],
        [ 'a fake scalar object' => bless(\(my $s = 12345), $v->{class}) ],
        [ "a $other->{name} map" => $om ],
    );
    for my $b (@bad) {
        my ($what, $thing) = @$b;
        for my $form ([ keyword => sub { kw_run($v, q{ shm_PFX_get $_[0], $_[1] }, $thing, $k) } ],
                      [ method  => sub { $v->{class}->can('get')->($thing, $k) } ]) {
            my ($st, $out) = run_in_child($form->[1], alarm => 20);
            is(describe_status($st), 'exit 0', "$form->[0] get on $what: no crash");
            like($out, qr/\Adied:.*Data::HashMap::Shared/s, "$form->[0] get on $what croaks naming the module");
        }
    }
    is($om->size, 0, "the $other->{name} map is untouched");
    is($m->size, 2, 'the map is untouched');
};

done_testing;
