#!perl
# Arguments that are plain lexicals are pushed by one op: the first
# lexical's op pushes the whole run and the others are skipped (Shared.xs,
# S_peep_kw). For the hot ops (get, exists, put, remove, incr, decr,
# incr_by) whose arguments are all plain lexicals, that op runs the keyword
# itself as well (S_pp_pad). This pins that it happens where it should,
# that it does not where it must not (a declaration, an expression between
# two lexicals), and that every way of writing arguments still passes the
# same values in the same order: closures, recursion, string eval, list
# context around the keyword, 3- and 4-argument ops, ops that return
# lists, branches that jump to the keyword, errors raised from it.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use B ();
use DHMSTest;
use Data::HashMap::Shared::II;
use Data::HashMap::Shared::SS;

# The op names of a sub's body, in execution order.
sub op_names {
    my ($code) = @_;
    my @names;
    my $op = B::svref_2object($code)->START;
    while ($op && $$op) {
        push @names, $op->name =~ /^dhms_/ ? 'custom' : $op->name;
        $op = $op->next;
    }
    return join ' ', @names;
}

my $m = Data::HashMap::Shared::II->new(undef, 1000);
my $s = Data::HashMap::Shared::SS->new(undef, 1000, 0, 3600);

# ---- where the run is formed ------------------------------------------
{
    my ($k, $v, $x) = (1, 2);
    is op_names(sub { $x = shm_ii_get $m, $k }), 'nextstate padsv custom leavesub',
        'get $m, $k: one op pushes both lexicals';
    is op_names(sub { shm_ii_put $m, $k, $v }), 'nextstate padsv custom leavesub',
        'put $m, $k, $v: one op pushes all three';
    is op_names(sub { shm_ii_drain $m, $k }), 'nextstate padsv custom leavesub',
        'drain $m, $n (not a hot op) the same';
    is op_names(sub { shm_ii_put $m, $k + 1, $v }),
        'nextstate padsv padsv const add padsv custom leavesub',
        'an expression between lexicals: no run across it';
    is op_names(sub { shm_ii_put $m, 5, $v }), 'nextstate padsv const padsv custom leavesub',
        'a constant between lexicals: no run across it';
    is op_names(sub { shm_ii_get $m, 3 }), 'nextstate padsv const custom leavesub',
        'one lexical: nothing to skip';
    like op_names(sub { shm_ii_get $m, my $y }), qr/^nextstate padsv padsv custom/,
        'a declaration (my $y) is not a plain lexical: it keeps its op';
}

# ---- the values arrive, in order ----------------------------------------
{
    my ($k, $v) = (10, 100);
    shm_ii_put $m, $k, $v;
    is shm_ii_get($m, $k), 100, 'put and get through runs of lexicals';
    my $x;
    $x = shm_ii_get $m, $k;
    is $x, 100, 'folded assignment with lexical arguments';
    $k = shm_ii_get $m, $k;
    is $k, 100, 'the target is also an argument';
    ok shm_ii_exists($m, my $ten = 10), 'a declaration as an argument';
    is shm_ii_incr($m, $ten), 101, 'incr with lexical arguments';
    my @list = (1, shm_ii_get($m, $ten), 2, shm_ii_get($m, $ten), 3);
    is "@list", '1 101 2 101 3', 'list context around the keyword keeps the stack in order';
    my ($n) = (3);
    shm_ii_put $m, $_, $_ * 2 for 20 .. 25;
    my @drained = shm_ii_drain $m, $n;
    is scalar(@drained), 6, 'drain $m, $n: a list result after a run';
}

# ---- closures, recursion, string eval, loops -----------------------------
{
    my $base = 1000;
    my $adder = sub { my ($k) = @_; shm_ii_put $m, $k, $base; shm_ii_get $m, $k };
    is $adder->(7), 1000, 'a closed-over lexical in a run';
    $base = 2000;
    is $adder->(8), 2000, 'the closure sees the lexical change';

    my $depth;
    $depth = sub {
        my ($n) = @_;
        shm_ii_put $m, $n, $n * 3;
        return $n == 0 ? 0 : $depth->($n - 1) + shm_ii_get $m, $n;
    };
    is $depth->(10), 3 * 55, 'recursion: each level reads its own pad';

    my $r = eval q{ my ($kk, $vv) = (31, 62); shm_ii_put $m, $kk, $vv; shm_ii_get $m, $kk };
    is $r, 62, 'string eval';

    my $sum = 0;
    for my $k (1 .. 50) { shm_ii_put $m, $k, $k }
    for my $k (1 .. 50) { my $x = shm_ii_get $m, $k; $sum += $x }
    is $sum, 1275, 'loop variables as arguments';

    shm_ii_put $m, $_, 1 for 501 .. 504;
    my $i = 500;
    my $n = 0;
    while ($i < 505) { $n += shm_ii_exists($m, $i) ? 1 : 0; $i++ }
    is $n, 4, 'a while loop around a run (keys 501..504 present, 500 is not)';
}

# ---- the whole keyword run by its first argument's op ----------------------
{
    my ($k, $v, $d, $none) = (900, 9, 5, 901);
    my $c = 0;
    shm_ii_put $m, $k, $v;
    is_deeply [ shm_ii_get $m, $k ], [9], 'get in list context';
    is_deeply [ shm_ii_get($m, $none), 1 ], [ undef, 1 ], 'a missing key: undef, and the stack stays in order';
    is scalar(shm_ii_exists $m, $k), 1, 'exists';
    is shm_ii_incr($m, $k), 10, 'incr';
    is shm_ii_decr($m, $k), 9, 'decr';
    is shm_ii_incr_by($m, $k, $d), 14, 'incr_by $m, $k, $d';
    my $got = $c ? 0 : shm_ii_get $m, $k;
    is $got, 14, 'entered from a branch (op_other)';
    $got = undef;
    $got //= shm_ii_get $m, $k;
    is $got, 14, 'entered from //=';
    my $last = sub { my ($mm, $kk) = @_; shm_ii_get $mm, $kk };
    is_deeply [ $last->($m, $k) ], [14], 'the last statement of a sub: the caller\'s context';
    is scalar($last->($m, $k)), 14, '... scalar';
    ok shm_ii_remove($m, $k), 'remove';
    ok !shm_ii_exists($m, $k), 'removed';

    my $bad = 'not a number';
    my $line = __LINE__ + 1;
    ok !eval { shm_ii_get $m, $bad; 1 }, 'a bad key croaks';
    like $@, qr/is not an integer at \S+ line $line\.$/, '... with the statement\'s line';
    my $notmap = {};
    ok !eval { shm_ii_put $notmap, $k, $v; 1 }, 'a map that is not a map croaks';
    like $@, qr/Data::HashMap::Shared/, '... and says so';
    my $ss = Data::HashMap::Shared::SS->new(undef, 100);
    ok !eval { shm_ii_get $ss, $k; 1 }, 'a map of another variant croaks';

    my ($sk, $sv) = ('k', 'v' x 100);
    shm_ss_put $s, $sk, $sv;
    my $x = 'short';
    $x = shm_ss_get $s, $sk;
    is $x, $sv, 'a string grows into the target';
    my @r = map { shm_ss_get $s, $sk } 1 .. 3;
    is scalar(@r), 3, 'in a map block';
}

# ---- four arguments, strings ----------------------------------------------
{
    my ($k, $v, $ttl) = ('key:1', 'value one', 60);
    shm_ss_put_ttl $s, $k, $v, $ttl;
    is shm_ss_get($s, $k), 'value one', 'put_ttl $m, $k, $v, $ttl';
    cmp_ok shm_ss_ttl_remaining($s, $k), '>', 50, 'its lifetime arrived too';
    my ($want, $new) = ('value one', 'value two');
    ok shm_ss_cas($s, $k, $want, $new), 'cas $m, $k, $want, $new';
    is shm_ss_get($s, $k), 'value two', 'the cas took effect';
    $k = shm_ss_get $s, $k;
    is $k, 'value two', 'a string target that is also an argument';
}

done_testing;
