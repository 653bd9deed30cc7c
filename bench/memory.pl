#!/usr/bin/perl
# bench/memory.pl - memory and disk per entry of Data::HashMap::Shared maps,
# beside a plain Perl hash holding the same data.
#
#   perl -Mblib bench/memory.pl [--dir DIR] [--scale F]
#
# Measured, each in a fresh child process:
#   every variant at N = 20,000, 30,000, 40,000, 50,000 and 60,000 entries
#   (one fresh map of max_entries N each; integer keys -30000+i, integer
#   values the key, string keys "key:%016d" (20 bytes), string values
#   "val:%012d" (16 bytes)), and the average of the five: the figure
#   DESIGN.md's budgets are written in ("--variants" runs only this part)
#   II, 1,000,000 entries (keys 1..N, values the key)
#   SS, 100,000 entries (20-byte keys "key:%016d", 100-byte values)
#   SS created for 10,000,000 entries that holds 100 (DESIGN.md: "memory
#   follows the data": well under 1 MiB of RAM and disk)
# "map RSS" is the resident part of the map's mapping in the process that
# filled it: the sum of the Rss: lines of /proc/self/smaps for the mappings
# of the map file. "disk" is the space the file takes (stat blocks * 512),
# not its length (the file is sparse). "Perl hash" is the growth of the
# resident set (VmRSS) of a fresh process while it builds a hash of the same
# keys and values. --dir sets where the files go (default: $TMPDIR or /tmp,
# a real file system; /dev/shm gives the same figures in RAM); --scale
# multiplies the entry counts (e.g. 0.01 for a quick look).
use strict;
use warnings;
use File::Temp ();
use Getopt::Long qw(GetOptions);
use POSIX ();

my %opt = (dir => undef, scale => 1);
GetOptions(\%opt, 'dir=s', 'scale=f', 'variants', 'help')
    or die "usage: perl -Mblib $0 [--dir DIR] [--scale F] [--variants]\n";
if ($opt{help}) { print "usage: perl -Mblib $0 [--dir DIR] [--scale F] [--variants]\n"; exit 0 }

my @ALL = qw(I16 I32 II I16S I32S IS SI16 SI32 SI SS);
for my $v (@ALL) {
    eval "require Data::HashMap::Shared::$v; 1"
      or die "cannot load Data::HashMap::Shared::$v: $@Build first and run: perl -Mblib $0\n";
}

my $DIR = File::Temp::tempdir('dhms-memory-XXXXXX', CLEANUP => 1,
    defined $opt{dir} ? (DIR => $opt{dir}) : (TMPDIR => 1));
$SIG{$_} = sub { exit 1 } for qw(HUP INT PIPE TERM);

sub n { my $n = int($_[0] * $opt{scale}); $n < 1 ? 1 : $n }

# key and value of the i-th entry of each data set
my %DATA = (
    II => { key => sub { $_[0] }, value => sub { $_[0] }, data => 16,
            title => 'II (int64 -> int64)' },
    SS => { key => sub { sprintf 'key:%016d', $_[0] },
            value => sub { sprintf '%-100.100s', "value:$_[0]:" . ('x' x 100) }, data => 120,
            title => 'SS (20-byte keys, 100-byte values)' },
);

# Every variant's keys and values for the per-variant table: integer keys
# and values -30000+i (they fit int16 up to 60,000 entries), string keys of
# 20 bytes, string values of 16.
my %KINDS = (I16 => 'ii', I32 => 'ii', II => 'ii', I16S => 'is', I32S => 'is', IS => 'is',
             SI16 => 'si', SI32 => 'si', SI => 'si', SS => 'ss');
my %VDATA = map {
    my ($k, $v) = split //, $KINDS{$_};
    ($_ => { key   => $k eq 's' ? sub { sprintf 'key:%016d', $_[0] } : sub { $_[0] - 30_000 },
             value => $v eq 's' ? sub { sprintf 'val:%012d', $_[0] } : sub { $_[0] - 30_000 } })
} @ALL;
my @SIZES = map { n($_) } 20_000, 30_000, 40_000, 50_000, 60_000;

my @CASES = (
    { name => 'II, 1M entries',         variant => 'II', max => n(1_000_000),  entries => n(1_000_000) },
    { name => 'SS, 100k entries',       variant => 'SS', max => n(100_000),    entries => n(100_000) },
    { name => 'SS, max 10M, 100 held',  variant => 'SS', max => n(10_000_000), entries => 100, sparse => 1 },
);

# Sum of Rss: (kB) of the mappings of $path in /proc/self/smaps.
sub mapping_rss {
    my ($path) = @_;
    open my $fh, '<', '/proc/self/smaps' or die "/proc/self/smaps: $!";
    my ($on, $kb, $n) = (0, 0, 0);
    while (<$fh>) {
        if (/^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s+(.*)$/) {
            (my $name = $1) =~ s/ \(deleted\)$//;
            $on = $name eq $path;
            $n++ if $on;
        }
        elsif ($on && /^Rss:\s+(\d+) kB/) { $kb += $1 }
    }
    die "no mapping of $path in /proc/self/smaps\n" unless $n;
    return $kb * 1024;
}

sub vm_rss {
    open my $fh, '<', '/proc/self/status' or die "/proc/self/status: $!";
    while (<$fh>) { return $1 * 1024 if /^VmRSS:\s+(\d+) kB/ }
    die "no VmRSS\n";
}

# Runs $code in a child (alarm, POSIX::_exit); returns what it printed.
sub in_child {
    my ($code) = @_;
    pipe(my $r, my $w) or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        close $r;
        $SIG{$_} = 'DEFAULT' for qw(HUP INT PIPE TERM);
        alarm 600;
        my $out = eval { $code->() };
        my $ok = defined $out;
        print {$w} $ok ? $out : "error: $@";
        close $w;
        POSIX::_exit($ok ? 0 : 1);
    }
    close $w;
    my $out = do { local $/; <$r> };
    waitpid $pid, 0;
    die "child failed ($?): $out\n" if $?;
    return $out;
}

sub measure_map {
    my ($c) = @_;
    my $d = $c->{data} // $DATA{ $c->{variant} };
    my $path = "$DIR/$c->{variant}-$c->{max}.map";
    my $out = in_child(sub {
        my $map = "Data::HashMap::Shared::$c->{variant}"->new($path, $c->{max});
        my ($key, $value) = @$d{qw(key value)};
        $map->put($key->($_), $value->($_)) or die "put $_ failed\n" for 1 .. $c->{entries};
        die "size ", $map->size, " != $c->{entries}\n" unless $map->size == $c->{entries};
        my $st = $map->stats;
        my @st = stat $path or die "stat $path: $!";
        join ' ', mapping_rss($path), $st[12] * 512, $st[7], $st->{capacity}, $st->{arena_used};
    });
    unlink $path;
    my %r;
    @r{qw(rss disk length capacity arena)} = split ' ', $out;
    return \%r;
}

sub measure_hash {
    my ($c) = @_;
    my $d = $DATA{ $c->{variant} };
    my $out = in_child(sub {
        my ($key, $value) = @$d{qw(key value)};
        my %h;
        my $before = vm_rss();
        $h{ $key->($_) } = $value->($_) for 1 .. $c->{entries};
        my $after = vm_rss();
        die "hash size\n" unless keys %h == $c->{entries};
        $after - $before;
    });
    return $out;
}

sub human {
    my $b = shift;
    return sprintf '%.1f MiB', $b / 1048576 if $b >= 1048576;
    return sprintf '%.1f KiB', $b / 1024 if $b >= 1024;
    return "$b B";
}
sub commify { my $n = sprintf '%.0f', shift; 1 while $n =~ s/^(\d+)(\d{3})/$1,$2/; $n }

sub cpu_model {
    open my $fh, '<', '/proc/cpuinfo' or return 'unknown cpu';
    while (<$fh>) { return $1 if /^model name\s*:\s*(.*)/ }
    return 'unknown cpu';
}

# The per-variant table: bytes of the mapping resident per entry.
sub variant_table {
    printf "%-6s %s %9s\n", 'variant', join('', map { sprintf '%9s', commify($_) } @SIZES), 'average';
    for my $v (@ALL) {
        my @per = map {
            my $m = measure_map({ variant => $v, max => $_, entries => $_, data => $VDATA{$v} });
            $m->{rss} / $_;
        } @SIZES;
        my $avg = 0;
        $avg += $_ / @per for @per;
        printf "%-6s  %s %9.1f\n", $v, join('', map { sprintf '%9.1f', $_ } @per), $avg;
    }
    print "  resident bytes of the map's mapping per entry (fresh map of max_entries N, filled to N)\n";
    print "  integer keys -30000+i; string keys 20 bytes, string values 16 bytes\n\n";
}

my $fs = do { my $t = `stat -f -c %T \Q$DIR\E 2>/dev/null`; chomp $t; $t || '?' };
printf "Data::HashMap::Shared %s: memory per entry; perl %s, %s; files in %s (%s)%s\n\n",
    $Data::HashMap::Shared::VERSION // '?', $^V, cpu_model(), $DIR =~ s{/[^/]*$}{}r, $fs,
    $opt{scale} != 1 ? "; SCALE $opt{scale}: not the documented sizes" : '';
variant_table();
exit 0 if $opt{variants};
printf "%-22s %10s %11s %9s %11s %9s %11s %9s %7s\n",
    'map', 'entries', 'map RSS', '/entry', 'disk', '/entry', 'Perl hash', '/entry', 'map/Perl';
for my $c (@CASES) {
    my $m = measure_map($c);
    my $h = $c->{sparse} ? undef : measure_hash($c);
    my $e = $c->{entries};
    printf "%-22s %10s %11s %9.1f %11s %9.1f %11s %9s %7s\n", $c->{name}, commify($e),
        human($m->{rss}), $m->{rss} / $e, human($m->{disk}), $m->{disk} / $e,
        defined $h ? human($h) : '-', defined $h ? sprintf('%.1f', $h / $e) : '-',
        defined $h ? sprintf('%.2f', $m->{rss} / $h) : '-';
    $c->{result} = $m;
}
print "\n";
for my $c (@CASES) {
    my $m = $c->{result};
    printf "  %-22s file length %s, table capacity %s slots, string storage in use %s\n",
        $c->{name}, human($m->{length}), commify($m->{capacity}), human($m->{arena});
}
printf "\n  payload: II %d bytes per entry (two int64), SS %d (20 + 100 bytes).\n", $DATA{II}{data}, $DATA{SS}{data};
print "  map RSS: Rss of the map file's mappings (/proc/self/smaps) in the process that filled it.\n",
      "  disk: stat blocks * 512 of the (sparse) file. Perl hash: VmRSS growth of a fresh process\n",
      "  building a hash of the same keys and values. Each measurement runs in its own process.\n";
my $s = $CASES[2]{result};
printf "  DESIGN.md (memory follows the data): a 10M-entry map holding 100 entries uses RSS %s, disk %s: %s\n",
    human($s->{rss}), human($s->{disk}),
    ($s->{rss} < 1048576 && $s->{disk} < 1048576 ? 'under 1 MiB, met' : 'NOT under 1 MiB')
    if $opt{scale} == 1;
