use strict;
use warnings;
use Test::More;
use lib 't/lib';
use DHMSTest;

# Pins DESIGN invariant 1 / SPEC section 7 as seen from Perl: while one
# process writes (overwrites with values of changing length, removes,
# re-inserts, and grows and shrinks the table), readers in other processes
# never see a torn value, never miss an entry that is present the whole
# time, and never block. Values describe themselves (key index, round and a
# length derived from both), so a torn read names what broke.

eval "require $_->{class}; 1" or die $@ for @VARIANTS;

my $KEYS   = 200;
my $STABLE = 300;
my $ROUNDS = 25_000;

sub sval { my ($j, $r) = @_; "j=$j;r=$r;" . ('#' x (($j * 11 + $r * 7) % 300)) . ';end' }
sub sval_ok {
    my ($j, $v) = @_;
    return $v =~ /\Aj=(\d+);r=(\d+);(#*);end\z/ && $1 == $j && length($3) == ($j * 11 + $2 * 7) % 300;
}
sub ival { my ($j, $r) = @_; $j * 1_000_000_000 + $r }
sub ival_ok { my ($j, $v) = @_; $v =~ /\A\d+\z/ && int($v / 1_000_000_000) == $j }

for my $name (qw(SS II SI IS)) {
    my $v = variant($name);
    my $path = tmp_path("reads-$name");
    my $m = $v->{class}->new($path, 200_000);
    my $key    = sub { $v->{int_key} ? 1_000_000 + $_[0] : "r:$_[0]" };
    my $skey   = sub { $v->{int_key} ? 5_000_000 + $_[0] : "stable:$_[0]" };
    my $fkey   = sub { $v->{int_key} ? 9_000_000 + $_[0] : "filler:$_[0]" };
    my $val    = $v->{int_val} ? \&ival : \&sval;
    my $val_ok = $v->{int_val} ? \&ival_ok : \&sval_ok;
    my $done   = $v->{int_key} ? -1 : 'done';
    $m->put($skey->($_), $val->($_, 0)) for 0 .. $STABLE - 1;
    $m->put($key->($_), $val->($_, 0)) for 0 .. $KEYS - 1;

    children_ok(3, sub {
        my ($i) = @_;
        my $h = $i == 1 ? $m : $v->{class}->new($path, 1);
        my $ops = kw_ops($v);
        if ($i == 0) {    # the writer
            srand(99);
            my $filler = 0;
            for my $r (1 .. $ROUNDS) {
                my $j = int rand $KEYS;
                if ($r % 7 == 0) {
                    $ops->{remove}->($h, $key->($j));
                    $ops->{put}->($h, $key->($j), $val->($j, $r)) or die "writer: re-put failed\n";
                }
                else {
                    $ops->{put}->($h, $key->($j), $val->($j, $r)) or die "writer: put failed\n";
                }
                # grow the table by thousands of entries, then shrink it again
                if ($r % 5000 == 1000) {
                    $ops->{put}->($h, $fkey->($_), $val->($_, $r)) for $filler .. $filler + 3999;
                }
                if ($r % 5000 == 3500) {
                    $ops->{remove}->($h, $fkey->($_)) for $filler .. $filler + 3999;
                    $filler += 4000;
                }
            }
            $ops->{put}->($h, $done, $v->{int_val} ? 1 : 'yes');
            return;
        }
        # readers
        srand($i);
        my ($reads, $loops) = (0, 0);
        while (!$ops->{exists}->($h, $done)) {
            die "reader $i: the writer never finished\n" if ++$loops > 5_000_000;
            my $j = int rand $KEYS;
            my $g = $ops->{get}->($h, $key->($j));
            # present but for the instant of a remove + re-put
            die "reader $i: torn value for key $j: $g\n" if defined $g && !$val_ok->($j, $g);
            my $s = int rand $STABLE;
            my $sg = $ops->{get}->($h, $skey->($s));
            die "reader $i: stable key $s missing\n" unless defined $sg;
            die "reader $i: stable key $s reads $sg\n" unless $sg eq $val->($s, 0);
            die "reader $i: exists misses stable key $s\n" unless $ops->{exists}->($h, $skey->($s));
            $reads++;
        }
        die "reader $i: no reads happened\n" unless $reads;
        print STDERR "# $name reader $i: $reads reads\n" if $ENV{TEST_VERBOSE};
    }, "$name: one writer and two lock-free readers: no torn value, no missed entry", alarm => 90);

    my @bad = grep { !$val_ok->($_, $m->get($key->($_)) // '') } 0 .. $KEYS - 1;
    is(scalar(@bad), 0, "$name: every key ends with a complete value");
    is(scalar(grep { ($m->get($skey->($_)) // '') ne $val->($_, 0) } 0 .. $STABLE - 1), 0, "$name: stable keys intact");
    is($m->size, $KEYS + $STABLE + 1, "$name: size is what the writer left");
}

done_testing;
