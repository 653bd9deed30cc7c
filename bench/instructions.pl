#!/usr/bin/perl
# bench/instructions.pl - instructions per operation, counted by callgrind:
# Data::HashMap::Shared's keywords beside a plain Perl hash.
#
#   perl -Mblib bench/instructions.pl [--quick] [--cache] [--keys N] [--keep DIR] [workload ...]
#
# A workload is "II get", "II put", "II incr", "SS get", "SS put", "IS put"
# or "SI incr" (a variant or an operation selects several: "ss", "get"); with
# none, all of them. For each workload and each side (the keyword of the
# map, a plain Perl hash) the same loop as bench/vs.pl's,
#
#     for my $k (@keys) { STATEMENT }
#
# runs under `valgrind --tool=callgrind`: one untimed pass over the N keys,
# then P1 = 1 pass, then P2 = 2 passes, callgrind's counters dumped between
# them (see "the counted runs" below). The instructions (Ir) of the P2
# passes minus those of the P1 passes, divided by (P2 - P1) * N, are the
# instructions of one loop iteration: start-up, loading the module, building
# the map or hash and the dumps themselves cancel out. The rows "loop alone"
# count the loop with an empty body. All the map's loops run in one
# callgrind process, the Perl hash's in another, the loops alone in a third,
# at once.
#
# Why: this machine has no hardware counters, and its shared vCPUs make
# times move by 30% and more between runs; instruction counts do not move
# (the perl hash seed is fixed with PERL_HASH_SEED=0, and every workload
# attaches to a byte-for-byte copy of one map file, so the probe sequences
# are the same; reruns agree within 0.2, within 2 with --quick). DESIGN.md ("Benchmarks") keeps the
# table, so that a change that adds instructions shows without timing noise.
# Instructions are not time: a cache miss costs as much as a hundred of
# them, and the kernel's work (page faults) is not counted. --cache adds
# callgrind's simulated cache misses (reads and writes) per iteration: D1
# (32 KB, 8-way) and LL set to 1 MB (16-way), the size of this machine's L2,
# so "LL" misses are accesses that leave the core's private caches.
#
#   --quick   N = 2,000 keys: about 10 s on 2 cpus instead of about 25 s;
#             the map's counts of string keys are lower (most keys are 8
#             bytes long, not 9: SS get 977, not 1019)
#   --cache   also simulate the caches (slower)
#   --keys N  number of keys (default 25,000, as the budgets)
#   --keep DIR  keep in DIR each loop's profile of its 2 passes, named
#             SIDE-WORKLOAD.callgrind: `callgrind_annotate --threshold=100
#             FILE` shows which functions the instructions are spent in
#
# Without valgrind it prints why and exits 0 (apt-get install valgrind).
use strict;
use warnings;
use File::Copy ();
use File::Temp ();
use Getopt::Long qw(GetOptions);
use POSIX ();
use FindBin ();
use lib "$FindBin::Bin/lib";
use DHMSBench qw(keys_for fill_value put_value loop_source);

# The workloads: the statement run once per key on each side (P: the
# variant's keyword prefix). Values as bench/vs.pl's: the i-th key holds i
# (integer values) or a 20-byte string, and put stores a value of the same
# kind and length.
my @WORK = (
    { name => 'II get',  ours => '$x = shm_P_get $m, $k', perl => '$x = $h{$k}' },
    { name => 'II put',  ours => 'shm_P_put $m, $k, $v',  perl => '$h{$k} = $v' },
    { name => 'II incr', ours => 'shm_P_incr $m, $k',     perl => '$h{$k}++' },
    { name => 'SS get',  ours => '$x = shm_P_get $m, $k', perl => '$x = $h{$k}' },
    { name => 'SS put',  ours => 'shm_P_put $m, $k, $v',  perl => '$h{$k} = $v' },
    { name => 'IS put',  ours => 'shm_P_put $m, $k, $v',  perl => '$h{$k} = $v' },
    { name => 'SI incr', ours => 'shm_P_incr $m, $k',     perl => '$h{$k}++' },
);
# The keys and values of each variant and the loop are bench/vs.pl's own
# (bench/lib/DHMSBench.pm): the instructions counted are those of the loop
# vs.pl times.
my @MEASURED = qw(II IS SI SS);    # the variants measured here

my @PASSES = (1, 2);    # passes of the two counted runs of each loop

# ---- the counted runs (children, under callgrind) -------------------------

# Each child runs under `valgrind --tool=callgrind --dump-before=Perl_pp_getppid`:
# every call of getppid (a marker: nothing else here calls it) writes the
# instructions counted since the previous one to a file of its own.
#
# --child SIDE N DIR WORKLOAD...: for each workload, attach to its copy of
# the map file (side ours) or fill a Perl hash in key order, as vs.pl does
# (side perl), or take no store (side loop: the loop with an empty body);
# then run one untimed pass, and P1 then P2 passes, each closed by a marker.
if (@ARGV && $ARGV[0] eq '--child') {
    my (undef, $side, $n, $dir, @names) = @ARGV;
    my %work = map { $_->{name} => $_ } @WORK;
    my @loops;
    for my $name (@names) {
        my ($variant) = split ' ', $name;
        my $stmt = $side eq 'loop' ? '' : $work{$name}{$side} =~ s/\bshm_P_/'shm_' . lc($variant) . '_'/ger;
        my $loop = eval loop_source($variant, $stmt) or die "compiling <<$stmt>>: $@";
        my $keys = keys_for($variant, $n);
        my ($m, %h);
        if ($side eq 'ours') { $m = "Data::HashMap::Shared::$variant"->new(map_path($dir, $name), 2 * $n) }
        else                 { $h{ $keys->[ $_ - 1 ] } = fill_value($variant, $_) for 1 .. $n }
        push @loops, [ $loop->($m, \%h, $keys, put_value($variant)), $m, \%h ];
    }
    mark();    # the end of start-up and set-up
    for my $l (@loops) {
        my $pass = $l->[0];
        $pass->();
        mark();
        $pass->() for 1 .. $PASSES[0];
        mark();
        $pass->() for 1 .. $PASSES[1];
        mark();
    }
    exit 0;
}

sub mark { getppid }    # a callgrind dump (see above)
sub map_path { my ($dir, $name) = @_; "$dir/" . ($name =~ tr/ /_/r) . '.map' }

# ---- the driver ----------------------------------------------------------

my %opt;
GetOptions(\%opt, 'quick', 'cache', 'keys=i', 'keep=s', 'help') or usage(2);
usage(0) if $opt{help};
my $N = $opt{keys} // ($opt{quick} ? 2_000 : 25_000);
die "--keys must be at least 100\n" if $N < 100;
die "--keep $opt{keep}: not a directory\n" if defined $opt{keep} && !-d $opt{keep};

sub usage {
    my ($status, $msg) = @_;
    print STDERR "$msg\n" if $msg;
    print STDERR "usage: perl -Mblib $0 [--quick] [--cache] [--keys N] [--keep DIR] [workload ...]\n",
        "  workload: ", join(', ', map { qq("$_->{name}") } @WORK), ", a variant or an operation\n";
    exit $status;
}

my @want = map { lc } @ARGV;
sub chosen {    # (workload, what the command line asked for...) -> chosen?
    my ($name, @asked) = @_;
    my ($variant, $op) = split ' ', lc $name;
    return grep { $_ eq lc $name || $_ eq $variant || $_ eq $op } @asked;
}
for my $w (@want) {
    grep { chosen($_->{name}, $w) } @WORK or usage(2, "unknown workload '$w'");
}
my @work = grep { !@want || chosen($_->{name}, @want) } @WORK;

my $valgrind = `valgrind --version 2>/dev/null`;
if (!$valgrind) {
    print "bench/instructions.pl: skipped: valgrind is not installed (apt-get install valgrind);\n",
          "instruction counts need callgrind.\n";
    exit 0;
}
chomp $valgrind;
for my $v ('', map { "::$_" } @MEASURED) {
    next if eval "require Data::HashMap::Shared$v; 1";
    die "cannot load Data::HashMap::Shared$v: $@"
      . "Build the module first (perl Makefile.PL && make) and run: perl -Mblib $0\n";
}

my $DIR = File::Temp::tempdir('dhms-instr-XXXXXX', CLEANUP => 1,
    -d '/dev/shm' && -w _ ? (DIR => '/dev/shm') : (TMPDIR => 1));
$SIG{$_} = sub { exit 1 } for qw(HUP INT TERM);    # through exit: the temporary files go

# One map file per variant, filled in key order; each workload attaches to
# a copy of it of its own.
my %mapfile;
for my $w (@work) {
    my ($variant) = split ' ', $w->{name};
    $mapfile{$variant} //= do {
        my $path = "$DIR/$variant.map";
        my $keys = keys_for($variant, $N);
        my $m = "Data::HashMap::Shared::$variant"->new($path, 2 * $N);
        $m->put($keys->[ $_ - 1 ], fill_value($variant, $_)) for 1 .. $N;
        $path;
    };
    File::Copy::copy($mapfile{$variant}, map_path($DIR, $w->{name})) or die "copy: $!";
}

# Three children, run at once: the map's loops, the Perl hash's, and the
# loop alone (one per kind of key).
my %loops;    # the loop alone: one workload per kind of key
$loops{ $DHMSBench::VARIANT{ (split ' ', $_->{name})[0] }{key} } //= $_->{name} for @work;
my @children = (
    { side => 'ours', names => [ map { $_->{name} } @work ] },
    { side => 'perl', names => [ map { $_->{name} } @work ] },
    { side => 'loop', names => [ map { $loops{$_} } sort keys %loops ] },
);
my @INCS = map { "-I$_" } grep { !ref } @INC;
my @CACHE = $opt{cache} ? ('--cache-sim=yes', '--D1=32768,8,64', '--LL=1048576,16,64') : ();
my $t0 = time;
for my $c (@children) {
    $c->{out} = "$DIR/cg.$c->{side}";
    $c->{log} = "$DIR/log.$c->{side}";
    my @cmd = ('valgrind', '--tool=callgrind', '--dump-before=Perl_pp_getppid', "--callgrind-out-file=$c->{out}",
        "--log-file=$c->{log}", @CACHE, $^X, @INCS, $0, '--child', $c->{side}, $N, $DIR, @{ $c->{names} });
    $c->{pid} = fork // die "fork: $!";
    if (!$c->{pid}) {
        @ENV{qw(PERL_HASH_SEED PERL_PERTURB_KEYS)} = (0, 0);    # the same hash layout every run
        open STDOUT, '>', '/dev/null';
        exec @cmd or POSIX::_exit(127);
    }
}
my %per;    # "workload side" -> event -> per iteration
for my $c (@children) {
    waitpid $c->{pid}, 0;
    my $log = do { local (@ARGV, $/) = $c->{log}; <> } // '';
    die "callgrind run of the $c->{side} side failed (status $?):\n$log" if $?;
    # dump 1: start-up; then per loop: warm-up, P1 passes, P2 passes
    my $want = 1 + 3 * @{ $c->{names} };
    my @parts = map { totals("$c->{out}.$_") } grep { -e "$c->{out}.$_" } 1 .. $want + 1;
    die "callgrind wrote " . @parts . " profiles of the $c->{side} side, not $want: was getppid called elsewhere,\n"
      . "or is perl's Perl_pp_getppid not a symbol valgrind sees?\n" unless @parts == $want;
    for my $i (0 .. $#{ $c->{names} }) {
        my ($p1, $p2) = @parts[ 2 + 3 * $i, 3 + 3 * $i ];
        my $iters = ($PASSES[1] - $PASSES[0]) * $N;
        $per{"$c->{names}[$i] $c->{side}"}{$_} = ($p2->{$_} - $p1->{$_}) / $iters for keys %$p2;
        next unless defined $opt{keep};
        my $to = sprintf '%s/%s-%s.callgrind', $opt{keep}, $c->{side}, $c->{names}[$i] =~ tr/ /_/r;
        File::Copy::copy(sprintf('%s.%d', $c->{out}, 4 + 3 * $i), $to) or die "copy to $to: $!";
    }
}

sub totals {    # callgrind's output file -> { event => total }
    my ($file) = @_;
    open my $fh, '<', $file or die "$file: $!";
    my (@ev, @sum);
    while (<$fh>) {
        @ev  = split ' ', $1 if /^events:\s*(.*)/;
        @sum = split ' ', $1 if /^(?:summary|totals):\s*(.*)/;
    }
    die "$file: no totals\n" unless @ev && @sum;
    return { map { $ev[$_] => $sum[$_] // 0 } 0 .. $#ev };    # trailing zeros may be left out
}

(my $vg = $valgrind) =~ s/^valgrind-//;
printf "Instructions per loop iteration: Data::HashMap::Shared %s beside a Perl hash\n",
    $Data::HashMap::Shared::VERSION // '?';
printf "callgrind (valgrind %s), perl %vd, N = %s keys, counted: %d pass(es) of each loop%s (%d s)\n\n",
    $vg, $^V, commify($N), $PASSES[1] - $PASSES[0], $opt{quick} ? ', --quick' : '', time - $t0;
printf "%-12s %10s %10s %8s %8s%s\n", 'workload', 'Perl hash', 'Shared', 'ratio', 'extra',
    $opt{cache} ? '   misses per iteration, D1 / LL: Perl hash; Shared' : '';
for my $w (@work) {
    my ($p, $o) = map { $per{"$w->{name} $_"} } qw(perl ours);
    printf "%-12s %10.1f %10.1f %8.3f %+8.1f%s\n", $w->{name}, $p->{Ir}, $o->{Ir}, $p->{Ir} / $o->{Ir},
        $o->{Ir} - $p->{Ir},
        $opt{cache} ? sprintf('   %5.2f / %5.2f; %5.2f / %5.2f', map { $_->{D1mr} + $_->{D1mw}, $_->{DLmr} + $_->{DLmw} } $p, $o)
                    : '';
}
for my $kind (sort keys %loops) {    # int, str
    printf "%-23s %10.1f\n", "loop alone, $kind keys", $per{"$loops{$kind} loop"}{Ir};
}
print "\n  Instructions (callgrind's Ir) per iteration of `for my \$k (\@keys) { STATEMENT }`,\n",
      "  the loop included; ratio: Perl hash / Shared (above 1: the map runs fewer);\n",
      "  extra: Shared - Perl hash. Keyword forms; the map and the hash hold the N keys\n",
      "  before the loop (filled in key order), the keys are read in that order.\n";

sub commify { my $n = sprintf '%.0f', shift; 1 while $n =~ s/^(\d+)(\d{3})/$1,$2/; $n }
