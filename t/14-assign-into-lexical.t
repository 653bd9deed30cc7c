#!perl
# `$lexical = shm_<prefix>_<op> ...` is folded into the keyword's op (as
# perl folds it into its own ops, OPpTARGET_MY): the op stores its result
# straight into the lexical, and the sassign goes. This pins that the fold
# happens and that the assignment means exactly what it meant before:
# every variant, every op that folds (get, take, get_or_set, ttl_remaining,
# swap, cas_take), missing keys, a lexical that is also an argument, a
# lexical holding a reference, a tied or read-only lexical, `my $x = ...`
# (not folded), and the value of the assignment itself.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use B ();
use Scalar::Util qw(weaken);
use DHMSTest;

# The op names of a sub's body, in execution order.
sub op_names {
    my ($code) = @_;
    my @names;
    my $op = B::svref_2object($code)->START;
    while ($op && $$op) {
        push @names, $op->name eq 'custom' ? 'custom' : $op->name;
        $op = $op->next;
    }
    return @names;
}

{
    package Counting;
    sub TIESCALAR { my ($c, $v) = @_; bless { v => $v, stores => 0 }, $c }
    sub FETCH     { $_[0]{v} }
    sub STORE     { $_[0]{stores}++; $_[0]{v} = $_[1] }
}

for_each_variant {
    my ($v) = @_;
    my $m = $v->{class}->new(undef, 100, 0, 3600);
    my ($k1, $k2, $missing) = map { vkey($v, $_) } 1, 2, 9;
    my ($v1, $v2) = map { vval($v, $_) } 1, 2;
    $m->put($k1, $v1);
    $m->put_ttl($k2, $v2, 100);

    my $get = kw_compile($v, 'my ($m, $k) = @_; my $x; $x = shm_PFX_get $m, $k; return $x');
    ok(!grep({ $_ eq 'sassign' } op_names($get)), 'the assignment is folded into the op (no sassign)');
    is($get->($m, $k1), $v1, 'get into a lexical');
    is($get->($m, $missing), undef, 'a missing key makes the lexical undef');

    my $mine = kw_compile($v, 'my ($m, $k) = @_; my $x = shm_PFX_get $m, $k; return $x');
    ok(grep({ $_ eq 'sassign' || $_ eq 'padsv' } op_names($mine)), 'my $x = ... is not folded (the declaration runs)');
    is($mine->($m, $k1), $v1, 'my $x = get');

    # the value of the assignment is the lexical
    my $value = kw_compile($v, 'my ($m, $k) = @_; my $x; my $r = ($x = shm_PFX_get $m, $k) ? "true" : "false"; return ($r, $x)');
    is_deeply([ $value->($m, $k1) ], [ (defined $v1 && $v1 ne '' && $v1 ne '0' ? 'true' : 'false'), $v1 ],
        'the assignment has the value stored');

    # a lexical that is also the key: read before it is overwritten
    my $alias = kw_compile($v, 'my ($m, $k) = @_; $k = shm_PFX_get $m, $k; return $k');
    is($alias->($m, $k1), $v1, '$k = get $m, $k reads the key first');

    # a lexical holding a reference: the referent is released
    my $ref = kw_compile($v, 'my ($m, $k, $obj) = @_; my $x = $obj; $_[2] = undef; $x = shm_PFX_get $m, $k; return $x');
    my $obj = {};
    my $weak = $obj;
    weaken($weak);
    is($ref->($m, $k1, $obj), $v1, 'a reference in the lexical is replaced');
    is($weak, undef, '... and released');

    # a tied lexical gets one STORE; a read-only one croaks, unchanged
    my $tied = kw_compile($v, 'my ($m, $k) = @_; tie my $x, "Counting", "old"; $x = shm_PFX_get $m, $k; return (tied($x)->{stores}, tied($x)->{v})');
    is_deeply([ $tied->($m, $k1) ], [ 1, $v1 ], 'a tied lexical: one STORE with the value');
    my $ro = kw_compile($v, 'my ($m, $k) = @_; my $x = "old"; Internals::SvREADONLY($x, 1); my $ok = eval { $x = shm_PFX_get $m, $k; 1 }; return ($ok ? "stored" : $@, $x)');
    my ($err, $after) = $ro->($m, $k1);
    like($err, qr/read-only/, 'a read-only lexical croaks');
    is($after, 'old', '... and keeps its value');

    # every other op that folds
    my %ops = (
        take          => [ 'my ($m, $k) = @_; my $x; $x = shm_PFX_take $m, $k; return $x', $v1 ],
        get_or_set    => [ 'my ($m, $k, $d) = @_; my $x; $x = shm_PFX_get_or_set $m, $k, $d; return $x', $v2 ],
        ttl_remaining => [ 'my ($m, $k) = @_; my $x; $x = shm_PFX_ttl_remaining $m, $k; return $x' ],
        swap          => [ 'my ($m, $k, $d) = @_; my $x; $x = shm_PFX_swap $m, $k, $d; return $x', $v2 ],
        cas_take      => [ 'my ($m, $k, $d) = @_; my $x; $x = shm_PFX_cas_take $m, $k, $d; return $x', $v1 ],
    );
    $m->put($k1, $v1);
    is(kw_compile($v, $ops{take}[0])->($m, $k1), $v1, 'take into a lexical');
    ok(!$m->exists($k1), '... it took');
    is(kw_compile($v, $ops{get_or_set}[0])->($m, $k1, $v2), $v2, 'get_or_set into a lexical (stored the default)');
    my $left = kw_compile($v, $ops{ttl_remaining}[0])->($m, $k2);
    ok($left > 0 && $left <= 100, "ttl_remaining into a lexical ($left)");
    is(kw_compile($v, $ops{swap}[0])->($m, $k1, $v1), $v2, 'swap into a lexical: the old value');
    is(kw_compile($v, $ops{cas_take}[0])->($m, $k1, $v1), $v1, 'cas_take into a lexical');
    ok(!grep({ $_ eq 'sassign' } op_names(kw_compile($v, $ops{$_}[0]))), "$_: folded") for sort keys %ops;
};

done_testing;
