use strict;
use warnings;
use Test::More;
use Time::HiRes ();

# Pins: every eg/*.pl recipe runs without arguments, exits 0 within a few
# seconds, prints its expected result lines, and leaves no map file behind;
# the cookbook shows each program exactly as it is in eg/.

# A safety net: a recipe that hangs fails the test instead of the run.
alarm 240;

my @INC_FLAGS = -d 'blib' ? ('-Mblib') : ('-Ilib');

# Lines each recipe must print (regexes, matched against whole lines).
my %expect = (
    'request-counters.pl' => [
        qr/^requests: 10000$/, qr/^status:200: 9800$/, qr/^status:404: 200$/,
        map { qr/^worker:$_: 2500$/ } 1 .. 4,
    ],
    'lru-ttl-cache.pl' => [
        qr/^after 200 requests: 100 misses, 100 hits$/,
        qr/^size: 100 of max_size 100, evictions: [1-9]\d*$/,
        qr/^hot page 1 still cached: yes$/,
        qr/^after 2 seconds: 0 fresh, 100 expired entries flushed$/,
    ],
    'rate-limiter.pl' => [
        qr/^alice: 10 of 32 allowed$/, qr/^bob: 8 of 8 allowed$/,
        qr/^alice in the next window: allowed$/, qr/^window keys expire in: (?:59|60) s$/,
    ],
    'leaderboard.pl' => [
        qr/^1\. \w+ +\d+ \(\d+ games\)$/, qr/^2\. /, qr/^3\. /,
        qr/^matches a single-process run: yes$/,
    ],
    'feature-flags.pl' => [
        qr/^3 of 3 workers switched to new_checkout without a restart$/,
        qr/^flags now: banner=Try the new checkout!, new_checkout=1$/,
    ],
    'work-queue.pl' => [
        qr/^processed 200 of 200 jobs, each exactly once$/,
        qr/^jobs per worker: 1:\d+ 2:\d+ 3:\d+ 4:\d+$/,
        qr/^left in queue: 0$/,
    ],
    'heartbeats.pl' => [
        qr/^live at start: worker:1 worker:2 worker:3$/,
        qr/^live 2\.8 s later: worker:1 worker:2$/,
    ],
    'memoize.pl' => [
        qr/^4 workers x 20 calls: 20 computations$/,
        qr/^prime factors of 20000060: 2 2 5 1000003$/,
    ],
    # CHI is optional: without it the recipe says so and exits 0
    'chi-l1-cache.pl' => eval { require CHI; 1 } ? [
        qr/^L2: (?:Redis at \S+|CHI's Memory driver, standing in for Redis)$/,
        qr/^first worker: 25 loads from the source$/,
        qr/^3 more workers: 0 more loads \(served by the shared L1\)$/,
        qr/^L1 map file: 25 entries$/,
    ] : [ qr/^skipped: CHI is not installed/ ],
    'tied-hash.pl' => [
        qr/^apple=3, banana=2, cherry=1$/,
        qr/^3 distinct words, banana seen: yes$/,
    ],
);

opendir my $dh, 'eg' or die "eg: $!";
my @scripts = sort grep { /\.pl\z/ } readdir $dh;
closedir $dh;
ok(@scripts >= 8, 'eg/ has the recipes') or diag "@scripts";
is_deeply([ sort keys %expect ], \@scripts, 'every recipe has expected output here, and only those');

my $cookbook = do {
    open my $fh, '<', 'lib/Data/HashMap/Shared/Cookbook.pod' or die "Cookbook.pod: $!";
    local $/;
    <$fh>;
};

# Temporary directories that hold one of the given map files: none may be
# left behind by a recipe. (Directories of other programs running at the
# same time hold other files.)
my $tmp_root = -d '/dev/shm' ? '/dev/shm' : ($ENV{TMPDIR} || '/tmp');
sub temp_dirs_with {
    my (@maps) = @_;
    opendir my $t, $tmp_root or return {};
    my %found;
    for my $d (grep { /\A[A-Za-z0-9_]{10}\z/ } readdir $t) {
        $found{$d} = 1 if grep { -e "$tmp_root/$d/$_" } @maps;
    }
    return \%found;
}

for my $script (@scripts) {
    my $file = "eg/$script";
    subtest $script => sub {
        # The cookbook shows the program as it is (indented as verbatim POD).
        my $code = do { open my $fh, '<', $file or die "$file: $!"; local $/; <$fh> };
        (my $indented = $code) =~ s/^(?=.)/    /mg;
        ok(index($cookbook, "F<$file>") >= 0, "the cookbook names $file");
        ok(index($cookbook, $indented) >= 0, "the cookbook shows $file exactly as it is");
        if ($code =~ /\bfork\b/) {
            like($code, qr/\bfork\b.*\balarm\b.*\bPOSIX::_exit\b/s,
                'forked children use alarm and POSIX::_exit');
        }

        my @maps = $code =~ m{"\$dir/([\w.-]+\.map)"}g;
        ok(@maps, "$script keeps its maps in its temporary directory");
        my $before = temp_dirs_with(@maps);
        my $t0 = Time::HiRes::time();
        my $pid = open(my $out, '-|') // die "fork: $!";
        if (!$pid) {
            open STDERR, '>&', \*STDOUT or die;
            open STDIN, '<', '/dev/null' or die;
            exec $^X, @INC_FLAGS, $file or die "exec: $!";
        }
        my @lines = <$out>;
        close $out;
        my $status = $?;
        my $elapsed = Time::HiRes::time() - $t0;
        chomp @lines;
        is($status, 0, "$script exits 0") or diag join "\n", @lines;
        cmp_ok($elapsed, '<', 20, "$script runs in a few seconds");
        for my $re (@{ $expect{$script} }) {
            ok(scalar(grep { $_ =~ $re } @lines), "prints a line like $re") or diag join "\n", @lines;
        }
        my $after = temp_dirs_with(@maps);
        my @left = grep { !$before->{$_} } keys %$after;
        is_deeply(\@left, [], "$script cleans up its temporary directory");
    };
}

done_testing;
