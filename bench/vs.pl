#!/usr/bin/perl
# bench/vs.pl - Data::HashMap::Shared beside a plain Perl hash, in one run.
#
#   perl -Mblib bench/vs.pl [--smoke] [--time SEC] [N] [section ...]
#
# N (default 25000) is the number of keys. A section is an operation (get,
# put, insert, remove, incr, cross), a variant (ii, is, ss, si) or one
# workload ("ss get"); with none, everything runs. --smoke, or N <= 5000,
# makes every measurement short: CI runs it so that this script cannot rot.
#
# Every single-process row runs the same loop twice, once with a keyword of
# the map and once with a plain Perl hash, over the same keys with the same
# values, and reports the best pass of each side in operations per second.
# The ratio (ours / Perl hash) is what DESIGN.md's budgets are written in:
# machines are shared and noisy, the ratio measured in one run is not.
use strict;
use warnings;
use File::Temp ();
use Getopt::Long qw(GetOptions);
use List::Util qw(max sum);
use POSIX ();
use Time::HiRes qw(CLOCK_MONOTONIC clock_gettime);

my %VARIANT = (    # key and value kinds of the variants measured here
    II => { key => 'int', value => 'int' },
    IS => { key => 'int', value => 'str' },
    SS => { key => 'str', value => 'str' },
    SI => { key => 'str', value => 'int' },
);
my @VARIANTS = qw(II IS SS SI);

# One row per operation: the statement run once per key on each side, how
# many operations it counts, and the state of the map and the hash before
# every timed pass: 'full' (filled once, the pass keeps it full), 'refill'
# (the pass empties it; refilled untimed) or 'empty' (cleared untimed).
# In the statements P is the keyword prefix (ii, ss, ...). 'remove+put' is
# DESIGN.md's "remove then put": it keeps the map at its size.
my @OPS = (
    { op => 'get',        ops => 1, state => 'full',
      ours => '$x = shm_P_get $m, $k',                    perl => '$x = $h{$k}' },
    { op => 'put',        ops => 1, state => 'full',
      ours => 'shm_P_put $m, $k, $v',                     perl => '$h{$k} = $v' },
    { op => 'insert',     ops => 1, state => 'empty',
      ours => 'shm_P_put $m, $k, $v',                     perl => '$h{$k} = $v' },
    { op => 'remove',     ops => 1, state => 'refill',
      ours => 'shm_P_remove $m, $k',                      perl => 'delete $h{$k}' },
    { op => 'remove+put', ops => 2, state => 'full',
      ours => 'shm_P_remove $m, $k; shm_P_put $m, $k, $v', perl => 'delete $h{$k}; $h{$k} = $v' },
    { op => 'incr',       ops => 1, state => 'full', int_values => 1,
      ours => 'shm_P_incr $m, $k',                        perl => '$h{$k}++' },
);

# DESIGN.md, "Budgets": minimum ratio ours / Perl hash at N = 25,000.
my %BUDGET = (
    'II get' => 1.9,  'IS get' => 1.1, 'SS get' => 0.85,
    'II put' => 1.2,  'IS put' => 1.1, 'SS put' => 1.0,
    'SS remove+put' => 1.1,
    'II incr' => 1.05, 'SI incr' => 0.65,
);

# Two processes on one SS map. The reference is the C implementation's
# figure times 1.3 (DESIGN.md): absolute, so it only means something on the
# machine that measured it.
my @CROSS = (
    { name => 'reads: 1 writer + 1 reader', roles => [qw(write read)],   ref => 1.3 * 1.8e6 },
    { name => 'writes: both write',         roles => [qw(write write)],  ref => 1.3 * 3.2e6 },
    { name => 'mixed: both 50/50',          roles => [qw(mixed mixed)],  ref => 1.3 * 4.7e6 },
    { name => 'both read',                  roles => [qw(read read)],    ref => undef },
);
my %ROLE = (    # statement per key, operations it counts
    read  => [ '$x = shm_P_get $m, $k', 1 ],
    write => [ 'shm_P_put $m, $k, $v', 1 ],
    mixed => [ '$x = shm_P_get $m, $k; shm_P_put $m, $k, $v', 2 ],
);

my $N = 25_000;    # number of keys (set from the command line below)

# LRU and TTL maps beside the plain map (SS, same keys, same loop), in one
# run. `map` is the policy map's constructor arguments after max_entries
# (max_size, ttl); `fill` how full the maps are before each timed pass; the
# budget (DESIGN.md) applies to reads: within 10% of the plain map.
my @POLICY = (
    { name => 'LRU fill',      args => sub { ($N, 0) },        fill => 'empty',
      stmt => 'shm_P_put $m, $k, $v' },
    { name => 'LRU lookup',    args => sub { ($N, 0) },        fill => 'full',
      stmt => '$x = shm_P_get $m, $k', budget => 0.9 },
    { name => 'LRU evicting',  args => sub { (int($N / 2), 0) }, fill => 'empty',
      stmt => 'shm_P_put $m, $k, $v' },
    { name => 'TTL insert',    args => sub { (0, 3600) },      fill => 'empty',
      stmt => 'shm_P_put $m, $k, $v' },
    { name => 'TTL lookup',    args => sub { (0, 3600) },      fill => 'full',
      stmt => '$x = shm_P_get $m, $k', budget => 0.9 },
    { name => 'LRU+TTL lookup', args => sub { ($N, 3600) },    fill => 'full',
      stmt => '$x = shm_P_get $m, $k', budget => 0.9 },
);

# ---- options -------------------------------------------------------------

my %opt = (time => undef, smoke => 0);
GetOptions(\%opt, 'smoke', 'time=f', 'help') or usage(2);
usage(0) if $opt{help};
if (@ARGV && $ARGV[0] =~ /^[0-9][0-9_]*$/) {
    ($N = shift @ARGV) =~ tr/_//d;
}
elsif ($opt{smoke}) {
    $N = 2_000;
}
die "N must be at least 1\n" if $N < 1;
my $smoke = $opt{smoke} || $N <= 5_000;
my $MIN_TIME   = $opt{time} // ($smoke ? 0.01 : 0.3);    # timed seconds per side
my $MIN_PASSES = $smoke ? 2 : 5;
my $CROSS_TIME = $opt{time} // ($smoke ? 0.1 : 1.0);     # seconds per cross run
my $CROSS_RUNS = $smoke ? 1 : 3;                          # best of

my @sections = map { lc } @ARGV;
my %known = map { $_ => 1 } 'cross', 'remove', 'lru', 'ttl', (map { $_->{op} } @OPS), (map { lc } @VARIANTS),
    map { my $v = $_; map { lc "$v $_->{op}" } @OPS } @VARIANTS;
$known{$_} or usage(2, "unknown section '$_'") for @sections;

sub usage {
    my ($status, $msg) = @_;
    print STDERR "$msg\n" if $msg;
    print STDERR <<"USAGE";
usage: perl -Mblib $0 [--smoke] [--time SEC] [N] [section ...]
  N        number of keys (default 25000; with --smoke 2000)
  section  an operation (@{[ map { $_->{op} } @OPS ]} cross lru ttl),
           a variant (@{[ map { lc } @VARIANTS ]}) or a workload ("ss get");
           "remove" selects remove and remove+put; default: all
  --smoke  short measurements (implied by N <= 5000): a run takes seconds
  --time   seconds each side is timed for (default 0.3; cross: 1 per run)
USAGE
    exit $status;
}

sub selected {
    my ($variant, $op) = @_;
    return 1 unless @sections;
    return 0 if grep { $_ eq 'lru' || $_ eq 'ttl' } @sections and !grep { $_ eq lc $variant || $_ eq $op } @sections;
    for my $s (@sections) {
        return 1 if $s eq lc $variant || $s eq lc "$variant $op" || $s eq $op;
        return 1 if $s eq 'remove' && $op =~ /^remove/;
    }
    return 0;
}

# ---- data ----------------------------------------------------------------

sub keys_for { $VARIANT{ $_[0] }{key} eq 'int' ? [ 1 .. $N ] : [ map { "key:$_" } 1 .. $N ] }

# The value stored for the i-th key when a map or hash is filled (~20 bytes
# for strings), and the value every put stores.
sub fill_value { $VARIANT{ $_[0] }{value} eq 'int' ? $_[1] : sprintf 'val:%016d', $_[1] }
sub put_value  { $VARIANT{ $_[0] }{value} eq 'int' ? 7_777_777 : 'value-of-20-bytes-ok' }

for my $v ('', map { "::$_" } @VARIANTS) {
    my $class = "Data::HashMap::Shared$v";
    next if eval "require $class; 1";
    die "cannot load $class: $@"
      . "Build the module first (perl Makefile.PL && make) and run: perl -Mblib $0\n";
}

# Signals end the run through exit, so that the maps are removed.
my @SIGNALS = qw(HUP INT PIPE TERM);
$SIG{$_} = sub { exit 1 } for @SIGNALS;
my $DIR = File::Temp::tempdir('dhms-bench-XXXXXX', CLEANUP => 1,
    -d '/dev/shm' && -w _ ? (DIR => '/dev/shm') : (TMPDIR => 1));
my $map_seq = 0;

sub new_map {
    my ($variant) = @_;
    my $path = sprintf '%s/%s-%d.map', $DIR, $variant, ++$map_seq;
    my $map = "Data::HashMap::Shared::$variant"->new($path, 2 * $N);
    return ($map, $path);
}

# ---- loops ---------------------------------------------------------------

# Keywords are compiled, so every loop is generated from its statement. Both
# sides get the same closure shape: lexical $m / %h / $x / $v, and one
# `for my $k (@keys) { STATEMENT }` per pass.
my $LOOP = <<'PERL';
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

my %loop_cache;
sub loop_maker {    # -> sub ($map, \%hash, \@keys, $value) returning a pass
    my ($variant, $stmt) = @_;
    (my $src = $LOOP) =~ s/%V%/$variant/;
    $stmt =~ s/\bshm_P_/'shm_' . lc($variant) . '_'/ge;
    $src =~ s/%STMT%/$stmt/;
    return $loop_cache{$src} //= eval($src) || die "compiling <<$stmt>>: $@";
}

sub now { clock_gettime(CLOCK_MONOTONIC) }
sub cpu { my ($user, $system) = times; $user + $system }

# Best pass of each side, passes alternating between the sides, until each
# side has been timed for $MIN_TIME and run $MIN_PASSES times.
sub best_of {
    my (%side) = @_;    # name => { run => sub, prep => sub|undef }
    my (%best, %spent);
    for (my $pass = 0; ; $pass++) {
        last if $pass >= $MIN_PASSES && !grep { $spent{$_} < $MIN_TIME } keys %side;
        for my $name ($pass % 2 ? reverse sort keys %side : sort keys %side) {
            my $s = $side{$name};
            $s->{prep}->() if $s->{prep};
            my $t0 = now();
            $s->{run}->();
            my $dt = now() - $t0;
            $spent{$name} += $dt;
            $best{$name} = $dt if !defined $best{$name} || $dt < $best{$name};
        }
    }
    return \%best;
}

sub run_workload {
    my ($variant, $w) = @_;
    my ($map, $path) = new_map($variant);
    my (%hash, %fill);
    my $keys = keys_for($variant);
    @fill{@$keys} = map { fill_value($variant, $_) } 1 .. $N;
    my %prep = (
        ours => { refill => sub { $map->put($_, $fill{$_}) for @$keys },
                  empty  => sub { $map->clear } },
        perl => { refill => sub { %hash = %fill },
                  empty  => sub { %hash = () } },
    );
    my %side;
    for my $name (qw(ours perl)) {
        $prep{$name}{refill}->() if $w->{state} ne 'empty';    # initial state
        $side{$name} = {
            run  => loop_maker($variant, $w->{$name})->($map, \%hash, $keys, put_value($variant)),
            prep => $prep{$name}{ $w->{state} },
        };
    }
    my $best = best_of(%side);
    undef $map;
    unlink $path;
    my %rate = map { $_ => $N * $w->{ops} / max($best->{$_}, 1e-9) } keys %$best;
    return ($rate{perl}, $rate{ours});
}

# ---- LRU and TTL beside the plain map --------------------------------------

sub run_policy {
    my ($p) = @_;
    my $keys = keys_for('SS');
    my %maps;
    for my $side (qw(plain policy)) {
        my $path = sprintf '%s/policy-%d.map', $DIR, ++$map_seq;
        my @args = $side eq 'plain' ? () : $p->{args}->();
        $maps{$side} = [ Data::HashMap::Shared::SS->new($path, 2 * $N, @args), $path ];
    }
    my %side;
    for my $name (keys %maps) {
        my $m = $maps{$name}[0];
        my $fill = sub { $m->put($keys->[$_ - 1], fill_value('SS', $_)) for 1 .. $N };
        $fill->() if $p->{fill} eq 'full';
        $side{$name} = {
            run  => loop_maker('SS', $p->{stmt})->($m, {}, $keys, put_value('SS')),
            prep => $p->{fill} eq 'empty' ? sub { $m->clear } : undef,
        };
    }
    my $best = best_of(%side);
    unlink map { $_->[1] } values %maps;
    return map { $N / max($best->{$_}, 1e-9) } qw(plain policy);
}

# flush_expired of N expired entries beside removing N entries one by one
# from the plain map (one measurement each: expiry needs a second to pass).
sub run_flush {
    my $keys = keys_for('SS');
    my $plain = Data::HashMap::Shared::SS->new("$DIR/flush-plain.map", 2 * $N);
    my $ttl   = Data::HashMap::Shared::SS->new("$DIR/flush-ttl.map", 2 * $N, 0, 3600);
    $plain->put($_, 'v' x 20) for @$keys;
    $ttl->put_ttl($_, 'v' x 20, 1) for @$keys;
    my $remove = loop_maker('SS', 'shm_P_remove $m, $k')->($plain, {}, $keys, undef);
    my $t0 = now();
    $remove->();
    my $t_plain = now() - $t0;
    sleep 2;
    $t0 = now();
    my $n = $ttl->flush_expired;
    my $t_ttl = now() - $t0;
    die "flush_expired removed $n of $N\n" unless $n == $N;
    unlink "$DIR/flush-plain.map", "$DIR/flush-ttl.map";
    return ($N / max($t_plain, 1e-9), $N / max($t_ttl, 1e-9));
}

sub policy_section {
    my @want = grep { $_ eq 'lru' || $_ eq 'ttl' } @sections;
    my @rows = grep { my $n = lc $_->{name}; !@want || grep { $n =~ /\b$_\b/ } @want } @POLICY;
    printf "\n%-16s %17s %15s %7s  %s\n", 'policy (SS)', 'plain map ops/s', 'policy ops/s', 'ratio', 'budget';
    for my $p (@rows) {
        my ($plain, $policy) = run_policy($p);
        my $ratio = $policy / $plain;
        printf "%-16s %17s %15s %7.3f  %s%s\n", $p->{name}, commify($plain), commify($policy), $ratio,
            $p->{budget} ? sprintf('>= %.2f', $p->{budget}) : '',
            $p->{budget} && $ratio < $p->{budget} ? '  BELOW' : '';
    }
    if (!@want || grep { $_ eq 'ttl' } @want) {
        my ($plain, $flush) = run_flush();
        printf "%-16s %17s %15s %7.3f  %s\n", 'TTL flush', commify($plain), commify($flush), $flush / $plain,
            '(plain: remove each key)';
    }
    print "  LRU fill: max_size N; LRU evicting: max_size N/2, so half the inserts evict;\n",
          "  TTL: default 3600 s. Same keys and loop on both sides.\n";
}

# ---- cross-process -------------------------------------------------------

# Both children attach to the map, report "ready", wait on a pipe barrier
# (the parent closes it once both are ready), run their role for
# $CROSS_TIME and report "ops seconds". Child i starts at key i*N/2, so the
# two do not chase each other. Returns total ops/s, the share of a CPU the
# children got on average (< 100% means the machine was busy), the total
# per CPU-second of each child (what two idle CPUs would give), and per-child
# ops/s.
sub run_cross {
    my ($c, $path, $keys) = @_;
    pipe(my $gate_r, my $gate_w) or die "pipe: $!";
    pipe(my $rep_r,  my $rep_w)  or die "pipe: $!";
    my @pids;
    for my $i (0 .. $#{ $c->{roles} }) {
        my ($stmt, $ops) = @{ $ROLE{ $c->{roles}[$i] } };
        my $pid = fork // die "fork: $!";
        if ($pid) { push @pids, $pid; next }
        # child
        $SIG{$_} = 'DEFAULT' for @SIGNALS;
        alarm(int($CROSS_TIME) + 60);
        close $gate_w;
        close $rep_r;
        my $ok = eval {
            my $map  = Data::HashMap::Shared::SS->new($path, 2 * $N);
            my $from = int(@$keys * $i / @{ $c->{roles} });    # apart, same order
            my @mine = @$keys[ $from .. $#$keys, 0 .. $from - 1 ];
            my $pass = loop_maker('SS', $stmt)->($map, {}, \@mine, put_value('SS'));
            syswrite $rep_w, "ready\n";
            sysread $gate_r, my $buf, 1;    # EOF when the parent opens the gate
            my ($passes, $t0, $cpu0) = (0, now(), cpu());
            my $dt;
            do { $pass->(); $passes++ } while (($dt = now() - $t0) < $CROSS_TIME);
            syswrite $rep_w, sprintf "%d %d %.6f %.6f\n", $i, $passes * @mine * $ops, $dt, cpu() - $cpu0;
            1;
        };
        syswrite $rep_w, "error $i: $@" unless $ok;
        POSIX::_exit($ok ? 0 : 1);
    }
    close $gate_r;
    close $rep_w;
    my ($ready, $cpu, $full, @rate, @errors) = (0, 0, 0);
    while (my $line = <$rep_r>) {
        if    ($line eq "ready\n") { close $gate_w if ++$ready == @pids }
        elsif ($line =~ /^(\d+) (\d+) ([0-9.]+) ([0-9.]+)$/) {
            $rate[$1] = $2 / max($3, 1e-9);
            $cpu += $4 / max($3, 1e-9) / @pids;
            $full += $2 / max($4, 0.01);
        }
        else { push @errors, $line }
    }
    close $gate_w if $ready < @pids;
    for my $pid (@pids) {
        waitpid $pid, 0;
        push @errors, "child $pid: exit status $?\n" if $?;
    }
    die "cross '$c->{name}' failed:\n", @errors if @errors;
    return (sum(@rate), $cpu, $full, @rate);
}

sub cross_section {
    my ($map, $path) = new_map('SS');
    my $keys = keys_for('SS');
    $map->put($keys->[$_ - 1], fill_value('SS', $_)) for 1 .. $N;
    printf "\n%-27s %12s %4s %12s  %-16s %s\n", 'cross (2 processes, SS)', 'total ops/s', 'cpu', 'at 100% cpu', 'per process', 'reference';
    for my $c (@CROSS) {
        my ($total, $cpu, $full, @each) = @{ (sort { $b->[0] <=> $a->[0] }
                                 map { [ run_cross($c, $path, $keys) ] } 1 .. $CROSS_RUNS)[0] };
        my $per = join ' ', map { substr($c->{roles}[$_], 0, 1) . ' ' . human($each[$_]) } 0 .. $#each;
        my $ref = defined $c->{ref} ? sprintf('%s%s', human($c->{ref}), $total < $c->{ref} ? ' ~below' : '') : '-';
        printf "%-27s %12s %3.0f%% %12s  %-16s %s\n", $c->{name}, commify($total), 100 * $cpu, commify($full), $per, $ref;
    }
    undef $map;
    unlink $path;
    print "  best of $CROSS_RUNS run(s) of ${CROSS_TIME}s. cpu: the share of a CPU each child got (< 100%: a busy\n",
          "  machine); at 100% cpu: ops per CPU-second of each child, summed. per process: r(ead),\n",
          "  w(rite), m(ixed). reference: the C implementation's figure x 1.3 (DESIGN.md), absolute,\n",
          "  so only comparable on the machine that measured it; ~below compares the total.\n";
}

# ---- report --------------------------------------------------------------

sub commify { my $n = sprintf '%.0f', shift; 1 while $n =~ s/^(\d+)(\d{3})/$1,$2/; $n }
sub human   { my $n = shift; $n >= 1e6 ? sprintf('%.2fM', $n / 1e6) : sprintf('%.0fk', $n / 1e3) }

sub cpu_model {
    open my $fh, '<', '/proc/cpuinfo' or return 'unknown cpu';
    while (<$fh>) { return $1 if /^model name\s*:\s*(.*)/ }
    return 'unknown cpu';
}

my $cpus = do { open my $fh, '<', '/proc/cpuinfo'; $fh ? scalar grep { /^processor\s*:/ } <$fh> : 0 };
printf "Data::HashMap::Shared %s vs a Perl hash: N = %s keys, perl %s, %s (%d cpus)\n",
    $Data::HashMap::Shared::VERSION // '?', commify($N), $^V, cpu_model(), $cpus;
my $load = do { open my $fh, '<', '/proc/loadavg'; $fh ? (split ' ', <$fh>)[0] : '?' };
printf "best pass of each side; each side timed >= %ss and >= %d passes; maps in %s; load %s%s\n",
    $MIN_TIME, $MIN_PASSES, $DIR =~ s{/[^/]*$}{}r, $load, $smoke ? '; SMOKE RUN: figures are not meaningful' : '';
my @rows = grep { selected(@$_[0, 1]) && !($_->[2]{int_values} && $VARIANT{ $_->[0] }{value} ne 'int') }
    map { my $w = $_; map { [ $_, $w->{op}, $w ] } @VARIANTS } @OPS;
printf "\n%-16s %17s %15s %7s  %s\n", 'workload', 'Perl hash ops/s', 'Shared ops/s', 'ratio', 'budget' if @rows;
my @below;
for my $row (@rows) {
    my ($variant, $op, $w) = @$row;
    my $name = "$variant $op";
    my ($perl, $ours) = run_workload($variant, $w);
    my $ratio  = $ours / $perl;
    my $budget = $BUDGET{$name};
    my $mark   = defined $budget && $ratio < $budget ? '  BELOW' : '';
    push @below, $name if $mark;
    printf "%-16s %17s %15s %7.3f  %s%s\n", $name, commify($perl), commify($ours), $ratio,
        defined $budget ? sprintf('>= %.2f', $budget) : '', $mark;
}
print "\nbelow budget: ", join(', ', @below), "\n" if @below;
policy_section() if !@sections || grep { $_ eq 'lru' || $_ eq 'ttl' } @sections;
cross_section() if !@sections || grep { $_ eq 'cross' } @sections;
