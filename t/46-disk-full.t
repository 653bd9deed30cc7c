#!perl
# A full file system never costs data (SPEC section 7): space is allocated
# before the map first writes to it; when the system refuses, put and its
# kin return false, operations that must store croak "no space left on the
# device for PATH", every entry stored before stays readable in every
# process, verify passes, and writes resume once there is room again.
#
# Without root: a file size limit (RLIMIT_FSIZE, set with prlimit(1) on the
# child itself) refuses the file's growth with EFBIG and SIGXFSZ, which must
# not kill the process. As root: a 4 MiB tmpfs refuses table growth too.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use DHMSTest;

eval "require $_->{class}; 1" or die $@ for @VARIANTS;

my $PRLIMIT = (grep { -x "$_/prlimit" } qw(/usr/bin /bin /usr/sbin /sbin))[0];

sub fsize_limit {
    my ($soft) = @_;
    system("$PRLIMIT/prlimit", "--pid=$$", "--fsize=$soft:unlimited") == 0
        or die "prlimit failed: $?";
}

# Fill with $len-byte values (method and keyword forms in turn) until a put
# says false; returns how many went in. A put must never croak for space.
sub fill {
    my ($v, $m, $from, $len) = @_;
    my $kput = kw_compile($v, 'shm_PFX_put $_[0], $_[1], $_[2]');
    my $i = $from;
    while (1) {
        my $ok = $i % 2 ? $m->put(vkey($v, $i), 'v' x $len) : $kput->($m, vkey($v, $i), 'v' x $len);
        last unless $ok;
        die "the limit never refused a put" if ++$i > $from + 5_000_000;
    }
    return $i - $from;
}

SKIP: {
    skip 'prlimit(1) is not installed', 1 unless $PRLIMIT;
    for my $v (variants(val => 'bytes', only => [qw(SS IS)])) {
        subtest "$v->{name}: a file size limit" => sub {
            my $path = tmp_path($v->{name});
            $v->{class}->new($path, 100_000);    # created here, filled in the child
            my $size0 = -s $path;
            my ($st, $out) = run_in_child(sub {
                my $m = $v->{class}->new($path, 100_000);
                fsize_limit($size0 + (1 << 20));
                my $n = fill($v, $m, 0, 1000);
                die "only $n values fit in 1 MiB" if $n < 100;
                my @err;
                push @err, croak_msg(sub { $m->swap(vkey($v, 90_000), 'w' x 5000) });
                push @err, croak_msg(sub { $m->set_multi(map { (vkey($v, 90_000 + $_), 'x' x 5000) } 1 .. 50) });
                for my $e (@err) {
                    die "expected a no-space croak, got: $e"
                        unless $e =~ /\A\Q$v->{class}\E: no space left on the device for \Q$path\E \(ftruncate: File too large\)/;
                }
                # get_or_set cannot store: undef, not a croak
                die 'get_or_set stored' if defined $m->get_or_set(vkey($v, 90_100), 'y' x 5000);
                # everything stored is intact; removes and short overwrites work
                $m->get(vkey($v, $_)) eq 'v' x 1000 or die "value $_ changed" for 0 .. $n - 1;
                $m->remove(vkey($v, 0)) or die 'remove failed';
                $m->put(vkey($v, 1), 'short') or die 'short overwrite failed';
                $m->verify or die 'verify failed';
                # room again: writes resume
                fsize_limit('unlimited');
                $m->put(vkey($v, $_), 'v' x 1000) or die "put $_ after the limit" for $n .. $n + 99;
                $m->swap(vkey($v, 90_000), 'w' x 5000);
                return $n + 100;
            }, alarm => 60);
            is($st, 0, 'the child was not killed (SIGXFSZ is held off)');
            my ($n) = $out =~ /\Aok:(\d+)\z/ or diag $out;
            ok($n, 'the child filled the map, met the limit and resumed') or return;
            my $m = $v->{class}->new($path, 100_000);
            is($m->get(vkey($v, 0)), undef, 'the removed entry is gone');
            is($m->get(vkey($v, 1)), 'short', 'the overwrite is there');
            my @bad = grep { ($m->get(vkey($v, $_)) // '') ne 'v' x 1000 } 2 .. $n - 1;
            is(scalar @bad, 0, 'another process reads every other entry') or diag "missing: @bad[0..9]";
            is($m->get(vkey($v, 90_000)), 'w' x 5000, 'the swap after the limit was lifted');
            ok($m->verify, 'verify passes');
        };
    }
}

SKIP: {
    my $dir = tmp_dir() . '/tmpfs';
    mkdir $dir;
    skip 'mounting a tmpfs needs root', 1
        unless $> == 0 && system("mount -t tmpfs -o size=4m tmpfs $dir 2>/dev/null") == 0;
    my $guard = bless [$dir], 'Umount';
    for my $v (map { variant($_) } qw(II SI)) {
        subtest "$v->{name}: a full 4 MiB tmpfs" => sub {
            spew("$dir/ballast", 'b' x (2 << 20));    # freed at the end: room again
            my $path = "$dir/$v->{name}.map";
            my $m = $v->{class}->new($path, 10_000_000);
            my $kput = kw_compile($v, 'shm_PFX_put $_[0], $_[1], $_[2]');
            my $n = 0;
            $n++ while $kput->($m, vkey($v, $n), $n) && $n < 10_000_000;
            cmp_ok($n, '>', 1000, "$n entries went in before the file system was full");
            my $incr = kw_compile($v, 'shm_PFX_incr $_[0], $_[1]');
            croaks_ok($v, sub { $incr->($m, vkey($v, $n + 1)) },
                qr/no space left on the device for \Q$path\E \(fallocate: No space left on device\)/,
                'a counter that must insert croaks, naming the path and the reason');
            is($incr->($m, vkey($v, 3)), 4, 'a counter on an existing key still works');
            my ($st, $out) = run_in_child(sub {
                my $r = $v->{class}->new($path, 10_000_000);
                my @bad = grep { ($r->get(vkey($v, $_)) // -1) != ($_ == 3 ? 4 : $_) } 0 .. $n - 1;
                return scalar @bad;
            });
            is($out, 'ok:0', 'another process reads every entry');
            ok($m->verify, 'verify passes on the full file system');
            ok($m->remove(vkey($v, 5)), 'remove works');
            unlink "$dir/ballast";
            ok($m->put(vkey($v, $_), $_), "put $_ once there is room") for $n .. $n + 2;
            ok($m->verify, 'verify passes after the writes resumed');
            undef $m;
            unlink $path;
        };
    }
}

done_testing;

package Umount;
sub DESTROY { system('umount', $_[0][0]) }
