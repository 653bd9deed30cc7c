package DHMSTest;

# The one helper of the Perl test suite: it knows the ten variants, gives
# sample keys and values for each kind, builds the keyword forms of every
# operation (by string eval, so no test holds ten copies of itself), and
# runs forked children on a pipe barrier.

use strict;
use warnings;

use Exporter 'import';
use File::Temp ();
use IO::Handle ();
use POSIX ();
use Test::More ();

our @EXPORT = qw(
    @VARIANTS variant for_each_variant variants
    key_of val_of vkey vval int_range
    forms kw_ops meth_ops kw_run kw_compile ops_for %OPS @COUNTER_OPS forms_with
    croaks_ok usage_croaks_ok croak_msg
    tmp_dir tmp_path slurp spew
    run_children children_ok run_in_child run_in_children spawn_child describe_status
    under_alarm start_child finish_child
);

# A safety net for the parent process: a test that deadlocks is killed
# (prove then reports it as dubious) instead of hanging the run.
my $WATCHDOG = 300;
alarm $WATCHDOG;

# ---- the ten variants (SPEC section 1) -----------------------------------

our @VARIANTS = map {
    my ($name, $prefix, $key, $val) = @$_;
    +{
        name     => $name,
        class    => "Data::HashMap::Shared::$name",
        prefix   => $prefix,
        key      => $key,             # int16 | int32 | int64 | bytes
        val      => $val,             # int16 | int32 | int64 | bytes
        int_key  => $key ne 'bytes',
        int_val  => $val ne 'bytes',
        counters => $val ne 'bytes',  # integer-value variants have counters
    }
} (
    [ I16  => i16  => int16 => 'int16' ],
    [ I32  => i32  => int32 => 'int32' ],
    [ II   => ii   => int64 => 'int64' ],
    [ I16S => i16s => int16 => 'bytes' ],
    [ I32S => i32s => int32 => 'bytes' ],
    [ IS   => is   => int64 => 'bytes' ],
    [ SI16 => si16 => bytes => 'int16' ],
    [ SI32 => si32 => bytes => 'int32' ],
    [ SI   => si   => bytes => 'int64' ],
    [ SS   => ss   => bytes => 'bytes' ],
);
my %BY_NAME = map { $_->{name} => $_ } @VARIANTS;

sub variant { $BY_NAME{ $_[0] } or die "no variant '$_[0]'" }

# variants(key => 'int'|'bytes', val => 'int'|'bytes', counters => 1, only => [names])
sub variants {
    my %f = @_;
    my @v = @VARIANTS;
    @v = grep { ($f{key} eq 'bytes') == ($_->{key} eq 'bytes') } @v if $f{key};
    @v = grep { ($f{val} eq 'bytes') == ($_->{val} eq 'bytes') } @v if $f{val};
    @v = grep { $_->{counters} } @v if $f{counters};
    @v = grep { !$_->{counters} } @v if exists $f{counters} && !$f{counters};
    if ($f{only}) { my %o = map { $_ => 1 } @{ $f{only} }; @v = grep { $o{ $_->{name} } } @v }
    return @v;
}

# for_each_variant { my ($v) = @_; ... } [filter as for variants()];
# Runs the block as one subtest per variant, loading the class first.
sub for_each_variant(&@) {
    my ($code, %filter) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    for my $v (variants(%filter)) {
        Test::More::subtest($v->{name} => sub {
            eval "require $v->{class}; 1" or die $@;
            $code->($v);
        });
    }
}

# ---- sample keys and values ----------------------------------------------

our %RANGE = (
    int16 => [ -32768, 32767 ],
    int32 => [ -2147483648, 2147483647 ],
    int64 => [ -9223372036854775807 - 1, 9223372036854775807 ],
);
sub int_range { @{ $RANGE{ $_[0] } or die "no range for $_[0]" } }

# Distinct for distinct $i (0 <= $i < 30000), and self-describing.
sub key_of {
    my ($kind, $i) = @_;
    return $i - 500                       if $kind eq 'int16';
    return $i * 65537 - 1_000_000         if $kind eq 'int32';
    return $i * 3_000_000_019 - 7         if $kind eq 'int64';
    return "key:$i"                       if $kind eq 'bytes';
    die "kind $kind";
}

sub val_of {
    my ($kind, $i) = @_;
    return ($i * 7) % 30011 - 15000       if $kind eq 'int16';
    return $i * 70001 - 5                 if $kind eq 'int32';
    return $i * -1_000_000_000_039 + 3    if $kind eq 'int64';
    return "val:$i:" . ('x' x ($i % 23))  if $kind eq 'bytes';
    die "kind $kind";
}

sub vkey { key_of($_[0]{key}, $_[1]) }
sub vval { val_of($_[0]{val}, $_[1]) }

# ---- the two calling styles ----------------------------------------------

# Every operation of this issue with its keyword arity (the map included).
our %OPS = (
    put => 3, get => 2, exists => 2, remove => 2, take => 2, get_or_set => 3,
    incr => 2, decr => 2, incr_by => 3,
    size => 1, max_entries => 1, max_size => 1, ttl => 1,
    keys => 1, values => 1, items => 1, to_hash => 1, each => 1, iter_reset => 1,
    clear => 1, capacity => 1, tombstones => 1, mmap_size => 1,
    arena_used => 1, arena_cap => 1, reserve => 2,
    stat_evictions => 1, stat_expired => 1, stat_recoveries => 1,
);
our @COUNTER_OPS = qw(incr decr incr_by);
my %IS_COUNTER = map { $_ => 1 } @COUNTER_OPS;

sub ops_for {
    my ($v) = @_;
    return grep { $v->{counters} || !$IS_COUNTER{$_} } sort keys %OPS;
}

my %KW;
# { op => sub { shm_<prefix>_<op> $_[0], $_[1], ... } } -- each closure is
# the keyword itself, compiled with `use <class>` in scope.
sub kw_ops {
    my ($v) = @_;
    return $KW{ $v->{name} } ||= do {
        my $src = "package DHMSTest::KW::$v->{name};\nuse strict;\nuse warnings;\nuse $v->{class};\n+{\n";
        for my $op (ops_for($v)) {
            my $args = join ', ', map { "\$_[$_]" } 0 .. $OPS{$op} - 1;
            $src .= "    $op => sub { shm_$v->{prefix}_$op $args },\n";
        }
        $src .= "};\n";
        my $ops = eval $src or die "compiling the keywords of $v->{class} failed: $@";
        $ops;
    };
}

sub meth_ops {
    my ($v) = @_;
    return { map { my $op = $_; ($op => sub { my $m = shift; $m->$op(@_) }) } ops_for($v) };
}

# ( [method => {op => sub}], [keyword => {op => sub}] )
sub forms {
    my ($v) = @_;
    return ([ method => meth_ops($v) ], [ keyword => kw_ops($v) ]);
}

# forms_with($v, op => arity, ...): forms() plus further operations (those
# not in %OPS), each as a method closure and as its keyword (arity counts
# the map), compiled with kw_compile.
sub forms_with {
    my ($v, %arity) = @_;
    my ($meth, $kw) = forms($v);
    my %me = %{ $meth->[1] };
    my %k  = %{ $kw->[1] };
    for my $op (sort keys %arity) {
        my $args = join ', ', map { "\$_[$_]" } 0 .. $arity{$op} - 1;
        $k{$op}  = kw_compile($v, "shm_PFX_$op $args");
        $me{$op} = sub { my $m = shift; $m->$op(@_) };
    }
    return ([ method => \%me ], [ keyword => \%k ]);
}

# kw_compile($v, $body): compiles `sub { BODY }` in package main with the
# variant's keywords in scope; PFX in BODY becomes the prefix and CLASS the
# class. Dies with the compile error.
my %COMPILED;
sub kw_compile {
    my ($v, $body) = @_;
    (my $b = $body) =~ s/PFX/$v->{prefix}/g;
    $b =~ s/\bCLASS\b/$v->{class}/g;
    return $COMPILED{"$v->{name}\0$b"} ||= do {
        my $code = eval "package main;\nuse strict;\nuse warnings;\nuse $v->{class};\nsub {\n$b\n}"
            or die "compiling <<$b>> for $v->{name}: $@";
        $code;
    };
}

# kw_run($v, $body, @args): compile (cached) and call with @args.
sub kw_run {
    my ($v, $body, @args) = @_;
    return kw_compile($v, $body)->(@args);
}

# ---- errors ---------------------------------------------------------------

# croaks_ok($v_or_class, sub { ... }, qr/what/, $name): the code dies with
# "Data::HashMap::Shared::X: <what> at FILE line N.\n".
sub croaks_ok {
    my ($v, $code, $re, $name) = @_;
    my $class = ref $v ? $v->{class} : $v;
    my $ok = eval { $code->(); 1 };
    my $err = $@;
    my $tb = Test::More->builder;
    if ($ok) {
        $tb->ok(0, $name);
        $tb->diag("did not die");
        return 0;
    }
    my $good = $err =~ /\A\Q$class\E: / && $err =~ $re && $err =~ / at \S.* line \d+\.\n\z/;
    $tb->ok($good, $name) or $tb->diag("error was: $err", "expected: $class: <$re> at FILE line N.");
    return $good;
}

# usage_croaks_ok($v_or_class, sub { ... }, 'method', $name): a call with the
# wrong number of arguments croaks saying how to call the method: either
# "Data::HashMap::Shared::X: ... method ..." or Perl's XS convention
# "Usage: Data::HashMap::Shared::X::method(...)", at the caller's line.
sub usage_croaks_ok {
    my ($v, $code, $method, $name) = @_;
    my $class = ref $v ? $v->{class} : $v;
    my $tb = Test::More->builder;
    my $err = croak_msg($code);
    my $good = ($err =~ /\AUsage: \Q$class\E::\Q$method\E\(/ || $err =~ /\A\Q$class\E: .*\b\Q$method\E\b/)
        && $err =~ / at \S.* line \d+\.\n\z/;
    $tb->ok($good, $name) or $tb->diag($err eq '' ? 'did not die' : "error was: $err");
    return $good;
}

# The error of a piece of code ('' if it did not die).
sub croak_msg {
    my ($code) = @_;
    return eval { $code->(); 1 } ? '' : "$@";
}

# ---- files ------------------------------------------------------------------

my $DIR;
sub tmp_dir { $DIR //= File::Temp::tempdir('dhms-t-XXXXXX', TMPDIR => 1, CLEANUP => 1) }

my $SEQ = 0;
sub tmp_path {
    my ($base) = @_;
    $base //= 'map';
    $SEQ++;
    return tmp_dir() . "/$base.$$.$SEQ.shm";
}

sub slurp {
    my ($path) = @_;
    open my $fh, '<:raw', $path or die "open $path: $!";
    local $/;
    my $d = <$fh>;
    return $d // '';
}

sub spew {
    my ($path, $data) = @_;
    open my $fh, '>:raw', $path or die "open $path: $!";
    print {$fh} $data or die "write $path: $!";
    close $fh or die "close $path: $!";
}

# ---- processes --------------------------------------------------------------

sub describe_status {
    my ($st) = @_;
    return 'exit 0' if $st == 0;
    return 'killed by signal ' . ($st & 127) . (($st & 127) == 14 ? ' (SIGALRM: timed out)' : '')
        if $st & 127;
    return 'exit ' . ($st >> 8);
}

# run_children($n, sub { my ($i) = @_; ... }, alarm => 30)
# Forks $n children which wait on a pipe barrier and start together when the
# parent closes it. A child that dies (or returns) leaves with
# POSIX::_exit(1) (or 0); each runs under alarm. Returns the wait statuses.
sub run_children {
    my ($n, $code, %opt) = @_;
    my $secs = $opt{alarm} // 30;
    pipe(my $r, my $w) or die "pipe: $!";
    STDOUT->flush; STDERR->flush;
    my @pids;
    for my $i (0 .. $n - 1) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            alarm $secs;
            close $w;
            my $buf;
            sysread $r, $buf, 1;    # EOF when the parent closes its end: go
            my $ok = eval { $code->($i); 1 };
            unless ($ok) {
                print STDERR "# child $i (pid $$) failed: $@";
                POSIX::_exit(1);
            }
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    close $r;
    close $w;    # release the barrier
    my @st;
    for my $pid (@pids) {
        waitpid($pid, 0);
        push @st, $?;
    }
    return @st;
}

# children_ok($n, $code, $name, %opt): all children exited 0.
sub children_ok {
    my ($n, $code, $name, %opt) = @_;
    my @st = run_children($n, $code, %opt);
    my @bad = grep { $st[$_] != 0 } 0 .. $#st;
    my $tb = Test::More->builder;
    $tb->ok(!@bad, $name)
        or $tb->diag(map { "child $_: " . describe_status($st[$_]) } @bad);
    return !@bad;
}

# run_in_child(sub { ... return "summary" }, alarm => 20)
# -> ($wait_status, $output): output is "ok:<returned string>" or
# "died:<error>". For code that might crash or hang the process.
sub run_in_child {
    my ($code, %opt) = @_;
    my ($r) = run_in_children([$code], %opt);
    return @$r;
}

# run_in_children([ sub {...}, ... ], alarm => 20): the same for several
# pieces of code at once, one child each, all running in parallel.
# -> ([$status, $output], ...) in the order given.
sub run_in_children {
    my ($codes, %opt) = @_;
    my $secs = $opt{alarm} // 20;
    STDOUT->flush; STDERR->flush;
    my @kids;
    for my $code (@$codes) {
        pipe(my $r, my $w) or die "pipe: $!";
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            alarm $secs;
            close $r;
            close $_->[1] for @kids;
            my $res = eval { my $x = $code->(); 'ok:' . ($x // '') };
            $res = "died:$@" unless defined $res;
            syswrite $w, $res;
            close $w;
            POSIX::_exit(0);
        }
        close $w;
        push @kids, [ $pid, $r ];
    }
    my @out;
    for my $k (@kids) {
        my ($pid, $r) = @$k;
        local $/;
        my $out = <$r> // '';
        close $r;
        waitpid($pid, 0);
        push @out, [ $?, $out ];
    }
    return @out;
}

# spawn_child(sub { ... }, alarm => 30): forks one child running the code
# (no barrier); returns its pid. The child leaves with POSIX::_exit.
sub spawn_child {
    my ($code, %opt) = @_;
    my $secs = $opt{alarm} // 30;
    STDOUT->flush; STDERR->flush;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        alarm $secs;
        my $ok = eval { $code->(); 1 };
        print STDERR "# child $$ failed: $@" unless $ok;
        POSIX::_exit($ok ? 0 : 1);
    }
    return $pid;
}

# start_child(sub { ... return "summary" }, alarm => 60): forks one child
# that starts at once and runs while the parent goes on (no barrier);
# finish_child($handle) waits for it -> ($wait_status, $output), the output
# as for run_in_child ("ok:<returned string>" or "died:<error>").
sub start_child {
    my ($code, %opt) = @_;
    my $secs = $opt{alarm} // 30;
    STDOUT->flush; STDERR->flush;
    pipe(my $r, my $w) or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        alarm $secs;
        close $r;
        my $res = eval { my $x = $code->(); 'ok:' . ($x // '') };
        $res = "died:$@" unless defined $res;
        syswrite $w, $res;
        close $w;
        POSIX::_exit(0);
    }
    close $w;
    return { pid => $pid, fh => $r };
}

sub finish_child {
    my ($h) = @_;
    my $fh = $h->{fh};
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    waitpid($h->{pid}, 0);
    return ($?, $out);
}

# under_alarm($secs, sub { ... }): runs the code under `alarm $secs` with
# SIGALRM's default action, so that a call blocked inside the engine (where a
# Perl signal handler would never run) kills this test process, which the
# harness then reports. Returns what the code returns.
sub under_alarm {
    my ($secs, $code) = @_;
    local $SIG{ALRM} = 'DEFAULT';
    alarm $secs;
    my @r = eval { $code->() };
    my $err = $@;
    alarm $WATCHDOG;
    die $err if $err;
    return wantarray ? @r : $r[-1];
}

# ---- fuzzing: hostile map files (t/45-fuzz.t, xt/fuzz.t) --------------------
#
# Exported on request only: use DHMSTest qw(:DEFAULT :fuzz);
#   fuzz_seeds()            valid map files of every variant (plain; churned so
#                           that the other table region is active; LRU+TTL with
#                           evictions and expired entries), read into memory
#   fuzz_mutate($seed)      a copy of a seed's bytes with a few mutations
#   fuzz_ops($v, $path)     the fixed operation sequence a fuzz child runs
#   fuzz_run(iters => N)    the loop: mutate, run fuzz_ops in a child under
#                           alarm, fail on a signal, a hang or a bad exit
#   fuzz_replay($name, $f)  runs fuzz_ops on a copy of $f, op by op, on STDERR
# A failing file is kept as /tmp/dhms-fuzz-crash-<n>.map; the test output
# names it, the signal, the mutations and the replay command.

our @FUZZ = qw(fuzz_seeds fuzz_mutate fuzz_ops fuzz_run fuzz_replay fuzz_key fuzz_val);
our @EXPORT_OK = (@FUZZ);
our %EXPORT_TAGS = (fuzz => [@FUZZ]);

# Keys and values of the seeds: some long keys and values (arena blocks of
# several size classes), the rest as vkey/vval.
sub fuzz_key {
    my ($v, $i) = @_;
    return vkey($v, $i) if $v->{int_key} || $i % 5;
    return "key:$i:" . ('K' x (8 + $i * 13 % 200));
}
sub fuzz_val {
    my ($v, $i) = @_;
    return vval($v, $i) if $v->{int_val} || $i % 7;
    return "val:$i:" . ('V' x ($i % 11 == 0 ? 70_000 : 100 + $i * 37 % 3000));
}

sub _fuzz_fill { my ($v, $m, @i) = @_; $m->put(fuzz_key($v, $_), fuzz_val($v, $_)) or die "seed put $_ failed" for @i }

sub fuzz_seeds {
    my @seeds;
    for my $v (@VARIANTS) {
        eval "require $v->{class}; 1" or die $@;
        for my $kind (qw(plain churned lru_ttl)) {
            my $path = tmp_path("fuzz-seed-$v->{name}-$kind");
            if ($kind eq 'plain') {
                my $m = $v->{class}->new($path, 200);
                _fuzz_fill($v, $m, 0 .. 59);
                $m->remove(fuzz_key($v, $_)) for grep { $_ % 3 == 1 } 0 .. 59;    # tombstones, free blocks
                if ($v->{counters}) { $m->incr(fuzz_key($v, 0)); $m->incr_by(fuzz_key($v, 3), 3) }
            }
            elsif ($kind eq 'churned') {
                my $m = $v->{class}->new($path, 2000);
                _fuzz_fill($v, $m, 0 .. 1499);
                $m->remove(fuzz_key($v, $_)) for 40 .. 1499;    # grown, then shrunk
                _fuzz_fill($v, $m, 1500 .. 1519);
            }
            else {
                my $m = $v->{class}->new($path, 200, 50, 3600);
                _fuzz_fill($v, $m, 0 .. 79);                     # 30 evictions
                $m->get(fuzz_key($v, $_)) for 50 .. 60;          # used marks
                $m->put_ttl(fuzz_key($v, $_), fuzz_val($v, $_), 1) for 70 .. 74;    # expired below
                $m->remove(fuzz_key($v, 77));
            }
            push @seeds, { v => $v, kind => $kind, path => $path, name => "$v->{name}/$kind" };
        }
    }
    sleep 2;    # the 1-second entries of the LRU+TTL seeds are expired now
    for my $s (@seeds) {
        $s->{data} = slurp($s->{path});
        my $len = length $s->{data};
        # The pages past the header that hold anything: where mutations of
        # the body are worth making.
        $s->{hot} = [ grep { substr($s->{data}, $_, 4096) =~ /[^\0]/ } map { $_ * 4096 } 1 .. int(($len - 1) / 4096) ];
    }
    return @seeds;
}

my @INTERESTING = (
    0, 1, 2, 3, 4, 7, 8, 15, 16, 17, 24, 32, 63, 64, 127, 128, 255, 256, 4095, 4096, 4097,
    0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff,
    2**32, 2**32 + 1, 2**40, 2**48, 2**62, 2**63, 18446744073709551615, 18446744073709551614,
);

# fuzz_mutate($seed) -> ($bytes, $description)
sub fuzz_mutate {
    my ($seed) = @_;
    my $data = $seed->{data};
    my $hot  = $seed->{hot};
    my $len  = length $data;
    my @did;
    for (1 .. 1 + int rand 4) {
        my ($where, $zone);
        if (rand() < 0.5) {    # the header page; its fields are in the first 2 KiB
            $zone = 'header';
            $where = rand() < 0.75 ? int rand 2048 : int rand 4096;
        }
        elsif (@$hot && rand() < 0.75) {
            $zone = 'body';
            $where = $hot->[ rand @$hot ] + int rand 4096;
        }
        else {
            $zone = 'anywhere';
            $where = 4096 + int rand($len - 4096);
        }
        $where = $len - 1 if $where >= $len;
        my $kind = int rand 6;
        if ($kind == 0) {
            my $o = $where + int rand 8;
            $o = $where if $o >= $len;
            my $bit = int rand 8;
            substr($data, $o, 1) = substr($data, $o, 1) ^ chr(1 << $bit);
            push @did, "flip bit $bit of byte $o ($zone)";
        }
        elsif ($kind == 1) {
            my $n = 1 + int rand 16;
            $n = $len - $where if $where + $n > $len;
            substr($data, $where, $n) = pack 'C*', map { int rand 256 } 1 .. $n;
            push @did, "$n random bytes at $where ($zone)";
        }
        elsif ($kind == 2) {
            my $n = rand() < 0.1 ? 4096 : 1 + int rand 64;
            $n = $len - $where if $where + $n > $len;
            substr($data, $where, $n) = "\0" x $n;
            push @did, "zero $n bytes at $where ($zone)";
        }
        elsif ($kind == 3) {
            my $n = 1 + int rand 256;
            my $src = rand() < 0.5 && @$hot ? $hot->[ rand @$hot ] + int rand 4096 : int rand $len;
            $n = $len - $src if $src + $n > $len;
            $n = $len - $where if $where + $n > $len;
            substr($data, $where, $n) = substr($data, $src, $n);
            push @did, "copy $n bytes from $src to $where ($zone)";
        }
        elsif ($kind == 4) {
            my $w = rand() < 0.7 ? 8 : 4;
            $where -= $where % $w;
            $where = $len - $w if $where + $w > $len;
            my $x = rand() < 0.15 ? $len + int(rand 9) - 4 : $INTERESTING[ rand @INTERESTING ];
            substr($data, $where, $w) = $w == 8 ? pack('Q<', $x) : pack('L<', $x % 2**32);
            push @did, 'u' . $w * 8 . " $x at $where ($zone)";
        }
        else {
            $where -= $where % 8;
            $where = $len - 8 if $where + 8 > $len;
            my $d = (1 + int rand 16) * (rand() < 0.5 ? -1 : 1);
            my $x = unpack 'q<', substr($data, $where, 8);
            $d = -$d if abs($x) > 2**62;    # no overflow
            substr($data, $where, 8) = pack 'q<', $x + $d;
            push @did, sprintf('u64 at %d %+d', $where, $d) . " ($zone)";
        }
    }
    if (rand() < 0.03) {    # the length: truncated or extended
        if (rand() < 0.5) {
            my $n = rand() < 0.5 ? $len - 1 - int rand 4096 : int rand $len;
            $n = 0 if $n < 0;
            substr($data, $n) = '';
            push @did, "truncate to $n";
        }
        else {
            my $n = 1 + int rand 8192;
            $data .= pack 'C*', map { int rand 256 } 1 .. $n;
            push @did, "append $n random bytes";
        }
    }
    return ($data, join '; ', @did);
}

# fuzz_ops($v_or_name, $path, $verbose) -> ($opened, $croaks, [messages])
# The fixed sequence a fuzz child runs on a (possibly hostile) file: every
# step in its own eval (a croak is fine; the next steps still run).
sub fuzz_ops {
    my ($v, $path, $verbose) = @_;
    $v = variant($v) unless ref $v;
    eval "require $v->{class}; 1" or die $@;
    my $croaks = 0;
    my @msgs;
    my $step = sub {
        my ($name, $code) = @_;
        print STDERR "# $name\n" if $verbose;
        return 1 if eval { $code->(); 1 };
        $croaks++;
        push @msgs, "$name: $@";
        print STDERR "#   croaked: $@" if $verbose;
        return 0;
    };
    my $m;
    $step->(new => sub { $m = $v->{class}->new($path, 100) }) or return (0, $croaks, \@msgs);
    $m->wait_timeout(0.3);    # no process is alive in there: no wait may last
    my @k = map { fuzz_key($v, $_) } 0, 1, 2, 3, 5, 7, 10, 14, 35, 55, 70, 72, 77, 1510;
    my $bounded = sub { my ($next) = @_; my $n = 0; while (my @kv = $next->()) { last if ++$n > 10_000 } $n };
    $step->(get => sub { $m->get($_) for @k });
    $step->(exists => sub { $m->exists($_) for @k });
    $step->(stats => sub { $m->size; $m->capacity; $m->tombstones; $m->arena_used; $m->mmap_size; $m->stats });
    $step->(put_new => sub { $m->put(fuzz_key($v, 1600), fuzz_val($v, 1600)) });
    $step->(put_over => sub { $m->put($k[1], fuzz_val($v, 7)); $m->put($k[5], fuzz_val($v, 1)) });
    $step->(remove => sub { $m->remove($k[2]); $m->remove($k[6]) });
    if ($v->{counters}) {
        $step->(incr => sub { $m->incr($k[0]); $m->incr_by($k[3], 5); $m->decr(fuzz_key($v, 1601)) });
    }
    $step->(keys => sub { my @x = $m->keys });
    $step->(items => sub { my @x = $m->items });
    $step->(each => sub { $m->iter_reset; $bounded->(sub { $m->each }); $m->iter_reset });
    $step->(to_hash => sub { my $h = $m->to_hash });
    $step->(cursor => sub {
        my $c = $m->cursor;
        $bounded->(sub { $c->next });
        $c->reset;
        $c->seek($k[0]);
        $c->next;
    });
    $step->(get_multi => sub { my @x = $m->get_multi(@k) });
    $step->(take => sub { $m->take($k[4]) });
    $step->(pop => sub { my @x = $m->pop });
    $step->(ttl_ops => sub { $m->ttl_remaining($k[10]); $m->touch($k[9]) });
    $step->(flush_expired => sub { $m->flush_expired; my @x = $m->flush_expired_partial(64) });
    $step->(verify => sub { $m->verify });
    $step->(reserve => sub { $m->reserve(150) });
    $step->(clear => sub { $m->clear });
    $step->(after_clear => sub {
        $m->put(fuzz_key($v, 1602), fuzz_val($v, 1602));
        $m->get(fuzz_key($v, 1602));
        $m->verify;
    });
    return (1, $croaks, \@msgs);
}

# fuzz_replay('SS', $file): the child's sequence on a copy of $file, printing
# each step, for reproducing a failure by hand:
#   perl -Mblib -It/lib -MDHMSTest=:fuzz -e 'fuzz_replay(@ARGV)' SS /tmp/dhms-fuzz-crash-1.map
sub fuzz_replay {
    my ($name, $file) = @_;
    my $copy = tmp_path('fuzz-replay');
    spew($copy, slurp($file));
    STDERR->autoflush(1);
    my ($opened, $croaks) = fuzz_ops($name, $copy, 1);
    print STDERR "# done: opened=$opened croaks=$croaks\n";
}

# The child's memory is capped (RLIMIT_DATA; the map itself is a shared
# mapping and does not count), so that a hostile length cannot take the
# machine down with it; hitting the cap is reported like any crash.
sub _fuzz_cap_memory {
    require Config;
    return unless $Config::Config{archname} =~ /\Ax86_64-linux/;
    my $cap = 4 * 2**30;
    syscall(160, 2, pack('QQ', $cap, $cap));    # setrlimit(RLIMIT_DATA)
}

sub _fuzz_crash_path {
    my ($what) = @_;
    $what //= 'crash';
    my $n = 1;
    $n++ while -e "/tmp/dhms-fuzz-$what-$n.map";
    return "/tmp/dhms-fuzz-$what-$n.map";
}

# fuzz_run(iters => N, jobs => J, alarm => 10, label => 'fuzz', seed => S)
# Runs the loop as one test (ok: no iteration crashed or hung) and diags the
# numbers; returns { iters, opened, croaks, failures => [...] }.
sub fuzz_run {
    my (%o) = @_;
    my $iters = $o{iters} // 300;
    my $jobs  = $o{jobs} // 2;
    my $secs  = $o{alarm} // 10;
    my $label = $o{label} // 'fuzz';
    my $seed  = $o{seed} // (time ^ ($$ << 8)) % 2**31;
    my $tb = Test::More->builder;
    srand $seed;
    my @seeds = $o{seeds} ? @{ $o{seeds} } : fuzz_seeds();
    $tb->note("$label: master seed $seed (FUZZ_SEED=$seed repeats the run), "
        . scalar(@seeds) . " seed files, $iters iterations, $jobs at a time");
    my %run;
    my %free = map { $_ => 1 } 0 .. $jobs - 1;
    my (%stat, @fail, %msg, @panic_files);
    @stat{qw(iters opened croaks panics)} = (0, 0, 0, 0);
    my $t0 = time;
    my $reap = sub {
        my $pid = waitpid(-1, 0);
        return if $pid <= 0;
        my $st = $?;
        my $r = delete $run{$pid} or return;
        $free{ $r->{job} } = 1;
        my $out = do { local $/; my $fh = $r->{fh}; <$fh> } // '';
        close $r->{fh};
        $stat{iters}++;
        alarm 120;    # the parent's watchdog, re-armed while iterations finish
        my ($opened, $croaks) = $out =~ /\Aopened=(\d) croaks=(\d+)\n/;
        if ($st != 0 || !defined $opened) {
            my $keep = _fuzz_crash_path();
            spew($keep, $r->{data});    # the file as the child found it
            my $what = describe_status($st);
            $what = "hung (killed by SIGALRM after $secs s)" if ($st & 127) == 14;
            $what = 'exited without reporting' if $st == 0;
            push @fail, "iteration $r->{iter} ($r->{seed}{name}): $what; kept as $keep; mutations: $r->{mut}; "
                . "replay: perl -Mblib -It/lib -MDHMSTest=:fuzz -e 'fuzz_replay(\@ARGV)' $r->{seed}{v}{name} $keep";
            return;
        }
        $stat{opened} += $opened;
        $stat{croaks} += $croaks;
        my $panicked;
        for my $line (grep { /^msg / } split /\n/, $out) {
            (my $m = $line) =~ s/^msg //;
            if ($m =~ /panic|internal error/i) {    # a caught panic: not a crash, but a bug to report
                $stat{panics}++;
                $panicked //= $m;
            }
            $m =~ s{/\S+}{PATH}g;
            $m =~ s/\d+/N/g;
            $msg{$m}++;
        }
        if ($panicked && @panic_files < 5) {
            my $keep = _fuzz_crash_path('panic');
            spew($keep, $r->{data});
            push @panic_files, "iteration $r->{iter} ($r->{seed}{name}): $panicked; kept as $keep; mutations: $r->{mut}";
        }
    };
    for my $iter (1 .. $iters) {
        $reap->() while !%free;
        my ($job) = sort keys %free;
        delete $free{$job};
        my $s = $seeds[ rand @seeds ];
        my ($data, $mut) = fuzz_mutate($s);
        my $file = tmp_dir() . "/fuzz-$$-job$job.map";
        unlink $file;
        spew($file, $data);
        pipe(my $r, my $w) or die "pipe: $!";
        STDOUT->flush; STDERR->flush;
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            alarm $secs;
            close $r;
            _fuzz_cap_memory();
            my ($opened, $croaks, $msgs) = fuzz_ops($s->{v}, $file);
            my $out = "opened=$opened croaks=$croaks\n";
            $out .= "msg " . ((split /\n/, $_)[0] // '') . "\n" for @$msgs;
            syswrite $w, substr($out, 0, 60_000);
            POSIX::_exit(0);
        }
        close $w;
        $run{$pid} = { iter => $iter, job => $job, fh => $r, file => $file, mut => $mut, seed => $s, data => $data };
    }
    $reap->() while %run;
    alarm $WATCHDOG;
    my $dt = time - $t0;
    $tb->ok(!@fail, "$label: $stat{iters} mutated files, no crash and no hang")
        or $tb->diag(map { "FAILED $_\n" } @fail);
    $tb->diag(sprintf "%s: %d iterations in %ds, %d opened, %d croaks (%d internal errors: caught panics), %d failures",
        $label, $stat{iters}, $dt, $stat{opened}, $stat{croaks}, $stat{panics}, scalar @fail);
    my @top = (sort { $msg{$b} <=> $msg{$a} || $a cmp $b } keys %msg);
    $tb->note("  $msg{$_} x $_") for @top[0 .. ($#top < 14 ? $#top : 14)];
    $tb->diag("  caught panic: $_") for @panic_files;
    return { %stat, failures => \@fail };
}

# ---- every operation on one map (t/80-anonymous-memfd.t, t/81-sharded.t) ----

push @EXPORT, qw(exercise_map exercise_forms walk_pairs exactly_once_ok);

# exercise_forms($v): ([style => {op => sub}], ...) for the method and the
# keyword style, with every per-key, whole-map and cursor operation
# (cursor_next/_reset/_seek take the cursor; as methods they are
# $c->next, $c->reset, $c->seek).
sub exercise_forms {
    my ($v) = @_;
    my %arity = (
        add => 3, update => 3, swap => 3, cas => 4, cas_take => 3,
        pop => 1, shift => 1, drain => 2, flush_expired => 1, cursor => 1,
        flush_expired_partial => 2, touch => 2,
        ($v->{counters} ? (max => 3, min => 3) : ()),
    );
    my ($meth, $kw) = forms_with($v, %arity);
    my %me = (%{ $meth->[1] },
        cursor_next  => sub { $_[0]->next },
        cursor_reset => sub { $_[0]->reset },
        cursor_seek  => sub { $_[0]->seek($_[1]) },
    );
    my %k = (%{ $kw->[1] },
        cursor_next  => kw_compile($v, 'shm_PFX_cursor_next $_[0]'),
        cursor_reset => kw_compile($v, 'shm_PFX_cursor_reset $_[0]'),
        cursor_seek  => kw_compile($v, 'shm_PFX_cursor_seek $_[0], $_[1]'),
    );
    return ([ method => \%me ], [ keyword => \%k ]);
}

# walk_pairs($next, $limit): calls $next->() until it returns () (or more
# than $limit pairs came) -> [[k, v], ...].
sub walk_pairs {
    my ($next, $limit) = @_;
    my @r;
    while (my ($k, $x) = $next->()) {
        push @r, [ $k, $x ];
        last if @r > $limit;
    }
    return \@r;
}

# exactly_once_ok(\@pairs, \%want, $name, \%allowed): every key of %want
# exactly once with its value; anything else must be in %allowed (key =>
# value) and come with that value.
sub exactly_once_ok {
    my ($pairs, $want, $name, $allowed) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $allowed ||= {};
    my (%seen, @dup, @wrong);
    for my $p (@$pairs) {
        my ($k, $x) = @$p;
        push @dup, $k if $seen{$k}++ && exists $want->{$k};
        my $w = exists $want->{$k} ? $want->{$k} : $allowed->{$k};
        push @wrong, $k unless defined $w && defined $x && $w eq $x;
    }
    my @missing = grep { !$seen{$_} } keys %$want;
    my $tb = Test::More->builder;
    my $ok = !@dup && !@wrong && !@missing;
    $tb->ok($ok, $name) or $tb->diag(sprintf "%d returned, %d wanted; duplicates: %s; wrong or foreign: %s; missing: %s",
        scalar @$pairs, scalar keys %$want,
        map { @$_ ? join(' ', (sort @$_)[0 .. ($#$_ < 9 ? $#$_ : 9)]) . (@$_ > 10 ? ' ...' : '') : 'none' } \@dup, \@wrong, \@missing);
    return $ok;
}

# exercise_map($v, $map, $label): every operation of SPEC section 5 (but
# the TTL ones) on an empty map with max_entries >= 200 and neither LRU nor
# TTL, once in each calling style, as subtests; leaves the map empty.
sub exercise_map {
    my ($v, $m, $label) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    for my $form (exercise_forms($v)) {
        my ($style, $op) = @$form;
        Test::More::subtest("$label ($style)" => sub { _exercise($v, $m, $op) });
    }
}

sub _exercise {
    my ($v, $m, $op) = @_;
    my $N = 120;
    my $k = sub { vkey($v, $_[0]) };
    my $x = sub { vval($v, $_[0]) };
    my $is  = \&Test::More::is;
    my $ok  = \&Test::More::ok;
    my $isd = \&Test::More::is_deeply;
    my $str = sub { defined $_[0] ? "$_[0]" : undef };

    $is->($op->{size}->($m), 0, 'starts empty');
    my @failed = grep { !$op->{put}->($m, $k->($_), $x->($_)) } 0 .. $N - 1;
    $isd->(\@failed, [], "put $N keys");
    $is->($op->{size}->($m), $N, "size $N");
    my @bad = grep { ($str->($op->{get}->($m, $k->($_))) // "\0undef") ne $x->($_) } 0 .. $N - 1;
    $isd->(\@bad, [], 'get returns every value');
    $ok->($op->{exists}->($m, $k->(5)), 'exists: present');
    $ok->(!$op->{exists}->($m, $k->($N + 50)), 'exists: missing');
    $is->($op->{get}->($m, $k->($N + 50)), undef, 'get: missing is undef');
    $ok->($op->{put}->($m, $k->(3), $x->(1003)), 'put over an existing key');
    $is->($str->($op->{get}->($m, $k->(3))), $x->(1003), '... reads back');
    $op->{put}->($m, $k->(3), $x->(3));
    $is->($op->{size}->($m), $N, '... size unchanged');

    my %want = map { ($k->($_) => $x->($_)) } 0 .. $N - 1;
    $isd->([ sort map { "$_" } $op->{keys}->($m) ], [ sort keys %want ], 'keys');
    $isd->([ sort map { "$_" } $op->{values}->($m) ], [ sort values %want ], 'values');
    my @items = $op->{items}->($m);
    $is->(scalar @items, 2 * $N, 'items: flat pairs');
    exactly_once_ok([ map { [ @items[ 2 * $_, 2 * $_ + 1 ] ] } 0 .. $N - 1 ], \%want, 'items: every entry once');
    my $h = $op->{to_hash}->($m);
    $isd->({ map { ($_ => "$h->{$_}") } keys %$h }, \%want, 'to_hash');

    $op->{iter_reset}->($m);
    exactly_once_ok(walk_pairs(sub { $op->{each}->($m) }, 10 * $N), \%want, 'each: every entry once, then ()');
    my @again = $op->{each}->($m);
    $is->(scalar @again, 2, 'each starts over after the end');
    $op->{iter_reset}->($m);
    my @first = $op->{each}->($m);
    $is->(scalar @first, 2, 'iter_reset restarts');
    $op->{iter_reset}->($m);

    my $c = $op->{cursor}->($m);
    exactly_once_ok(walk_pairs(sub { $op->{cursor_next}->($c) }, 10 * $N), \%want, 'cursor: every entry once');
    my @end = $op->{cursor_next}->($c);
    $is->(scalar @end, 0, 'cursor stays at the end');
    $op->{cursor_reset}->($c);
    exactly_once_ok(walk_pairs(sub { $op->{cursor_next}->($c) }, 10 * $N), \%want, 'cursor_reset: every entry once again');
    $ok->($op->{cursor_seek}->($c, $k->(17)), 'cursor_seek: present key');
    my ($sk, $sx) = $op->{cursor_next}->($c);
    $is->($str->($sk), "" . $k->(17), '... the next step returns it');
    $is->($str->($sx), $x->(17), '... with its value');
    $ok->(!$op->{cursor_seek}->($c, $k->($N + 50)), 'cursor_seek: missing key is false');

    $ok->($op->{remove}->($m, $k->(0)), 'remove');
    $ok->(!$op->{remove}->($m, $k->(0)), 'remove again is false');
    $is->($str->($op->{take}->($m, $k->(1))), $x->(1), 'take returns the value');
    $is->($op->{take}->($m, $k->(1)), undef, 'take again is undef');
    $is->($str->($op->{get_or_set}->($m, $k->(2), $x->(500))), $x->(2), 'get_or_set: existing');
    $is->($str->($op->{get_or_set}->($m, $k->(0), $x->(500))), $x->(500), 'get_or_set: stores');
    $is->($str->($op->{get}->($m, $k->(0))), $x->(500), '... stored');
    $ok->(!$op->{add}->($m, $k->(2), $x->(501)), 'add: present is false');
    $ok->($op->{add}->($m, $k->(1), $x->(1)), 'add: absent is true');
    $ok->($op->{update}->($m, $k->(2), $x->(502)), 'update: present is true');
    $ok->(!$op->{update}->($m, $k->($N + 50), $x->(1)), 'update: absent is false');
    $ok->(!$op->{exists}->($m, $k->($N + 50)), '... and stores nothing');
    $is->($str->($op->{swap}->($m, $k->(2), $x->(2))), $x->(502), 'swap returns the previous value');
    $is->($op->{swap}->($m, $k->($N + 1), $x->($N + 1)), undef, 'swap: fresh insert returns undef');
    $is->($str->($op->{get}->($m, $k->($N + 1))), $x->($N + 1), '... and stores');
    $op->{remove}->($m, $k->($N + 1));
    $ok->($op->{cas}->($m, $k->(2), $x->(2), $x->(602)), 'cas: expected value');
    $ok->(!$op->{cas}->($m, $k->(2), $x->(2), $x->(702)), 'cas: other value is false');
    $is->($str->($op->{get}->($m, $k->(2))), $x->(602), '... value of the successful cas');
    $is->($op->{cas_take}->($m, $k->(2), $x->(2)), undef, 'cas_take: other value is undef');
    $is->($str->($op->{cas_take}->($m, $k->(2), $x->(602))), $x->(602), 'cas_take: expected value');
    $ok->(!$op->{exists}->($m, $k->(2)), '... removed');
    $op->{put}->($m, $k->($_), $x->($_)) for 0 .. 2;
    if ($v->{counters}) {
        my $ck = $k->($N + 10);
        $is->($op->{incr}->($m, $ck), 1, 'incr of a new key');
        $is->($op->{incr}->($m, $ck), 2, 'incr');
        $is->($op->{decr}->($m, $ck), 1, 'decr');
        $is->($op->{incr_by}->($m, $ck, 5), 6, 'incr_by');
        $is->($op->{max}->($m, $ck, 10), 10, 'max');
        $is->($op->{min}->($m, $ck, 3), 3, 'min');
        $is->($op->{get}->($m, $ck), 3, '... stored');
        $op->{remove}->($m, $ck);
    }
    $is->($op->{size}->($m), $N, "size $N again");

    $is->($m->set_multi(map { ($k->($N + $_), $x->($N + $_)) } 0 .. 9), 10, 'set_multi: count stored');
    my @g = $m->get_multi($k->($N + 3), $k->($N + 900), $k->(5), $k->($N + 7), $k->(5));
    $isd->([ map { $str->($_) } @g ], [ $x->($N + 3), undef, $x->(5), $x->($N + 7), $x->(5) ],
        'get_multi: values in argument order, undef for a missing key');
    $is->($m->remove_multi(map { $k->($N + $_) } 0 .. 9, 900), 10, 'remove_multi: count removed');
    $is->($op->{size}->($m), $N, "size $N after the batches");

    my %gone;
    my @p = $op->{pop}->($m);
    $is->(scalar @p, 2, 'pop returns (k, v)');
    $gone{ $p[0] } = $p[1];
    my @s = $op->{shift}->($m);
    $is->(scalar @s, 2, 'shift returns (k, v)');
    $gone{ $s[0] } = $s[1];
    my @d = $op->{drain}->($m, 5);
    $is->(scalar @d, 10, 'drain 5: 5 flat pairs');
    $gone{ $d[ 2 * $_ ] } = $d[ 2 * $_ + 1 ] for 0 .. 4;
    $is->(scalar keys %gone, 7, 'pop, shift and drain removed 7 distinct entries');
    $isd->({ map { ($_ => "$gone{$_}") } keys %gone }, { map { ($_ => $want{$_}) } keys %gone }, '... with their values');
    $isd->([ grep { $op->{exists}->($m, $_) } keys %gone ], [], '... all gone from the map');
    $is->($op->{size}->($m), $N - 7, 'size after pop, shift, drain');
    $op->{put}->($m, $_, $gone{$_}) for keys %gone;

    my $me = $op->{max_entries}->($m);
    $ok->($op->{reserve}->($m, $me), 'reserve max_entries');
    $ok->(!$op->{reserve}->($m, $me + 1), 'reserve more than max_entries is false');
    $is->($op->{flush_expired}->($m), 0, 'flush_expired: nothing expired');
    $ok->($m->verify, 'verify');
    $ok->($m->sync, 'sync');
    my $st = $m->stats;
    $is->($st->{size}, $N, 'stats size');
    $is->($st->{capacity}, $op->{capacity}->($m), 'stats capacity');
    $is->($st->{frozen}, 0, 'stats frozen 0');
    $ok->($op->{capacity}->($m) >= $N, 'capacity >= size');
    $ok->($op->{mmap_size}->($m) > 0, 'mmap_size > 0');
    $ok->(!$m->frozen, 'not frozen');
    $ok->(!$m->readonly, 'not readonly');

    $op->{clear}->($m);
    $is->($op->{size}->($m), 0, 'clear: size 0');
    $isd->([ $op->{keys}->($m) ], [], 'clear: no keys');
    $is->($op->{get}->($m, $k->(5)), undef, 'clear: get is undef');
    $op->{iter_reset}->($m);
    $isd->([ $op->{each}->($m) ], [], 'clear: each is ()');
    $isd->([ $op->{cursor_next}->($op->{cursor}->($m)) ], [], 'clear: cursor is ()');
    $ok->($op->{put}->($m, $k->(9), $x->(9)), 'put after clear');
    $is->($str->($op->{get}->($m, $k->(9))), $x->(9), '... reads back');
    $op->{clear}->($m);
}

1;
