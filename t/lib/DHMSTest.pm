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

1;
