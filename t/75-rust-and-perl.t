use strict;
use warnings;
use Test::More;
use POSIX ();
use Time::HiRes ();
use lib 't/lib';
use DHMSTest;

# Rust programs share the maps (README): a Rust program using the crate's
# typed API (rust/examples/share.rs) and Perl processes use one II map and
# one SS map at the same time. Every process adds 1 to counters 1..4 in
# each of its rounds: the totals must be exact. The Perl processes wait for
# the string the Rust program stores first; the first of them stores one
# in turn, which the Rust program waits for before it counts: so everybody
# counts at the same time, and each side has seen the other's write.

my $bin = 'target/release/examples/share';
plan skip_all => "the Rust example is not built: run cargo build --release --example share"
    unless -x $bin;

require Data::HashMap::Shared::II;
require Data::HashMap::Shared::SS;

my $ROUNDS = 20_000;
my $PERLS  = 3;

my $cpath = tmp_path('counters');
my $spath = tmp_path('strings');
my $counts = Data::HashMap::Shared::II->new($cpath, 1000);
my $texts  = Data::HashMap::Shared::SS->new($spath, 1000);

# The Rust program, its output on a pipe (under alarm: it keeps its alarm
# across exec).
STDOUT->flush; STDERR->flush;
my $rust = open(my $from_rust, '-|') // die "fork: $!";
if (!$rust) {
    alarm 60;
    exec $bin, $cpath, $spath, $ROUNDS, 'perl' or do {
        print STDERR "# exec $bin: $!\n";
        POSIX::_exit(127);
    };
}

# The Perl processes: each waits until the Rust program has started (its
# string is there); the first stores its string, which starts the Rust
# program's counting; then they count.
children_ok($PERLS, sub {
    my ($i) = @_;
    my $c = Data::HashMap::Shared::II->new($cpath, 1000);
    my $s = Data::HashMap::Shared::SS->new($spath, 1000);
    my $until = Time::HiRes::time() + 30;
    until (defined $s->get('rust')) {
        die "the Rust program wrote nothing within 30 s\n" if Time::HiRes::time() > $until;
        Time::HiRes::sleep(0.005);
    }
    $s->put('perl', "hello from perl $$") or die "put perl failed\n" if $i == 0;
    $s->put("perl$i", "hello from perl $i") or die "put perl$i failed\n";
    for (1 .. $ROUNDS) {
        $c->incr($_) for 1 .. 4;
    }
}, "$PERLS Perl processes counted $ROUNDS rounds each", alarm => 60);

my @out = <$from_rust>;
close $from_rust;
is($?, 0, 'the Rust program ran to its end') or diag describe_status($?);
note @out;

my $want = $ROUNDS * ($PERLS + 1);
is($counts->get($_), $want, "counter $_ is exact: $want") for 1 .. 4;
is($counts->size, 4, 'four counters, nothing else');

like($texts->get('rust') // '', qr/\Ahello from rust [0-9]+\z/, 'Perl sees the string the Rust program stored');
is($texts->get("perl$_"), "hello from perl $_", "the string of Perl process $_ is there") for 0 .. $PERLS - 1;
my ($saw) = grep { /^saw perl=/ } @out;
like($saw // '', qr/\Asaw perl=hello from perl [0-9]+\n\z/, 'the Rust program saw the string a Perl process stored')
    or diag "its output: @out";
my ($counted) = grep { /^counted / } @out;
like($counted // '', qr/\Acounted $ROUNDS rounds; counters now 1=\d+ 2=\d+ 3=\d+ 4=\d+\n\z/,
    'the Rust program read the counters back');

ok(eval { $counts->verify; $texts->verify; 1 }, 'both maps verify') or diag $@;

done_testing;
