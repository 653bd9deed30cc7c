use strict;
use warnings;
use Test::More;
use File::Temp ();
use lib 't/lib';
use DHMSTest;
use Data::HashMap::Shared ();

# Pins: bin/hashmap-shared, run as a subprocess, detects the variant of a
# map file from its header and implements stat, dump, get, put, rm, verify
# and watch as its manual says; --help prints the manual's commands; every
# error goes to stderr with exit status 2 (1 for a missing key), and the
# tool never creates a file.

my @PERL = ($^X, (-d 'blib' ? '-Mblib' : '-Ilib'), 'bin/hashmap-shared');
my $dir  = tmp_dir();
my $n    = 0;

# (exit status, stdout, stderr) of one run, with no stdin.
sub cli {
    my @args = @_;
    $n++;
    my ($out, $err) = ("$dir/out.$n", "$dir/err.$n");
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDIN,  '<', '/dev/null' or POSIX::_exit(99);
        open STDOUT, '>', $out        or POSIX::_exit(99);
        open STDERR, '>', $err        or POSIX::_exit(99);
        exec @PERL, @args or POSIX::_exit(98);
    }
    waitpid $pid, 0;
    my $status = $? & 127 ? 128 + ($? & 127) : $? >> 8;
    return ($status, slurp($out), slurp($err));
}

# cli_is([args], status, stdout-regex-or-string, stderr-regex, name)
sub cli_is {
    my ($args, $want_status, $want_out, $want_err, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my ($status, $out, $err) = cli(@$args);
    subtest $name => sub {
        is($status, $want_status, "exit status $want_status") or diag "stdout: $out\nstderr: $err";
        if (ref $want_out) { like($out, $want_out, 'stdout') }
        elsif (defined $want_out) { is($out, $want_out, 'stdout') }
        if (ref $want_err) { like($err, $want_err, 'stderr') }
        elsif (defined $want_err) { is($err, $want_err, 'stderr') }
    };
    return ($status, $out, $err);
}

# ---- usage -----------------------------------------------------------------

my ($st, $help) = cli_is(['--help'], 0, qr/Usage:/, '', '--help');
for my $cmd (qw(stat dump get put rm verify watch)) {
    like($help, qr/^\s+hashmap-shared $cmd\b/m, "--help shows the synopsis of $cmd");
    like($help, qr/^    $cmd\b/m, "--help describes $cmd");
}
like($help, qr/Exit Status/i, '--help gives the exit statuses');
cli_is(['-h'], 0, qr/Usage:/, '', '-h');
cli_is(['--version'], 0, qr/^hashmap-shared \d+\.\d+\n\z/, '', '--version');
cli_is([], 2, '', qr/no command given.*usage:/s, 'no command');
cli_is(['frobnicate', 'x'], 2, '', qr/unknown command 'frobnicate'/, 'unknown command');
cli_is(['--bogus', 'stat', 'x'], 2, '', qr/Unknown option: bogus/, 'unknown option');
cli_is(['get', "$dir/x"], 2, '', qr/get takes 2 arguments\nusage: hashmap-shared get/, 'too few arguments');
cli_is(['stat', "$dir/x", 'y'], 2, '', qr/stat takes 1 argument\b/, 'too many arguments');
cli_is(['put', "$dir/x", 'k'], 2, '', qr/put takes 3 arguments/, 'put without a value');

# ---- file errors: exit 2, never create ---------------------------------------

cli_is(['stat', "$dir/missing.map"], 2, '', qr/\Q$dir\E\/missing\.map: No such file or directory/,
    'missing file');
ok(!-e "$dir/missing.map", 'the tool did not create the missing file');
cli_is(['put', "$dir/missing.map", 'k', 'v'], 2, '', qr/No such file/, 'put on a missing file');
ok(!-e "$dir/missing.map", 'put did not create it either');
spew("$dir/text.txt", "hello, this is not a map file at all\n" x 20);
cli_is(['stat', "$dir/text.txt"], 2, '', qr/not a Data::HashMap::Shared file/, 'a text file');
spew("$dir/short", "DHMS");
cli_is(['dump', "$dir/short"], 2, '', qr/not a Data::HashMap::Shared file \(too short\)/, 'a short file');
spew("$dir/pending", "DHMS-NEW" . ("\0" x 600));
cli_is(['get', "$dir/pending", 'k'], 2, '', qr/being created, or its creator died/, 'a half-created file');
spew("$dir/v1", "DHMSHMAP" . pack('V V', 1, 0) . ("\0" x 600));
cli_is(['stat', "$dir/v1"], 2, '', qr/unsupported format version 1/, 'another format version');
spew("$dir/v99", "DHMSHMAP" . pack('V V', 3, 99) . ("\0" x 600));
cli_is(['stat', "$dir/v99"], 2, '', qr/unknown variant number 99/, 'an unknown variant');
cli_is(['stat', $dir], 2, '', qr/not a regular file/, 'a directory');

# ---- every variant: detected, put/get/rm round trip ---------------------------

for my $v (@VARIANTS) {
    my $path = "$dir/$v->{name}.map";
    my $map  = $v->{class}->new($path, 100);
    my ($k1, $v1) = (vkey($v, 1), vval($v, 1));
    $map->put($k1, $v1);
    my $kind = sub { $_[0] eq 'bytes' ? 'byte string' : $_[0] };
    cli_is(['stat', $path], 0,
        qr/^variant: +\Q$v->{name} (@{[ $kind->($v->{key}) ]} => @{[ $kind->($v->{val}) ]})\E$/m,
        '', "$v->{name}: stat names the variant");
    cli_is(['get', $path, $k1], 0, "$v1\n", '', "$v->{name}: get");
    my ($k2, $v2) = (vkey($v, 2), vval($v, 2));
    cli_is(['put', $path, $k2, $v2], 0, '', '', "$v->{name}: put");
    is($map->get($k2), $v2, "$v->{name}: a map handle sees what the tool put");
    cli_is(['dump', '--sort', $path], 0,
        join('', map { "$_->[0]\t$_->[1]\n" }
            sort { $v->{int_key} ? $a->[0] <=> $b->[0] : $a->[0] cmp $b->[0] } [ $k1, $v1 ], [ $k2, $v2 ]),
        '', "$v->{name}: dump --sort");
    cli_is(['rm', $path, $k2], 0, '', '', "$v->{name}: rm");
    ok(!$map->exists($k2), "$v->{name}: the key is gone");
    cli_is(['rm', $path, $k2], 1, '', qr/key '\Q$k2\E' not found/, "$v->{name}: rm of a missing key");
    cli_is(['get', $path, $k2], 1, '', qr/key '\Q$k2\E' not found/, "$v->{name}: get of a missing key");
}

# ---- values the variant refuses: exit 2 ---------------------------------------

my $ii = Data::HashMap::Shared::II->new("$dir/ii.map", 3);
cli_is(['put', "$dir/ii.map", 'abc', 1], 2, '', qr/'abc' is not an integer/, 'a non-integer key');
cli_is(['get', "$dir/ii.map", 'abc'], 2, '', qr/'abc' is not an integer/, 'get with a non-integer key');
my $i16 = Data::HashMap::Shared::I16->new("$dir/i16.map", 3);
cli_is(['put', "$dir/i16.map", 1, 70000], 2, '', qr/70000 does not fit int16/, 'a value out of range');
cli_is(['put', "$dir/i16.map", -7, -8], 0, '', '', 'negative numbers are arguments, not options');
cli_is(['get', "$dir/i16.map", -7], 0, "-8\n", '', 'get of a negative key');
cli_is(['put', "$dir/ii.map", $_, $_], 0, '', '', "fill ($_)") for 1 .. 3;
cli_is(['put', "$dir/ii.map", 4, 4], 2, '', qr/the map is full \(max_entries 3\)/, 'put on a full map');
cli_is(['put', "$dir/ii.map", 3, 33], 0, '', '', 'overwrite on a full map');
is($ii->get(3), 33, 'overwritten');
cli_is(['put', '--ttl', 5, "$dir/ii.map", 3, 1], 2, '', qr/put_ttl needs a map created with a TTL/,
    'put --ttl on a map without TTL');
cli_is(['dump', '--sort', "$dir/ii.map"], 0, "1\t1\n2\t2\n3\t33\n", '', 'dump --sort: numeric order');
cli_is(['get', "$dir/ii.map", '--', -5], 1, '', qr/key '-5' not found/, '-- ends the options');

# ---- strings: escaping, -e, --raw ---------------------------------------------

my $ss = Data::HashMap::Shared::SS->new("$dir/ss.map", 100, 50, 60);
my %pairs = (
    "tab\there"    => "line1\nline2",
    'back\\slash'  => "nul\0byte",
    "caf\xe9"      => "\x{263a}",              # a byte string key, a UTF-8 value
    ''             => 'empty key',
    'plain'        => '',
    "ctl\x01\x7f"  => 'x' x 100,
);
$ss->put($_, $pairs{$_}) for keys %pairs;
my %escaped = (
    'tab\there'        => 'line1\nline2',
    'back\\\\slash'    => 'nul\x00byte',
    'caf\xe9'          => '\xe2\x98\xba',
    ''                 => 'empty key',
    'plain'            => '',
    'ctl\x01\x7f'      => 'x' x 100,
);
my ($s, $dump) = cli_is(['dump', "$dir/ss.map"], 0, undef, '', 'dump of strings');
is_deeply([ sort split /\n/, $dump ], [ sort map { "$_\t$escaped{$_}" } keys %escaped ],
    'dump escapes tab, newline, backslash and non-printables, one line per entry');
cli_is(['dump', '--sort', "$dir/ss.map"], 0,
    join('', map { "$_\t$escaped{$_}\n" } sort { $a cmp $b } keys %escaped), '', 'dump --sort');
cli_is(['get', '-e', "$dir/ss.map", 'tab\there'], 0, "line1\\nline2\n", '', 'get -e unescapes the key');
cli_is(['get', '--raw', '-e', "$dir/ss.map", 'back\\\\slash'], 0, "nul\0byte", '', 'get --raw: exact bytes');
cli_is(['get', '--raw', "$dir/ss.map", 'tab'], 1, '', qr/not found/, 'no partial match');
cli_is(['put', '-e', "$dir/ss.map", 'new\tkey', 'a\x00b\\\\c'], 0, '', '', 'put -e');
is($ss->get("new\tkey"), "a\0b\\c", 'put -e unescaped key and value');
cli_is(['put', '--ttl', 7, "$dir/ss.map", 'short', 'lived'], 0, '', '', 'put --ttl');
my $left = $ss->ttl_remaining('short');
ok($left >= 6 && $left <= 7, "put --ttl gave the entry its own lifetime ($left)");
cli_is(['rm', '-e', "$dir/ss.map", 'new\tkey'], 0, '', '', 'rm -e');
ok(!$ss->exists("new\tkey"), 'removed');

# ---- stat ------------------------------------------------------------------------

my ($st2, $stat) = cli_is(['stat', "$dir/ss.map"], 0, undef, '', 'stat of an LRU+TTL map');
my %row = $stat =~ /^(\w+): +(.*)$/mg;
is($row{variant}, 'SS (byte string => byte string)', 'stat: variant');
is($row{format_version}, 3, 'stat: format version');
is($row{$_}, $ss->stats->{$_}, "stat: $_") for qw(max_entries max_size ttl capacity arena_cap);
is($row{size}, $ss->size, 'stat: size');
like($row{file_bytes}, qr/^\d+ \(apparent\), \d+ \(on disk\)$/, 'stat: file sizes');
like($row{$_}, qr/^\d+$/, "stat: $_") for qw(stat_evictions stat_expired stat_recoveries arena_used mmap_size tombstones);
is($row{writer_lock}, 'free', 'stat: the writer lock is free');
is($row{change_in_progress}, 'no', 'stat: no change in progress');
like($row{process_slots_used}, qr/^\d+ \(high-water mark\)$/, 'stat: process slots');

# A lock word naming process slot 2 (dead: nobody holds that slot), with the
# waiters bit: stat reports it from the header as it is.
{
    my $copy = "$dir/locked.map";
    my $orig = Data::HashMap::Shared::SS->new($copy, 10);
    $orig->put('k', 'v');
    undef $orig;
    open my $fh, '+<', $copy or die "$copy: $!";
    sysseek $fh, 256, 0 or die;
    syswrite $fh, pack('Q<', (2 + 1) | (1 << 31) | (5 << 32)) or die;
    close $fh;
    cli_is(['stat', $copy], 0, qr/^writer_lock: +held by process slot 2, with waiters$/m, '',
        'stat: a held writer lock');
    cli_is(['verify', $copy], 0, qr/ok \(1 entry\)/, '', 'verify takes a dead holder\'s lock over');
    cli_is(['stat', $copy], 0, qr/^stat_recoveries: +1$/m, '', 'and the recovery is counted');
}

# ---- verify --------------------------------------------------------------------

if (Data::HashMap::Shared::SS->can('verify')) {
    cli_is(['verify', "$dir/ss.map"], 0, "$dir/ss.map: ok (" . $ss->size . " entries)\n", '', 'verify');
    # damage a copy: the recorded size no longer matches the table
    my $bad = "$dir/bad.map";
    my $m = Data::HashMap::Shared::II->new($bad, 100);
    $m->put($_, $_) for 1 .. 10;
    undef $m;
    open my $fh, '+<', $bad or die "$bad: $!";
    sysseek $fh, 448, 0 or die;    # header: size
    syswrite $fh, pack('Q<', 7) or die;
    close $fh;
    cli_is(['verify', $bad], 2, '', qr/^hashmap-shared: .*\Q$bad\E.*\S/, 'verify names a problem and exits 2');
}
else {
    cli_is(['verify', "$dir/ss.map"], 2, '', qr/verify is not available/, 'verify not available');
}

# ---- frozen and sharded maps (where this version has them) ------------------------

SKIP: {
    skip 'no freeze/new_readonly in this version', 6
        unless Data::HashMap::Shared::SS->can('freeze') && Data::HashMap::Shared::SS->can('new_readonly');
    my $path = "$dir/frozen.map";
    my $m = Data::HashMap::Shared::SS->new($path, 10);
    $m->put('a', 'b');
    $m->freeze;
    cli_is(['stat', $path], 0, qr/^frozen: +1$/m, '', 'stat of a frozen map');
    cli_is(['get', $path, 'a'], 0, "b\n", '', 'get from a frozen map');
    cli_is(['dump', $path], 0, "a\tb\n", '', 'dump of a frozen map');
    cli_is(['verify', $path], 0, qr/ok \(1 entry\)/, '', 'verify of a frozen map');
    cli_is(['put', $path, 'c', 'd'], 2, '', qr/map is frozen/, 'put on a frozen map fails');
    cli_is(['rm', $path, 'a'], 2, '', qr/map is frozen/, 'rm on a frozen map fails');
}

SKIP: {
    skip 'no new_sharded in this version', 10 unless Data::HashMap::Shared::SS->can('new_sharded');
    my $prefix = "$dir/sharded";
    my $m = Data::HashMap::Shared::SS->new_sharded($prefix, 3, 300);
    $m->put("k$_", "v$_") for 1 .. 30;
    cli_is(['stat', "$prefix.1"], 0, qr/^shard: +1 of 3 \(a shard of a sharded map\)$/m, '', 'stat of a shard');
    my ($s0, $d0) = cli_is(['dump', "$prefix.0"], 0, undef, '', 'dump of one shard');
    my @in0 = $d0 =~ /^(k\d+)\t/mg;
    ok(@in0 > 0 && @in0 < 30, 'dump shows that shard only (' . scalar(@in0) . ' of 30)');
    my ($other) = grep { my $k = $_; !grep { $_ eq $k } @in0 } map { "k$_" } 1 .. 30;
    cli_is(['get', "$prefix.0", $other], 0, "v" . substr($other, 1) . "\n", '',
        'get through a shard finds a key of another shard');
    cli_is(['put', "$prefix.2", 'fresh', 'new'], 0, '', '', 'put through a shard');
    is($m->get('fresh'), 'new', 'the sharded map finds it (stored in its own shard)');
    cli_is(['rm', "$prefix.0", $other], 0, '', '', 'rm through a shard');
    ok(!$m->exists($other), 'removed from the sharded map');
    my $n = 0;
    $n++ while $m->each;
    is($n, 30, 'every key once through the sharded map');
    rename "$prefix.2", "$prefix.moved" or die;
    cli_is(['put', "$prefix.1", 'x', 'y'], 2, '', qr/missing: shard 2 of the sharded map/, 'a missing shard');
}

# ---- watch ---------------------------------------------------------------------

{
    my ($st3, $out) = cli_is(['watch', '--count', 3, "$dir/ss.map", '0.1'], 0, undef, '', 'watch --count 3');
    my @lines = split /\n/, $out;
    is(scalar @lines, 4, 'a header and three lines');
    like($lines[0], qr/^time +size +size\/s +evictions +evict\/s +expired +expire\/s +recoveries +arena_used$/,
        'the header');
    like($lines[1], qr/^\d\d:\d\d:\d\d +\d+ +- +\d+ +- +\d+ +- +\d+ +\d+$/, 'the first line has no rates');
    like($lines[$_], qr/^\d\d:\d\d:\d\d +\d+ +[-+]\d+\.\d +\d+ +[-+]\d+\.\d +\d+ +[-+]\d+\.\d +\d+ +\d+$/,
        "line $_ has rates") for 2, 3;
    cli_is(['watch', '--count', 1, "$dir/ss.map"], 0, qr/\A[^\n]+\n[^\n]+\n\z/, '', 'watch --count 1');
    cli_is(['watch', "$dir/ss.map", 'soon'], 2, '', qr/SECONDS must be a positive number/, 'watch: bad interval');
    cli_is(['watch', '--count', 0, "$dir/ss.map"], 2, '', qr/--count must be positive/, 'watch: bad count');
    cli_is(['watch', '--count', 1, "$dir/missing.map"], 2, '', qr/No such file/, 'watch: missing file');
}

done_testing;
