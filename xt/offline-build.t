use strict;
use warnings;
use Test::More;
use Cwd qw(getcwd);
use File::Path qw(make_path remove_tree);

# The distribution builds with no network: `make dist`, unpack the tarball,
# then `perl Makefile.PL && make && make test` (two test files) in a bare
# environment: PATH=/usr/bin:/bin (Debian's cargo and rustc, not rustup's),
# an empty CARGO_HOME, CARGO_NET_OFFLINE=true. The crates come from the
# tarball's vendor/ (tools/vendor). Needs a Makefile in the tree (perl
# Makefile.PL). The log is kept in xt/tmp/offline-build.log.
#
#   DHMS_TARBALL=path.tar.gz   test that tarball instead of running make dist

plan skip_all => "needs Debian's cargo and rustc in /usr/bin "
    . "(apt-get install rustc-web cargo-web)"
    unless -x '/usr/bin/cargo' && -x '/usr/bin/rustc';
plan skip_all => 'run perl Makefile.PL first: the test runs make dist'
    unless $ENV{DHMS_TARBALL} || -f 'Makefile';

alarm 900;
my $top = getcwd();
my $tmp = "$top/xt/tmp/offline-build";
remove_tree($tmp);
make_path("$tmp/home", "$tmp/cargo-home");
my $log = "$top/xt/tmp/offline-build.log";
unlink $log;

sub sh {    # run a shell command, output appended to the log; true on success
    my ($cmd) = @_;
    open my $fh, '>>', $log or die "$log: $!";
    print {$fh} "\$ $cmd\n";
    close $fh;
    return system("( $cmd ) >>'$log' 2>&1") == 0;
}

my $tarball = $ENV{DHMS_TARBALL};
if (!$tarball) {
    unlink glob "$top/Data-HashMap-Shared-*.tar.gz";    # gzip would not overwrite it
    ok(sh('make dist'), 'make dist') or BAIL_OUT("make dist failed: see $log");
    ($tarball) = sort { -M $a <=> -M $b } glob "$top/Data-HashMap-Shared-*.tar.gz";
}
ok($tarball && -f $tarball, "the tarball: $tarball") or BAIL_OUT('no tarball');
note sprintf 'tarball size: %d bytes', -s $tarball;
ok(sh("tar -xzf '$tarball' -C '$tmp'"), 'unpacked');
my ($dist) = glob "$tmp/Data-HashMap-Shared-*/";
ok($dist && -d "$dist/vendor" && -f "$dist/.cargo/config.toml",
    'the tarball carries vendor/ and .cargo/config.toml');

my $env = join ' ', 'env -i PATH=/usr/bin:/bin LANG=C', "HOME=$tmp/home",
    "CARGO_HOME=$tmp/cargo-home", 'CARGO_NET_OFFLINE=true',
    'PERL_MM_USE_DEFAULT=1';
ok(sh("cd '$dist' && $env cargo --version && $env rustc --version"),
    "Debian's toolchain answers");
ok(sh("cd '$dist' && $env perl Makefile.PL"), 'perl Makefile.PL');
ok(sh("cd '$dist' && $env make"), 'make (cargo builds the engine offline)');
ok(sh("cd '$dist' && $env make test TEST_FILES='t/00-load.t t/10-basic-ops.t'"),
    'make test (t/00-load.t t/10-basic-ops.t)');

my $text = do { open my $fh, '<', $log or die "$log: $!"; local $/; <$fh> };
unlike($text, qr/^\s*(?:Downloading|Updating crates\.io|Downloaded)\b/m,
    'cargo fetched nothing');
like($text, qr/^\s*Compiling libc v[\d.]+$/m, 'libc was compiled');
ok(!(grep { -e "$tmp/cargo-home/registry/$_" } qw(index cache src)),
    'from the vendored copy: CARGO_HOME holds no index and no crate');

my $so = "$dist/blib/arch/auto/Data/HashMap/Shared/Shared.so";
my @exported = grep { /\S/ } `nm -D --defined-only '$so' 2>/dev/null`;
is_deeply([map { (split ' ')[-1] } @exported], ['boot_Data__HashMap__Shared'],
    'Shared.so exports only its boot symbol')
    or diag @exported[0 .. ($#exported < 9 ? $#exported : 9)];
note sprintf 'Shared.so: %d bytes', -s $so;

my @lines = split /\n/, $text;
diag "last lines of $log:";
diag $_ for @lines[ ($#lines > 14 ? $#lines - 14 : 0) .. $#lines ];

remove_tree($tmp) if Test::More->builder->is_passing;
done_testing;
