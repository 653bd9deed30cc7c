use strict;
use warnings;
use Test::More;
use Config;
use POSIX ();
use lib 't/lib';
use DHMSTest;

# Pins: the engine's SIGBUS handler and a Perl $SIG{BUS} live together.
# A map file truncated under a live mapping (by another process) makes
# operations croak "truncated" and never runs the Perl handler -- whether
# $SIG{BUS} was set before the map was opened, after it, to 'DEFAULT', or
# by a `local` that has ended. A SIGBUS that is not ours still reaches the
# Perl handler in both orders: one sent with kill, and a real fault on a
# file mapping of the program's own (made with syscall(mmap), where the
# syscall number is known). Without a Perl handler, such a fault kills the
# process as it would without this module.

require Data::HashMap::Shared::SS;
use Data::HashMap::Shared::II;

my %MMAP_NR = (x86_64 => 9, aarch64 => 222);
my ($arch) = $Config{archname} =~ /^([^-]+)/;
my $mmap_nr = $MMAP_NR{$arch};

# Read 8 bytes from the second page of a 2-page file mapping whose file was
# truncated to nothing: a SIGBUS at an address that is not a map's.
sub foreign_fault {
    my ($path) = @_;
    open my $fh, '+>', $path or die "open $path: $!";
    truncate $fh, 8192 or die "truncate: $!";
    my $addr = syscall($mmap_nr, 0, 8192, 1, 1, fileno($fh), 0);    # PROT_READ, MAP_SHARED
    die "mmap: $!" if $addr == -1;
    truncate $fh, 0 or die "truncate: $!";
    my $bytes = unpack 'P8', pack 'Q', $addr + 4096;
    return defined $bytes ? 'read' : 'undef';
}

# A map with data, truncated to its header by a child process while this
# process keeps it mapped; then read every key i (1..2000) with
# $read->($i, $seen), by default $m->get("k$i"): it returns how many of its
# reads croaked and passes their messages to $seen.
# -> (croaks, the first croak's message).
sub truncate_under_us {
    my ($m, $path, $read) = @_;
    $read //= sub {
        my ($i, $seen) = @_;
        return 0 if eval { $m->get("k$i"); 1 };
        $seen->($@);
        return 1;
    };
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        alarm 10;
        truncate $path, 4096 or POSIX::_exit(1);
        POSIX::_exit(0);
    }
    waitpid $pid, 0;
    die "the truncating child failed: $?" if $?;
    my ($croaks, $first) = (0, '');
    for my $i (1 .. 2000) {
        $croaks += $read->($i, sub { $first ||= $_[0] });
    }
    return ($croaks, $first);
}

sub new_map {
    my ($path) = @_;
    my $m = Data::HashMap::Shared::SS->new($path, 10_000);
    $m->put("k$_", 'v' x 100) for 1 .. 2000;
    return $m;
}

for my $when (qw(before after default local)) {
    subtest "\$SIG{BUS} set $when opening the map" => sub {
        my $path = tmp_path("sigbus-$when");
        my ($st, $out) = run_in_child(sub {
            my $ran = 0;
            my $handler = sub { $ran++; die "the Perl SIGBUS handler ran\n" };
            $SIG{BUS} = $handler if $when eq 'before';
            my $m = new_map($path);
            $SIG{BUS} = $handler if $when eq 'after';
            $SIG{BUS} = 'DEFAULT' if $when eq 'default';
            if ($when eq 'local') { local $SIG{BUS} = $handler; }
            my ($croaks, $first) = truncate_under_us($m, $path);
            die "the Perl handler ran $ran times for our faults\n" if $ran;
            my @more;
            if ($when eq 'before' || $when eq 'after') {
                # what is not ours still reaches it
                my $k = eval { kill BUS => $$; my $later = 1; 'returned' } // "died:$@";
                chomp $k;
                push @more, "kill:$ran:$k";
                if ($mmap_nr) {
                    my $r = eval { foreign_fault("$path.other") } // "died:$@";
                    chomp $r;
                    push @more, "fault:$ran:$r";
                }
            }
            return join ' ', "croaks:$croaks", @more, "first:$first";
        }, alarm => 30);
        unlink $path, "$path.other";
        is(describe_status($st), 'exit 0', 'the process survives');
        like($out, qr/\Aok:croaks:2000 /, 'every read of the truncated map croaks, no Perl handler ran')
            or diag $out;
        like($out, qr/first:Data::HashMap::Shared::SS: .*the map file was truncated while in use/,
            '... saying the file was truncated');
        if ($when eq 'before' || $when eq 'after') {
            like($out, qr/ kill:1:died:the Perl SIGBUS handler ran /,
                'a SIGBUS sent with kill reaches the Perl handler');
            SKIP: {
                skip "no mmap syscall number for $arch", 1 unless $mmap_nr;
                like($out, qr/ fault:2:died:the Perl SIGBUS handler ran /,
                    'a SIGBUS fault outside the maps reaches the Perl handler, which can die');
            }
        }
    };
}

# The keywords' own paths (II get reads the table without the generic
# layers): a truncated file croaks there too.
subtest 'keywords on a truncated map' => sub {
    my $path = tmp_path('sigbus-keywords');
    my ($st, $out) = run_in_child(sub {
        my $m = Data::HashMap::Shared::II->new($path, 10_000);
        $m->put($_, $_ * 2) for 1 .. 2000;
        my ($croaks, $first) = truncate_under_us($m, $path, sub {
            my ($k, $seen) = @_;    # a lexical: the op runs the whole keyword
            my $n = 0;
            eval { my $v = shm_ii_get $m, $k; 1 } or do { $seen->($@); $n++ };
            eval { my $e = shm_ii_exists $m, $k; 1 } or $n++;
            return $n;
        });
        return "croaks:$croaks first:$first";
    }, alarm => 30);
    unlink $path;
    is(describe_status($st), 'exit 0', 'the process survives');
    like($out, qr/\Aok:croaks:4000 first:Data::HashMap::Shared::II: .*the map file was truncated while in use/,
        'every keyword get and exists croaks, saying the file was truncated') or diag $out;
};

SKIP: {
    skip "no mmap syscall number for $arch", 1 unless $mmap_nr;
    my $path = tmp_path('sigbus-nohandler');
    my ($st, $out) = run_in_child(sub {
        my $m = new_map($path);
        foreign_fault("$path.other");
        return 'survived';
    }, alarm => 30);
    unlink $path, "$path.other";
    is(describe_status($st), 'killed by signal ' . POSIX::SIGBUS(),
        'without a Perl handler, a fault outside the maps kills the process as usual');
}

done_testing;
