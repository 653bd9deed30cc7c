package Data::HashMap::Shared;

use strict;
use warnings;

our $VERSION = '1.00';

require XSLoader;
XSLoader::load('Data::HashMap::Shared', $VERSION);

# tie %h, 'Data::HashMap::Shared::X', ...: one TIEHASH, given by this loop
# to every variant class the XS defined (those with a new); the tied hash
# itself is a Data::HashMap::Shared::Tie.
require Data::HashMap::Shared::Tie;
for my $entry (keys %Data::HashMap::Shared::) {
    my ($name) = $entry =~ /^(\w+)::\z/ or next;
    my $class = "Data::HashMap::Shared::$name";
    no strict 'refs';
    next unless defined &{"${class}::new"};
    *{"${class}::TIEHASH"} = \&Data::HashMap::Shared::Tie::tiehash;
}

# The import and unimport of the ten variant packages: enable (or disable)
# the variant's shm_<prefix>_* keywords in the scope being compiled.
sub _enable_keywords {
    my ($package, $caller_class, @args) = @_;
    if (@args) {
        require Carp;
        Carp::croak("$package exports nothing; 'use $package;' enables its keywords");
    }
    $^H{ _hintkey($package) } = 1;
    return;
}

sub _disable_keywords {
    my ($package) = @_;
    delete $^H{ _hintkey($package) };
    return;
}

sub _hintkey {
    my ($package) = @_;
    my ($name) = $package =~ /^Data::HashMap::Shared::(\w+)\z/
        or die "Data::HashMap::Shared: internal error: not a variant package: $package";
    return 'Data::HashMap::Shared/' . lc $name;
}

1;
__END__

=encoding utf8

=head1 NAME

Data::HashMap::Shared - typed hash maps in a shared memory-mapped file, for many processes

=head1 SYNOPSIS

    use Data::HashMap::Shared::II;    # int64 keys => int64 values
    use Data::HashMap::Shared::SS;    # byte-string keys => byte-string values

    # create the file, or attach to it if it exists
    my $map = Data::HashMap::Shared::II->new('/tmp/counts.shm', 100_000);

    # keywords: compiled to custom ops, the fast path
    shm_ii_put $map, 42, 100;
    my $v = shm_ii_get $map, 42;          # 100
    shm_ii_incr $map, 42;                 # 101
    shm_ii_incr_by $map, 42, -10;         # 91

    # methods: the same operations
    $map->put(7, 49);
    my $w = $map->get(7);
    my @keys = $map->keys;

    # every process that opens the file sees the same map
    if (my $pid = fork // die "fork: $!") {
        waitpid $pid, 0;
        print shm_ii_get($map, 1), "\n";  # 1, set by the child
    }
    else {
        shm_ii_incr $map, 1;              # the handle survives fork
        exit 0;
    }

    my $names = Data::HashMap::Shared::SS->new('/tmp/names.shm', 1000);
    shm_ss_put $names, 'alice', 'Alice Liddell';
    while (my ($k, $name) = shm_ss_each $names) { print "$k: $name\n" }

    # or as a Perl hash
    tie my %name_of, 'Data::HashMap::Shared::SS', '/tmp/names.shm', 1000;
    print "$_ is $name_of{$_}\n" for sort keys %name_of;

=head1 DESCRIPTION

A Data::HashMap::Shared map lives in a file that every process maps with
C<mmap(MAP_SHARED)> (or in shared memory without a name, or split over
several files: L</CONSTRUCTORS>): a change made by one process is visible
to all others at once, without messages or copies. Keys and values have fixed types, one
class per combination (L</VARIANTS>). Reads take no lock; writes take one
short writer lock; a process that dies at any moment, even holding the
lock, never blocks or corrupts the map for the others (L</CONCURRENCY>).

The map engine is written in Rust and linked into this module; this module
is its Perl face. Linux and a 64-bit Perl are required.

Each operation exists in two forms. B<Keywords>, enabled in a lexical scope
by C<use Data::HashMap::Shared::I<X>;>, compile to their own op and are the
fastest way in. B<Methods> (C<< $map->get($k) >>) do the same through a
normal sub call and need no C<use> of the variant package. A map can also
be used as a Perl hash through C<tie> (L</"TIED HASHES">).

L<Data::HashMap::Shared::Cookbook> has complete programs for common jobs:
counters across pre-forked workers, an LRU and TTL cache, a rate limiter,
a leaderboard, feature flags, a work queue, heartbeats, cross-process
memoization. The command-line tool L<hashmap-shared> shows and edits a
map file while programs use it (L</"COMMAND-LINE TOOL">).

It replaces the C implementation of Data::HashMap::Shared (0.17 to 0.23)
without changes to the code that uses it; L</MIGRATING> lists the
deliberate differences and what each may ask of you.

=head1 VARIANTS

    class                        keywords     key          value
    Data::HashMap::Shared::I16   shm_i16_*    int16        int16
    Data::HashMap::Shared::I32   shm_i32_*    int32        int32
    Data::HashMap::Shared::II    shm_ii_*     int64        int64
    Data::HashMap::Shared::I16S  shm_i16s_*   int16        byte string
    Data::HashMap::Shared::I32S  shm_i32s_*   int32        byte string
    Data::HashMap::Shared::IS    shm_is_*     int64        byte string
    Data::HashMap::Shared::SI16  shm_si16_*   byte string  int16
    Data::HashMap::Shared::SI32  shm_si32_*   byte string  int32
    Data::HashMap::Shared::SI    shm_si_*     byte string  int64
    Data::HashMap::Shared::SS    shm_ss_*     byte string  byte string

The six variants with integer values (I16, I32, II, SI16, SI32, SI) also
have the counters L</incr>, L</decr> and L</incr_by>; on the others these
methods croak with advice, and there are no such keywords.

C<use Data::HashMap::Shared::II;> loads the module and enables the
C<shm_ii_*> keywords until the end of the enclosing block or file;
C<no Data::HashMap::Shared::II;> disables them again. Loading any variant
(or C<use Data::HashMap::Shared;>) installs the methods of all ten.

=head1 CHOOSING A VARIANT

=over

=item Keys

Integer keys (I16, I32, II, I16S, I32S, IS) when the keys are numbers: ids,
ports, timestamps. They are stored in the table slot itself and hash
cheaply. Anything else is a string key (SI16, SI32, SI, SS): names, URLs,
composite keys such as C<"client:window">.

=item Values

Integer values (I16, I32, II, SI16, SI32, SI) for counters and numbers:
only these variants have L</incr>, L</decr>, L</incr_by>, L</"max, min">,
and their counters on existing keys take no lock. String values (I16S,
I32S, IS, SS) for everything else; store structured data serialized
(L<Storable>'s C<nfreeze>, JSON, L<Sereal>) and decode it after C<get>.

=item Width

A plain map (no LRU, no TTL) with integer keys stores each key and value
at its own width beside a one-byte state: about 8 bytes per entry for I16,
13 for I32 and 26 for II (L</Memory>). String keys, LRU and TTL use 24- or
32-byte slots whatever the width. A narrow type also keeps its range: a
value outside it croaks instead of being stored (a counter that would
overflow croaks and keeps its value), and a Rust program sharing the file
sees the same type. When in doubt about the range, take the 64-bit variant
(II, IS, SI).

=item Strings

Strings of up to 7 bytes live inside the slot and cost no string storage;
longer ones are stored once in the file's string arena (see L</LIMITS>).

=item Many writers

All writers of one map take turns on its one writer lock. When many
processes write different keys all the time, L</new_sharded> splits the map
over several files with a lock each. Reads, counters on existing keys and
(for I16, I32 and II without LRU or TTL) puts over existing keys take no
lock and gain nothing from it.

=item LRU and TTL

They are options of L</new>, not variants. A map with C<$max_size> (a
cache) or C<$ttl> (expiring data) uses 8 more bytes per slot, and LRU 16
more for its list; counters on an LRU map take the writer lock. A map with
neither pays nothing for them.

=back

Typical choices:

    counters by name, rate limits, best scores      SI
    counters by numeric id                          II
    a cache of rendered pages or serialized data    SS, with $max_size and/or $ttl
    records by numeric id (serialized)              IS
    a set of strings (value unused, say 1)          SI16
    feature flags, settings                         SS or SI

=head1 KEYWORDS AND METHODS

In this document C<xx> stands for a variant's prefix (C<ii>, C<ss>, ...)
and every operation is shown in both forms:

    shm_xx_put $map, $key, $value;        # keyword
    $map->put($key, $value);              # method

A keyword takes a fixed number of comma-separated arguments, the map first,
with or without parentheses. Without parentheses it takes exactly that many
and no more: the rest belongs to the enclosing list, so

    is(shm_ii_get $map, 42, 100, 'stored 100');

passes C<100> and C<'stored 100'> to C<is>. Each argument is an expression
that extends to the next comma (C<shm_ii_get $map, ($i + 1) * 2> looks up
C<($i + 1) * 2>), evaluated in scalar context. As with Perl's own list
operators, a parenthesis right after the keyword encloses all the
arguments, so write C<shm_ii_size($map) == 3>, not
C<shm_ii_size $map == 3> (which passes C<$map == 3> as the map). A wrong
number of arguments is a compile-time error:
C<shm_ii_put takes 3 arguments: $map, $key, $value>.

Calling a method with the wrong number of arguments croaks with
C<Usage: Data::HashMap::Shared::II::put($map, $key, $value)>.

Passing something other than a map of the keyword's or method's own variant
croaks: C<Data::HashMap::Shared::II: not a Data::HashMap::Shared::II object
(got a Data::HashMap::Shared::SS map)>.

B<Return values.> Booleans are Perl's own true and false (C<1> and C<"">,
C<!!1> and C<!!0>). Operations that return a scalar return exactly one value
in scalar and void context. A method's or keyword's string result is a new
value each time (copying it is never needed).

B<Assigning a keyword's result to a lexical> (C<$x = shm_xx_get $map, $k>,
also with C<take>, C<get_or_set>, C<ttl_remaining>, C<swap> and
C<cas_take>) compiles to one op that stores the result straight into C<$x>,
as Perl does for its own operators: the fastest way to read into a
variable in a loop. It means exactly what the assignment means (a tied
C<$x> gets one C<STORE>, a read-only one croaks); C<my $x = ...> is the
ordinary assignment.

=head1 CONSTRUCTORS

A map lives in a file (L</new>), in no file at all (C<new(undef, ...)>,
shared with fork children), in a memfd passed between processes as a
descriptor (L</new_memfd>, L</new_from_fd>), or in several files that split
the keys between them (L</new_sharded>). A frozen map can be opened
read-only (L</new_readonly>). Where a path goes, a location such as
C<redis://host:6379/0#sessions> puts the map on a Redis or Valkey server,
shared by every host (L</MORE THAN ONE HOST>). Every constructor is a class method only
(there are no constructor keywords) and returns a handle of the invocant's
class; all operations work the same on every kind of map.

=head2 new

    my $map = Data::HashMap::Shared::II->new($path, $max_entries,
        $max_size = 0, $ttl = 0, $lru_skip = 0, $arena_cap = 0,
        $file_mode = 0600);

Creates the map file C<$path> if it does not exist, else attaches to it, and
returns a handle. Any number of processes may attach to one file. When
attaching, every argument after C<$path> is ignored: the file's header is
authoritative. Creation is race-free: when several processes create the
same path at once, one initializes it and the others attach to the result.
The file is opened with C<O_NOFOLLOW> and C<O_CLOEXEC>.

=over

=item C<$path>

A non-empty file name without NUL bytes; or C<undef>, for an B<anonymous
map>: a C<MAP_SHARED> mapping of no file, always new, shared with the
children this process forks afterwards and with no other process. Its
L</path> is C<undef> and it cannot be frozen.

=item C<$max_entries>

The most entries the map will ever hold, exactly: an integer from 1 to
4294967295 (2**32-1). Memory and file space follow the number of entries
actually stored, not this limit.

=item C<$max_size>

0, or the LRU capacity, at most C<$max_entries>: inserting a new key
while the map holds C<$max_size> entries first evicts the least recently
used one (L</"EVICTION AND EXPIRY">).

=item C<$ttl>

0, or the default lifetime of an entry in whole seconds: entries expire
that long after they were last stored (L</"EVICTION AND EXPIRY">). Only a
map made with a TTL accepts the per-entry lifetimes of L</put_ttl>.

=item C<$lru_skip>

0 to 99: the percentage of LRU promotions by updates that are skipped
(the entry is then only marked as used, as a read does). Higher values
mean fewer writes to the shared LRU list for hot keys, at some cost in
precision. 0 promotes on every update.

=item C<$arena_cap>

0 (string storage grows on demand), or the most bytes of string storage.
When it is reached, storing a new string fails as when the map is full.

=item C<$file_mode>

The permission bits of a newly created file, applied exactly (the umask does
not narrow them): 0 to 07777, default 0600 (owner only). Like C<chmod>, it
takes a number: write C<0644>, not C<'0644'>.

=back

An C<undef> optional argument means its default.

Errors: an argument out of range croaks saying what is expected, e.g.
C<Data::HashMap::Shared::II: max_entries must be an integer from 1 to
4294967295, got '0'>. Opening croaks, naming the path and the reason, when
the file is not a map file (C<not a Data::HashMap::Shared file>), was made
by another variant (C<variant mismatch: file is SS, opened as II>), has an
unsupported format version, fails validation (C<corrupt header: ...>), or a
system call fails (C<open(/path): Permission denied>).

The handle is closed when its last reference goes away; there is no close
method. A subclass may call C<new>: the object is blessed into the invocant's
class.

=head2 new_memfd

    my $map = Data::HashMap::Shared::II->new_memfd($name, $max_entries,
        $max_size = 0, $ttl = 0, $lru_skip = 0, $arena_cap = 0,
        $file_mode = 0600);

Creates a new map in a memfd (C<memfd_create>: memory with a file
descriptor and no name in the file system). C<$name> is only a label,
shown in F</proc/PID/fd> and in error messages; it must be non-empty. The
other arguments are those of L</new>. L</memfd> returns the descriptor;
another process that receives it (inherited across C<fork>, or sent over a
Unix socket with C<SCM_RIGHTS>) attaches with L</new_from_fd>. The
descriptor is close-on-exec: to hand it to a program you C<exec>, clear
C<FD_CLOEXEC> first. The memory lives as long as a descriptor or a handle
refers to it. L</path> is C<undef>, L</unlink> returns false, and the map
cannot be frozen.

=head2 new_from_fd

    my $map = Data::HashMap::Shared::II->new_from_fd($fd);

Attaches to the map in the open file descriptor C<$fd>: a memfd from
L</memfd>, or a map file opened for reading and writing. The descriptor is
duplicated, so the caller may close its own; L</memfd> of the new handle
returns the duplicate. Croaks if C<$fd> is not a descriptor number
(C<the descriptor must be an open file descriptor number (see -E<gt>memfd),
got '-1'>), is not open (C<dup(fd 9): Bad file descriptor>), or holds
another variant (C<fd 5: variant mismatch: file is SS, opened as II>), and
for every reason L</new> does.

=head2 new_sharded

    my $map = Data::HashMap::Shared::II->new_sharded($prefix, $shards,
        $max_entries, $max_size = 0, $ttl = 0, $lru_skip = 0,
        $arena_cap = 0, $file_mode = 0600);

Creates or attaches a map split over C<$shards> files, C<"$prefix.0"> to
C<"$prefix." . ($shards - 1)>, each an ordinary map file with its own
writer lock. A fixed hash of the key (the same in every process) picks its
shard, so writers of keys in different shards do not wait for each other.
C<$shards> is an integer from 1 to 1024. C<$max_entries>, C<$max_size> and
C<$arena_cap> apply to B<each shard>, as in the C implementation: every
shard holds exactly C<$max_entries> entries, so 4 shards of 1,000 hold
4,000, and L</"max_entries, max_size, ttl">, C<mmap_size>, C<arena_cap> and
L</stats> report the sums. Each shard evicts and fills up on its own: a
key whose shard is full is refused while other shards still have room.
Each file records the shard count, and attaching with another count croaks
(C<shard count mismatch: this file is shard 0 of 4, opened as shard 0 of 3
(num_shards must be the count the files were created with)>). Errors:
a missing prefix croaks C<new_sharded needs a path_prefix ...>, a bad count
C<num_shards (the number of shards) must be an integer from 1 to 1024, got
'0'>.

Every operation works as on one map. Operations on one key are exactly
those of its shard. Whole-map operations visit the shards in turn:
L</size> and the statistics are sums; L</"keys, values, items"> and
L</to_hash> join one snapshot per shard (not one snapshot of the whole
map); L</each> and cursors walk the shards one after another, with the
exactly-once guarantee; batches take each shard's lock once;
L</"pop, shift"> and L</drain> take from the first shard that has entries,
in that shard's order. L</path> is C<undef> and L</unlink> returns false
(remove the files by name). A shard file opened with L</new> is a map of
its own; do not store keys in it directly, they would miss their shard
(L<hashmap-shared> routes C<get>, C<put> and C<rm> through the whole map).

=head2 new_readonly

    my $map = Data::HashMap::Shared::II->new_readonly($path);

Attaches to a frozen map (see L</freeze>) read-only: the file is opened
read-only and mapped without write permission, so only read permission on
it is needed, and reads take no lock. Every read works; every operation
that may change the map croaks (C<map is frozen (opened with new_readonly):
it can be read, not changed>). Croaks if the map is not frozen (C<new_readonly
needs a frozen map, and this map is not frozen: freeze it first ...>), and
for every reason L</new> does. C<< $map->readonly >> is true for such a
handle.

=head1 OPERATIONS ON ONE KEY

=head2 put

    my $ok = shm_xx_put $map, $key, $value;
    my $ok = $map->put($key, $value);

Stores C<$value> under C<$key>, replacing any previous value. Returns true;
false when the key is new and the map is full (C<max_entries> entries), the
string storage has reached C<$arena_cap>, or the file system has no room
for the space the store needs (see L</CONCURRENCY>; nothing is lost). On a
map with a TTL a new entry gets the default lifetime and an existing one
restarts it, but a permanent entry stays permanent
(L</"EVICTION AND EXPIRY">).

=head2 get

    my $value = shm_xx_get $map, $key;
    my $value = $map->get($key);

The value stored under C<$key>, or C<undef> when there is none. Never takes
a lock.

=head2 exists

    my $bool = shm_xx_exists $map, $key;
    my $bool = $map->exists($key);

True if C<$key> is present. Never takes a lock.

=head2 remove

    my $removed = shm_xx_remove $map, $key;
    my $removed = $map->remove($key);

Removes C<$key>. True if there was an entry to remove.

=head2 take

    my $value = shm_xx_take $map, $key;
    my $value = $map->take($key);

Removes C<$key> and returns its value, in one step; C<undef> if missing.

=head2 get_or_set

    my $value = shm_xx_get_or_set $map, $key, $default;
    my $value = $map->get_or_set($key, $default);

The value stored under C<$key>; if there is none, stores C<$default> and
returns it, in one step (no other process can store the key in between).
Returns C<undef> only when the key is missing and cannot be stored (the map
is full).

=head2 incr

    my $new = shm_xx_incr $map, $key;       # integer-value variants only
    my $new = $map->incr($key);

Adds 1 to the value under C<$key> and returns the new value. A missing key
starts at 0 (so the first C<incr> stores 1). Counter operations on an
existing key take no writer lock and do not serialize with each other
across processes; they are atomic.

Errors: a result outside the value type croaks and changes nothing
(C<Data::HashMap::Shared::I16: incr would overflow int16 (value
unchanged)>); a missing key when the map is full croaks (C<increment
failed: map is full (max_entries 1000): cannot insert key>; C<decrement
failed> for L</decr>, C<incr_by failed> for L</incr_by>).

=head2 decr

    my $new = shm_xx_decr $map, $key;       # integer-value variants only
    my $new = $map->decr($key);

As L</incr>, subtracting 1.

=head2 incr_by

    my $new = shm_xx_incr_by $map, $key, $delta;   # integer-value variants only
    my $new = $map->incr_by($key, $delta);

As L</incr>, adding C<$delta> (any int64, negative too).

=head1 CONDITIONAL AND ATOMIC WRITES

Each of these runs under the writer lock as one step: no other process sees
a state in between.

=head2 add, update

    my $ok = shm_xx_add $map, $key, $value;       # $map->add($key, $value)
    my $ok = shm_xx_update $map, $key, $value;    # $map->update($key, $value)

C<add> stores only if C<$key> is absent, C<update> only if it is present.
True if stored; false otherwise, or when the map (or its string storage) is
full.

=head2 add_ttl, update_ttl

    my $ok = shm_xx_add_ttl $map, $key, $value, $seconds;
    my $ok = shm_xx_update_ttl $map, $key, $value, $seconds;

As L</"add, update">, with this entry's own lifetime (0: permanent). Croak
on a map made without a TTL, as L</put_ttl> does.

=head2 swap

    my $old = shm_xx_swap $map, $key, $value;     # $map->swap($key, $value)

Stores C<$value> and returns the value it replaced, or C<undef> if C<$key>
was new. Croaks if it cannot store (C<swap: map is full ...>).

=head2 cas

    my $ok = shm_xx_cas $map, $key, $expected, $desired;

Compare and set: replaces the value with C<$desired> if it equals
C<$expected> (as numbers for integer values; as bytes for strings, the UTF-8
flag not compared). True if it did; false if the value differed or
C<$key> is missing.

=head2 cas_take

    my $value = shm_xx_cas_take $map, $key, $expected;

Removes C<$key> and returns its value if the value equals C<$expected>;
otherwise changes nothing and returns C<undef>.

=head2 max, min

    my $new = shm_xx_max $map, $key, $value;      # integer-value variants only
    my $new = shm_xx_min $map, $key, $value;

Stores the larger (smaller) of the current value and C<$value> and returns
it; a missing key takes C<$value>. Atomic with respect to every other
counter operation: C<max> racing C<incr> never lowers the value. Like the
counters, lock-free on an existing key of a map without LRU.

=head1 BATCHES

Methods only. Each batch takes the writer lock once for all its keys, and
is all or nothing even if the process dies in the middle: the next process
to take the lock finishes a batch that had committed, or finds none of it. All
arguments are converted before the lock is taken, so an argument that dies
while being read (a tied variable, an overloaded object) leaves the map
unchanged and no lock held.

=head2 set_multi

    my $stored = $map->set_multi($k1 => $v1, $k2 => $v2, ...);

Stores every pair; returns how many were stored (a new key is not stored
when the map is full). An odd number of arguments croaks.

=head2 get_multi

    my @values = $map->get_multi(@keys);

The values, in the order of C<@keys>, C<undef> for missing keys. In scalar
context, how many were found.

=head2 remove_multi

    my $removed = $map->remove_multi(@keys);

Removes the keys; returns how many were there.

=head1 REMOVING FROM THE ENDS

=head2 pop, shift

    my ($key, $value) = shm_xx_pop $map;          # $map->pop
    my ($key, $value) = shm_xx_shift $map;        # $map->shift

Remove one entry and return it, or the empty list if the map is empty. On
an LRU map C<pop> takes the least recently used entry and C<shift> the most
recently used one; on other maps each takes some entry (C<pop> from the end
of the table, C<shift> from its start). In scalar context, the key.

=head2 drain

    my @pairs = shm_xx_drain $map, $n;            # $map->drain($n)

Removes up to C<$n> entries in L</"pop, shift"> order under one lock and
returns them as a flat list C<(k, v, k, v, ...)>; in scalar context, the
number of pairs. It never reserves more room than the map holds, whatever
C<$n> is.

=head1 CURSORS

    my $cur = shm_xx_cursor $map;                 # $map->cursor
    while (my ($key, $value) = shm_xx_cursor_next $cur) { ... }   # $cur->next
    shm_xx_cursor_reset $cur;                     # $cur->reset
    shm_xx_cursor_seek $cur, $key;                # $cur->seek($key)

A cursor is an independent iterator, an object of class
C<Data::HashMap::Shared::I<X>::Cursor>. Any number of cursors can walk one
map at once and nest. C<cursor_next> returns C<($key, $value)>, or the
empty list at the end (where the cursor stays until C<cursor_reset>); in
scalar context the key. C<cursor_seek> returns true if C<$key> is present,
and then the next C<cursor_next> returns C<$key> and continues from there;
false (the position unchanged) otherwise. A cursor keeps its map alive.
Using a cursor of one variant with another variant's keyword croaks.

Cursors walk the map in the order of the keys' hashes, remembering only the
hash of the last entry they returned. That is what makes the guarantee of
L</each> hold for them too: every entry present for the whole walk is
returned exactly once, even while the table grows, shrinks or is compacted
by this or another process; removing entries during the walk is safe;
entries added or removed meanwhile may or may not be seen; a walk always
ends.

=head1 EXPIRY AND RECENCY

=head2 put_ttl

    my $ok = shm_xx_put_ttl $map, $key, $value, $seconds;
    my $ok = $map->put_ttl($key, $value, $seconds);

As L</put>, with this entry's own lifetime: C<$seconds> from now, or
permanent for 0. Croaks on a map made without a TTL (C<put_ttl needs a map
created with a TTL ... to make it TTL-enabled>): there, use L</put>.

=head2 ttl_remaining

    my $sec = shm_xx_ttl_remaining $map, $key;
    my $sec = $map->ttl_remaining($key);

Whole seconds until C<$key> expires (at least 1 while it lives), 0 if it
is permanent, C<undef> if it is missing or expired or the map has no TTL.
Lock-free.

=head2 get_with_ttl

    my ($value, $sec) = $map->get_with_ttl($key);    # method only

The value and L</ttl_remaining> in one lock-free read, or the empty list
if C<$key> is missing or expired. On a map without TTL C<$sec> is C<undef>.
In scalar context, the value.

=head2 touch

    my $ok = shm_xx_touch $map, $key;
    my $ok = $map->touch($key);

Restarts the entry's lifetime at the map's default TTL (a permanent entry
stays permanent) and moves it to the most recently used end. False if
C<$key> is missing or expired, or the map has neither LRU nor TTL.

=head2 persist

    my $ok = shm_xx_persist $map, $key;       # $map->persist($key)

Makes the entry permanent. False if it is missing or the map has no TTL.

=head2 set_ttl

    my $ok = shm_xx_set_ttl $map, $key, $seconds;   # $map->set_ttl(...)

Gives the entry a lifetime of C<$seconds> from now (0: permanent), without
touching its value or recency. False if it is missing or the map has no TTL.

=head2 flush_expired

    my $n = shm_xx_flush_expired $map;        # $map->flush_expired

Removes every expired entry and returns how many. 0 on a map without TTL.

=head2 flush_expired_partial

    my ($removed, $done) = shm_xx_flush_expired_partial $map, $limit;

Scans C<$limit> table slots for expired entries, starting where the last
call stopped, I<from any process> (the position is kept in the file), so
that workers sweeping in turns share one pass. C<$done> is true when a
pass reached the end of the table; the next call starts a new pass. In
scalar context, C<$removed>. Spreads the work of L</flush_expired> over
many short calls. On a map without TTL it returns C<(0, 1)> at once.

=head1 OPERATIONS ON THE WHOLE MAP

=head2 size

    my $n = shm_xx_size $map;
    my $n = $map->size;

The number of entries. On a map with TTL this includes expired entries
that no write, flush or eviction has removed yet; every other read skips
them. It is read as L</get> reads: never in the middle of a change (an
LRU insert and its eviction are one change), waiting for one in progress
as long as L</get> would.

=head2 max_entries, max_size, ttl

    my $max = shm_xx_max_entries $map;      # $map->max_entries
    my $lru = shm_xx_max_size $map;         # $map->max_size
    my $sec = shm_xx_ttl $map;              # $map->ttl

The values the map was created with (see L</new>).

=head2 keys, values, items

    my @keys   = shm_xx_keys $map;          # $map->keys
    my @values = shm_xx_values $map;        # $map->values
    my @flat   = shm_xx_items $map;         # $map->items: ($k1, $v1, $k2, $v2, ...)

All keys, all values, or all pairs as one flat list, taken from one
consistent snapshot of the map, in no particular order. In scalar context
C<keys> and C<values> return the number of entries and C<items> the number
of elements its list would have (twice the number of entries).

=head2 to_hash

    my $hashref = shm_xx_to_hash $map;
    my $hashref = $map->to_hash;

A new hash holding a consistent snapshot of the map. Integer keys become
their decimal strings, as in any Perl hash.

=head2 each

    while (my ($key, $value) = shm_xx_each $map) { ... }
    while (my ($key, $value) = $map->each) { ... }

The next entry of the handle's own iterator, as C<($key, $value)>, or the
empty list when the walk is over; the call after that starts a new walk. In
scalar context it returns just the key (C<undef> at the end), like Perl's
C<each>. Removing entries (this one or others) during a walk is safe. An
entry present for the whole walk is returned exactly once, even when the
table is resized by this or another process meanwhile; entries added or
removed during the walk may or may not be seen. Each handle has its own
iterator: two handles on one file walk independently.

=head2 iter_reset

    shm_xx_iter_reset $map;
    $map->iter_reset;

Restarts the handle's L</each> walk. Returns true.

=head2 clear

    shm_xx_clear $map;
    $map->clear;

Removes every entry. The statistics counters are kept. Returns true.

=head2 reserve

    my $ok = shm_xx_reserve $map, $n;
    my $ok = $map->reserve($n);

Grows the table now to hold C<$n> entries without resizing later. False if
C<$n> exceeds C<max_entries> (on a sharded map, the sum; each shard grows for
its part). A table of 65,536 slots or more (16,384 with C<max_size>) grows
as it does when inserts fill it (L</CONCURRENCY>): the larger table (at
least half as large again) takes inserts at once, and the writes that
follow move the entries already there, so C<reserve> returns without
rebuilding the table. Like every mutator, it croaks on a frozen map (C<map is frozen>),
before it looks at C<$n>.

=head1 DIAGNOSTICS OF A MAP

    shm_xx_capacity $map          $map->capacity         table slots now
    shm_xx_tombstones $map        $map->tombstones       slots of removed entries not yet reused
    shm_xx_mmap_size $map         $map->mmap_size        bytes mapped
    shm_xx_arena_used $map        $map->arena_used       bytes of string storage in use
    shm_xx_arena_cap $map         $map->arena_cap        its cap (0: none)
    shm_xx_stat_evictions $map    $map->stat_evictions   LRU evictions so far
    shm_xx_stat_expired $map      $map->stat_expired     expired entries removed so far
    shm_xx_stat_recoveries $map   $map->stat_recoveries  recoveries after a process died mid-operation,
                                                         and shared words found forged and cleared

The counters live in the file and count for all processes.

=head2 stats

    my $stats = $map->stats;      # method only

A new hashref of all of these at once: C<size>, C<max_entries>,
C<max_size>, C<ttl>, C<lru_skip>, C<capacity>, C<tombstones>,
C<mmap_size>, C<arena_used>, C<arena_cap>, C<stat_evictions>,
C<stat_expired>, C<stat_recoveries>, C<frozen> and C<readonly> (1 or 0;
see L</"frozen, readonly">). On a sharded map the counts and sizes are sums
over the shards.

=head2 verify

    my $ok = $map->verify;        # method only

Checks the whole map's internal consistency under the writer lock: the
header, the table (counts, hashes, every entry reachable, no key twice),
every string reference, the string arena (block headers, free lists, bytes
in use), the LRU list and the expiry words. Returns true, or croaks naming
the first problem found (C<Data::HashMap::Shared::II: /path: verify:
...>). It reads the whole map, so it takes time in proportion to its size,
and writers wait meanwhile: a tool for tests, incidents and
C<hashmap-shared verify>, not for every request.

=head1 FILES

=head2 path

    my $path = $map->path;        # method only

The path the map was opened with; C<undef> for anonymous, memfd and
sharded maps.

=head2 unlink

    my $removed = $map->unlink;                                   # method only
    my $removed = Data::HashMap::Shared::II->unlink($path);

Removes the map's file (or C<$path>) from the file system. True if it was
removed; false otherwise (also for a map with no L</path>); it never dies.
Handles already open keep working on the now nameless map; a later C<new>
on the path creates a new map.

=head2 sync

    $map->sync;                   # method only

Writes the map's changed pages to its file (C<msync>; every shard of a
sharded map) and returns true when they are on disk; croaks if the system
call fails. Sharing between processes never needs it: it is for
durability, before copying the file or when the machine may go down. On
anonymous and memfd maps there is no disk, and it returns true.

=head2 freeze

    $map->freeze;                 # method only

Seals a map in a file for good: from then on every operation that may
change it (L</put>, L</remove>, the counters, L</get_or_set>, L</touch>,
L</flush_expired>, L</clear>, L</reserve> ...) croaks, on every handle of every process
(C<map is frozen: it can be read, not changed>), and reads go on as before.
The file records it, and it is synced to disk before C<freeze> returns.
Returns true, also when the map was already frozen. A sharded map freezes
every shard. Croaks for anonymous and memfd maps (C<freeze needs a map in a
file>). The usual pattern: build a map once, freeze it, then open it with
L</new_readonly> everywhere.

=head2 frozen, readonly

    my $bool = $map->frozen;      # method only
    my $bool = $map->readonly;    # method only

C<frozen>: true once the map was frozen, by any handle. C<readonly>: true
when this handle cannot change the map: a handle opened with
L</new_readonly>, or any handle of a frozen map, the one that froze it
included (as in the C implementation).

=head2 memfd

    my $fd = $map->memfd;         # method only

The descriptor of a map made by L</new_memfd> or attached by
L</new_from_fd>, to pass to other processes; -1 for every other map. It
belongs to the handle: it is closed with it.

=head1 EVICTION AND EXPIRY

B<LRU> (C<$max_size> E<gt> 0). Inserting a new key while the map holds
C<$max_size> entries evicts one, so the map never holds more, even
with many processes inserting at once (eviction happens under the writer
lock, in the same change as the insert: no reader sees one without the
other, and a process killed in the middle leaves both done or neither, see
L</CONCURRENCY>). Reads stay lock-free: L</get> only I<marks> the entry as used.
Eviction looks at the least recently updated entry; if it was marked since
it became the candidate, it gets a second chance (mark cleared, moved to the
recent end) and the next candidate is considered. So an entry read since it
became the candidate is never the next victim, and among the others the
oldest goes. Updates (L</put>, L</incr> and the other counters,
L</get_or_set> of an existing key, L</touch>) move the entry to the recent
end, less often with L</"$lru_skip">. C<stat_evictions> (L</"DIAGNOSTICS OF A MAP">) counts evictions.

B<TTL> (C<$ttl> E<gt> 0). A new entry expires C<$ttl> seconds after it was
stored, unless L</put_ttl> or L</"add_ttl, update_ttl"> gave it a lifetime of its own.
Overwriting an entry with L</put>, L</swap>, L</cas>, L</"add, update">,
L</set_multi>, the counters or L</"max, min"> restarts its lifetime at
C<$ttl> (L</touch> does too, without writing); L</get_or_set> of an existing
key reads it and leaves its lifetime as it is. A
B<permanent> entry (L</put_ttl> or L</"add_ttl, update_ttl"> with 0, L</persist>,
L</set_ttl> with 0) stays permanent under every one of those writes, as in
the C implementation: only the TTL writes L</put_ttl>,
L</"add_ttl, update_ttl">, L</set_ttl> and L</persist> change a lifetime.
Times are whole seconds, and an entry
lives through the second its expiry names: a lifetime of I<t> seconds lasts
at least I<t> and less than I<t>+1 seconds. Expiry times are wall-clock seconds
stored in the file, so they keep their meaning across processes and
reboots; expiry is checked against the coarse real-time clock (one clock
read per operation at most). An expired entry is invisible to every read at
once; it is physically removed by the next write that meets it, by
L</flush_expired> or L</flush_expired_partial>, or by eviction, and each
removal counts in C<stat_expired>. On a map with both, an expired entry at
the LRU end is evicted first and counts as expired. A map without LRU that
holds C<$max_entries> entries, expired ones included, first removes the
expired entries of the next 256 slots of the L</flush_expired_partial>
pass before it refuses a new key (C<set_multi>, before a batch whose new
keys do not fit, up to about four slots per new key): a map whose entries
have expired takes new ones without a flush.

A map without LRU and TTL pays nothing for either: its slots have no room
for them and its reads take no clock.

=head1 KEYS AND VALUES

B<Integers> (int16, int32, int64 keys and values) must fit their type: a
number outside it croaks and stores nothing
(C<Data::HashMap::Shared::I16: 70000 does not fit int16>). A number with a
fractional part is truncated toward zero, as C<int()> does (C<12.7> is
C<12>, C<-3.9> is C<-3>). A string must look like a number
(C<"42">, C<" 42 ">, C<"1e3">, C<"-7.5">); any other string croaks
(C<Data::HashMap::Shared::II: 'abc' is not an integer>). C<undef> croaks
(C<Data::HashMap::Shared::II: key is undef>, C<... value is undef>).

B<Strings> are byte strings. A key's identity is its bytes: two keys are
the same entry exactly when their bytes are equal. The UTF-8 flag of a Perl
string is stored with each key and value and restored on every read
(C<get>, C<keys>, C<each>, C<take>, ...), but it is not part of identity:
a character string and a byte string with the same internal bytes are one
key. Strings are stored exactly as Perl holds them, never upgraded or
downgraded; to get a key's identity independent of how Perl holds a text,
encode it (C<Encode::encode_utf8>) before using it. The empty string is a
valid key and value, and every byte value, NUL included, is kept. C<undef>
croaks. A reference is used as its string form (C<HASH(0x...)>), as in a
Perl hash.

=head1 CONCURRENCY

Every process that opens the file maps the same memory, and every change is
visible to the others at once. C<sync> (durability on disk) is not needed
for sharing.

=over

=item Reads take no lock.

C<get> and C<exists> read under a sequence lock: they copy what they need,
check that no writer changed it meanwhile, and retry if one did. Readers
never wait for each other and never block writers.

=item One writer at a time.

Every other change takes the map's single writer lock, a word in the file.
Waiters spin briefly, then sleep on a futex shared between processes.

=item Counters on existing keys don't take the lock.

C<incr>, C<decr> and C<incr_by> on a key that exists update its value with
one atomic instruction, under a per-process reader indicator rather than
the writer lock, so counters in many processes do not serialize with each
other. Creating a key takes the lock as any insert does. On an LRU map
counters take the writer lock too: every update moves its entry in the
shared LRU list.

The same holds for C<put> of an integer value over an existing key in the
I16, I32 and II variants, on a map without LRU or TTL: the value word is
replaced with one atomic instruction, so such puts in many processes do not
serialize either. Other puts (new keys, string values, LRU or TTL maps)
take the lock.

=item No pause grows with the map.

A table of 65,536 slots or more (16,384 with C<max_size>) grows, shrinks or
drops its tombstones in steps: the new table takes inserts at once, and
each write moves the entries of the next 64 slots of the old one, while
lookups, counters, C<each> and cursors see both tables (every entry
present for a whole walk still comes exactly once). The memory of the
table it will grow to is allocated ahead, and the old table's released
afterwards, 2 MiB per write. Filling an II map from empty to 10,000,000
entries (F<bench/fill.pl>), the slowest single C<put> took 2.4 ms (254 ms
when a resize rebuilt the whole table at once), p99.9 19 microseconds. The
price: during a migration (about a hundredth of the writes of a growing
map) a write costs 2 to 10 microseconds more, and a lookup that misses in
the new table reads the old one too. LRU maps migrate the same way: the
list runs through both tables, and each move takes its entry's place in
it. An LRU II map of 1,000,000 entries churned by 3,000,000 puts
(F<bench/fill.pl --lru>) has its slowest C<put> at about 2.5 ms, where a
growth or the compaction of its evictions' tombstones (about once every
300,000 evictions) rebuilt the table at once for about 120 ms; the moves
read scattered list links, so the churn as a whole takes about a fifth
longer. Smaller tables resize at once (a millisecond at 65,536 slots, at
16,384 on an LRU map). Batches,
C<get_multi>, C<keys>, C<values>, C<items>, C<to_hash>, C<pop>, C<shift>
and C<drain> see both tables like single keys do; C<clear> drops the old
table with the rest; C<flush_expired_partial> moves as many old slots as
its limit per call until the migration has ended. Only C<flush_expired>,
C<verify> and C<freeze>, which walk the map anyway, first finish a
migration in progress (and C<reserve>, if it asks for more than the table
being filled holds).

=item A process that dies never blocks the others.

Every attached process holds a numbered slot in the file, and a kernel file
lock on that slot for as long as it lives; the writer lock records the slot
of its holder. A process that waits too long asks the kernel whether the
holder's slot is still locked. The kernel drops the lock of a process that
died (SIGKILL, OOM kill), whatever it was doing, so the next writer
detects the death (within about 10 ms of waiting), repairs the map (the
interrupted operation happened entirely or not at all; every other entry
is intact), counts it in
C<stat_recoveries>, and goes on. No PIDs are compared: processes in
different PID namespaces (containers sharing the file) are fully supported,
and a live lock holder is never taken for dead.

What a death costs the others, measured with a writer killed in the middle
of a change on maps of 1,000,000 and 10,000,000 SS entries (100-byte
values; F<bench/recovery.pl>, 20 kills each). A change of one key (an
insert, a replaced string, a remove, on a map without LRU) keeps a small
record of itself, from which the next process finishes or undoes it
without looking at the rest of the map; so does a C<set_multi> or
C<remove_multi>, whose record lists what the batch took and what it
writes, so that its repair costs the batch, not the map. Killed in a
C<put>, the waiting writer's C<put> returns after a median of 2 to 3 ms,
11 ms at worst, at either size (it was 47 and 531 ms), and the slowest
C<get> in another process waits 3 ms at worst. Killed in a C<set_multi>
of 2,000 pairs: the waiting writer, median 3.5 ms and 8 ms at worst at
1,000,000 entries, 9 and 13 ms at 10,000,000 (it was 74 and 688 ms); the
slowest C<get>, 8 and 13 ms at worst (19 and 48 ms). Every other change
keeps a record too: a resize (at once, or the start of a stepwise one) is
finished if it had published its new table and taken back if not;
C<clear> is run again; C<pop>, C<shift> and C<drain> record each entry they
remove; on an LRU map, every relink of the recency list logs the words it
changes, so a relink cut short is rolled back and made again if its change
had taken effect. None of these repairs looks at the rest of the map. Only
a record that a damaged file garbled falls back to walks of the table and
the arena, left to the next writer (readers do not wait for them). A
death between two changes costs nothing but the detection.

=item A full file system costs no data.

Every range of the file is allocated (C<fallocate>) before the map first
writes to it: the table a resize builds, the string storage as it grows,
the page of a process slot. When the file system refuses (C<ENOSPC>, a
quota's C<EDQUOT>, a file size limit's C<EFBIG>), the operation that needed
the space changes nothing: L</put>, L</"add, update">, their C<_ttl>
forms and L</cas> return false, L</get_or_set> returns C<undef>, and
operations that must store (the counters, L</swap>, L</set_multi>,
L</reserve>, C<new>) croak
C<no space left on the device for PATH (fallocate: No space left on device)>.
Every entry stored before stays intact and readable in every process,
reads, removals and overwrites that need no new space go on working,
L</verify> passes, and writes resume once space is freed. L</clear> needs
no space (it keeps the first pages of the table it empties). An LRU map
at C<$max_size> evicts only once the new entry is in, so a put refused for
space evicts nothing. A file size limit
(C<ulimit -f>) is reported the same way: the C<SIGXFSZ> it raises is held
off and discarded during the engine's own calls, so it does not kill the
process. Only a file shortened by someone else is reported as truncated.

=item No call waits without end.

Every wait sleeps after a short spin (for the writer lock on the futex;
for another process's counter operation, or for a change in progress that
a reader sees, with sleeps growing from 50 microseconds to 2 milliseconds),
so waiting costs no CPU. A wait on a live process that shows no progress --
the lock still held by the same holder with no unlock and no change made,
the counter still running, the change still unfinished -- for
L</wait_timeout> (10 seconds unless set) croaks, naming what it waited for
and the process slot that holds it:

    Data::HashMap::Shared::SS: /tmp/cache.shm: timed out after 10 s waiting
    for the writer lock held by process slot 3 (alive but making no
    progress; see wait_timeout) at app.pl line 12.

Nothing was changed by the call that croaks, and it holds no lock
afterwards: catch the error and retry, or find the stuck process (a process
stopped under a debugger or with SIGSTOP for longer than the timeout, or
one that holds the lock in a single call that long, such as a
C<set_multi> of many millions of entries: raise the timeout for such
workloads). A process that dies is not waited for (above).

=item Forged words are cleared.

The words that processes coordinate through live in the file, so a
damaged or hostile file can hold any value there. A word that no live
process can have written -- a writer lock word naming a slot beyond the
slot table, or a generation that slot does not have; a counter flag that
does not hold its slot's generation (only the slot's owner writes its
generation there) -- is cleared at once rather than waited for, and counted
in C<stat_recoveries>, as is the flag or lock of a process that died.

=item Fork and threads.

A handle survives C<fork>; the child may keep using it. A handle belongs to
the interpreter thread that opened it: in a new thread (L<threads>) a
cloned handle croaks when used; open the map again in that thread.

=back

=head2 wait_timeout

    my $secs = $map->wait_timeout;        # method only; 10 unless set
    $map->wait_timeout(0.5);              # set; returns the new value

How long, in seconds, a call on this handle waits for another live process
that shows no progress before it croaks (see L</"No call waits without
end.">): for the writer lock, for another process's counter operation, or
for a change in progress. Fractions are allowed; the value must be above 0
and at most 86400 (one day), else the call croaks (C<0> does not mean
"forever": every wait ends). The default, 10 seconds, rides out a holder
descheduled on a loaded machine or briefly stopped, and still reports a
stuck process while someone looks. The setting belongs to this handle (and
to its copy in a forked child), not to the file; on a sharded map it
applies to every shard.

A damaged or hostile file makes C<new>, or the operation that meets the
damage, croak; it never makes the process read or write outside the
mapping.

=head2 A truncated file, and the SIGBUS handler

If another process truncates a map file while this one has it open,
touching the lost pages would raise SIGBUS, which kills a process. To
survive that, the module installs a B<process-wide SIGBUS handler> when the
first map is opened. A SIGBUS inside one of the module's mappings is
absorbed: the missing page is replaced by a private page of zeros, and the
operation, and every later one on that handle, croaks with "the map file was
truncated while in use" (the data is lost: remove the file and create the
map again). Every other SIGBUS goes to whatever handled SIGBUS before: a
C<$SIG{BUS}> handler, another library's handler, or the default (the
process dies, as it would without this module).

A Perl C<$SIG{BUS}> handler works as usual, whether it is set before or
after a map is opened: it gets every SIGBUS that is not the module's (a
C<kill>, a fault in some other mapping), and never one of the module's, so a
handler that C<die>s cannot leave the middle of a map operation. This is
done by magic on the C<$SIG{BUS}> element: after Perl installs its handler
for an assignment (or for the end of a C<local $SIG{BUS}>), the module puts
its own back in front of it. Not covered: C<delete $SIG{BUS}>, C<%SIG = (...)>,
and C code that calls C<sigaction> itself; after those, the next map opened
puts the handler back in front.

=head1 LIMITS

=over

=item * C<max_entries>: at most 2**32-1 (4294967295) entries per map.

=item * A single key or value: up to 320 MiB minus 8 bytes; longer strings
croak.

=item * C<$arena_cap>: at most 16 TiB. Without a cap, string storage may
grow to 256 GiB per map. A handle maps only what the storage holds, with
room to grow (four times that, at least 64 MiB of address space), and maps
more when the storage grows, in this process or another: a process can keep
thousands of handles and maps open. If the system refuses address space
(C<ulimit -v>), the operation croaks C<out of address space>.

=item * String storage of a map grows with the data, up to C<$arena_cap>
when one is set.

=item * 4096 handles open on one map at the same time (all processes
together).

=item * F</proc> must be mounted: each handle opens its file a second time
through F</proc/self/fd> for its kernel lock.

=item * Linux only, 64-bit Perl only.

=back

=head1 MORE THAN ONE HOST

When processes on several machines must share a map (counters, rate
limits, caches, feature flags behind a load balancer), put it on a Redis or
Valkey server: give the constructor a location instead of a path. Nothing
else changes: the same classes, methods and keywords, C<shm_ss_get $map, $k>
included.

    my $hits = Data::HashMap::Shared::SI->new(
        'redis://app:s3cret@db.internal:6379/0#hits', 100_000);
    shm_si_incr $hits, "page:$path";

=head2 Locations

    redis://[user:pass@]host[:port][/db][?options]#MAP
    rediss://[user:pass@]host[:port][/db][?options]#MAP
    redis+unix:///path/to/redis.sock[?db=N&pass=PASSWORD&options]#MAP

C<valkey://>, C<valkeys://> and C<valkey+unix://> are the same. C<MAP> names
the map within the database; it is required. The options:

=over

=item C<connect_timeout=SECONDS>

How long opening a connection may take (decimals allowed). Default 5.

=item C<timeout=SECONDS>

How long the server may take to answer one request, and to accept one.
Default 10.

=back

Every constructor that takes a path takes a location: C<new> (creates the
map on the server if absent, else attaches to it and checks its variant,
as a file's header is checked), C<new_sharded> (the shards are the maps
C<MAP.0> .. C<MAP.N-1>, each its own hash tag, so a Redis Cluster can spread
them over its slots), and C<< Class->unlink($location) >> (deletes the map
from the server; false if it was not there or the server cannot be
reached; unlike a file, there is no unlinked copy left for open handles:
a write through one of them stores its entry under the same name again,
without the map's metadata, so stop using them). C<< $map->path >> returns
the location as given. C<rediss://> (TLS)
croaks "TLS support not built": this build's client has no TLS; reach a
remote server over a trusted network or through a TLS tunnel. A build
configured with C<perl Makefile.PL --no-redis> has no server support at all
and croaks on any location, saying how to get it.

=head2 What holds on a server, and what does not

    operation                  local map                 map on a server
    -------------------------  ------------------------  ---------------------------
    max_entries                exact                     exact (checked in a script)
    int16/int32 ranges         croak, nothing stored     same (values checked before
                                                         sending, counters in a script)
    add update swap cas        atomic                    atomic: one Lua script each
    cas_take get_or_set take
    incr decr incr_by max min  atomic                    atomic (HINCRBY, or a script
                                                         for int16/int32 and max/min)
    per-key TTL, ttl_remaining exact to the second       same (deadlines in ms of the
    touch persist set_ttl                                server's clock)
    flush_expired_partial(n)   scans n slots             removes up to n expired entries
    set_multi get_multi        one lock                  one round trip (one script)
    remove_multi
    size                       exact                     exact
    keys values items to_hash  consistent copy           consistent copy (one script)
    each, cursors              exactly once              exactly once (HSCAN, plus a
                                                         set of the keys returned)
    cursor_seek k              walk goes on after k      k next, then a new walk of
                                                         every other entry (once each)
    pop shift drain            LRU ends, or any entry    any entries (no recency order)
    UTF-8 flag of keys/values  round-tripped             round-tripped
    stats                      all counters              size, max_entries, ttl,
                                                         stat_expired; mmap_size = bytes
                                                         the map's keys take on the
                                                         server; the rest 0
    max_size (LRU per map)     yes                       refused at open: use a TTL or
                                                         the server's maxmemory-policy
    arena_cap                  yes                       refused at open: use maxmemory
    file_mode                  applied                   ignored: use the server's ACLs
    lru_skip                   yes                       ignored (no LRU)
    freeze                     seals the file            croaks: use the server's ACLs
    new_readonly               frozen files              refused at open
    memfd                      descriptor or -1          -1
    sync                       msync                     true (durability is the
                                                         server's configuration)
    verify                     whole-file check          checks the map's keys on the
                                                         server (metadata, every key
                                                         and value, expiry and flag
                                                         entries)
    reserve n                  pre-sizes                 true if n <= max_entries

The guarantees of L</CONCURRENCY> about crashes and locks become the
server's: every operation runs atomically on the server, so a client killed
at any instant leaves each entry either written or not. A value read by
C<each> or a cursor is the value when its batch of 512 entries was read.
A map's entries are only as durable as the server's persistence settings
make them: a restart of a server that saves nothing loses the map, and the
next call re-creates its (empty) metadata.

=head2 Failures

A failure is never a miss. A network error, a timeout, a server restart or
a script error croaks with C<< Data::HashMap::Shared::X: <location>: ... >>,
the location's password (and any C<pass=> option) shown as C<***>. After
a network failure or a timeout the handle drops its connection; the next
call connects again, so once the server is back the program carries on. A read (get, exists, size,
keys, each, ...) on a connection that turns out to have been closed while
idle is sent once more on a new connection; a write is never sent twice.

Handles are safe across C<fork>: a handle remembers the process that
connected, and a child that uses its parent's handle opens its own
connection (a socket shared by two processes would mix their replies).

=head2 Costs

Every operation is one round trip: a single command (C<HGET>, C<HEXISTS>,
C<HLEN>, C<HMGET>, C<DEL>), or C<EVALSHA> of one of the module's Lua scripts
(writes, and reads of maps with a TTL). On a local Unix socket a round trip
takes 10-30 microseconds; over a network, the network's round trip time
dominates. C<set_multi>, C<get_multi> and C<remove_multi> are one round trip
for the whole batch (per shard for a sharded map); C<each> and cursors read
512 entries per round trip; C<keys>, C<values>, C<items> and C<to_hash>
read the whole map in one. Measured by C<perl -Mblib bench/vs.pl redis>
(one client, Redis 7.0.15 on a local Unix socket, a busy 2-cpu machine):

    operation            Redis::Fast   this module   overhead
    SS get                  14.1 us       13.3 us      -0.9 us
    SS put (script)         14.2 us       20.8 us      +6.6 us
    SI incr (script)        16.1 us       30.4 us     +14.3 us
    SI cas (script)         23.8 us       27.4 us      +3.7 us
    get_multi x100          53.1 us       62.7 us      +9.6 us
    set_multi x100          43.8 us      114.3 us     +70.4 us
    each, per entry          0.6 us        2.0 us      +1.4 us

Redis::Fast sends the bare commands to a hash of its own; the module's
writes run a Lua script that keeps C<max_entries> exact, the TTLs and the
UTF-8 flags.

=head2 On the server

The map C<MAP> is four keys with the hash tag C<{MAP}> (one Cluster slot, so
that every script is legal on a Cluster): C<dhms:{MAP}:meta> (a hash:
variant, max_entries, ttl, counters), C<dhms:{MAP}:data> (a hash of the
entries), C<dhms:{MAP}:exp> (a sorted set of expiry deadlines) and
C<dhms:{MAP}:utf8> (the string keys whose UTF-8 flag is on). The scripts
need Redis 6.2 or later, or Valkey (tested with Redis 7.0.15 and Valkey
8.0.1); hash-field expiry commands are not used. This build talks to one
server (a standalone server, or a primary); it does not follow Cluster
redirections. The command-line tool F<hashmap-shared> reads map files
only; C<redis-cli> shows a map's keys on a server. Tied hashes work over a
location like over a file.

To run a private server for tests or development, with no TCP port and
nothing saved:

    mkdir -p /tmp/r && redis-server --port 0 --unixsocket /tmp/r/s.sock \
        --unixsocketperm 700 --save '' --appendonly no --dir /tmp/r &
    perl -e '... ->new("redis+unix:///tmp/r/s.sock#test", 1000) ...'
    redis-cli -s /tmp/r/s.sock shutdown nosave

The test suite does this by itself when C<redis-server> is on the C<PATH>,
or uses the server named by C<DHMS_TEST_REDIS> (a location without
C<#MAP>, such as C<redis+unix:///tmp/r/s.sock>).

=head1 MIGRATING

From the C implementation of Data::HashMap::Shared (0.17 to 0.23): install
this module in its place and keep your code. The classes, keywords,
methods, constructor arguments and return values are the same, and so is
what code and tests usually depend on: L</new_sharded> sizes B<each shard>
(4 shards of 1,000 hold 4,000 entries); a B<permanent> entry stays
permanent until a TTL write changes it; C<readonly> is true for every
handle of a frozen map; L</reserve> on a frozen map croaks C<map is
frozen>; and error messages contain the phrases code matches
(C<TTL-enabled>, C<num_shards>, C<path_prefix>, C<not frozen>, C<increment
failed>, C<decrement failed>, C<incr_by failed>, C<too small> or C<magic>),
with an explanation around them. The version (1.00) sorts after 0.23, so
CPAN clients see an upgrade.

The deliberate differences, each with what you may need to change:

=over

=item The file format is new: recreate existing map files.

A file written by the C implementation is refused (C<not a
Data::HashMap::Shared file (no map magic number ...)>). Delete such files
and let the maps be built again; to keep their data, dump it with the C
module before you upgrade (C<to_hash> and L<Storable>, say) and load it
into a new file with C<set_multi> afterwards.

=item C<max_entries> is exact.

A map holds at most the C<$max_entries> you give, and C<max_entries>
returns that number. If your code stored more than it asked for, ask for
what it stores.

=item Integers out of range croak instead of truncating.

Storing 70000 in an I16 map croaks (C<70000 does not fit int16>) and
stores nothing, and a counter that would overflow croaks and leaves the
value. Check or clamp values first, or use a wider variant (I32, II).

=item Strings grow on demand; C<$arena_cap> is a cap.

String storage starts small and grows with the data; C<$arena_cap> only
caps it. Pass 0 (no cap) unless you want a limit; a cap you chose for the
C implementation still limits the map to that many bytes of strings.

=item C<swap> croaks when it cannot store.

On a full map, C<swap> of a new key croaks (C<swap: map is full ...>)
rather than returning C<undef>, which means "the key was new". Wrap it in
C<eval> where the map may be full.

=item C<freeze> is idempotent.

Freezing a frozen map returns true. Code that relied on a croak to learn
that the map was frozen: ask C<< $map->frozen >>.

=item A frozen map may be opened read-write.

L</new> attaches to a frozen map; its mutators croak C<map is frozen> and
C<readonly> is true. Where you caught a failing open to detect a frozen
map, test C<< $map->frozen >>; for read-only attaching keep using
L</new_readonly>.

=item A half-created file is recognized by its pending magic.

A file whose creator died before finishing it carries a "pending" magic
number, and the next opener initializes it; it is never reported as a valid
or corrupt map. Nothing to change; steps that removed such files by hand
may go.

=item Crashes are repaired, also across containers.

A process killed at any instant, holding the lock or not, never blocks the
others: its death is seen through kernel file locks, not PIDs (so processes
in different PID namespaces may share a map), and the map is repaired so
that the interrupted operation happened entirely or not at all
(L</CONCURRENCY>). The advice to C<clear> a map after C<stat_recoveries>
grew no longer applies: drop that code if you like.

=item A full disk costs no data.

File space is allocated before the map writes to it. When the file system
refuses it (a full disk or file system, a quota, a file size limit), the
write returns false or croaks saying so, and every entry stored before
stays intact; writes work again once there is space. Treat that false
return as you treat a full map.

=item Waits end.

No call waits forever: a wait for another live process that makes no
progress for a documented time croaks, naming what it waited for
(L</CONCURRENCY>). Where a process may hold a map's lock for long, be ready
for that croak.

=item New files are private unless C<$file_mode> says otherwise.

A new map file gets mode 0600 (owner only), applied exactly whatever the
umask. If processes of other users open your maps, pass C<$file_mode>
(C<0660>, C<0644>) to the constructor that creates them.

=item A symbolic link is refused as a path.

Files are opened with C<O_NOFOLLOW>, so a path that is a symbolic link
croaks (C<is a symbolic link (refused; give the real path)>). Give the path
of the file itself.

=item Reads of an LRU map take no lock.

L</get> on an LRU map marks the entry as used instead of moving it under
the write lock, and eviction gives marked entries a second chance
(L</"EVICTION AND EXPIRY">). Eviction order can differ in detail from the C
implementation's; nothing to change.

=item Iteration is exact across resizes.

L</each> and cursors return every entry present for the whole walk exactly
once, even while the table grows or shrinks, and C<cursor_seek> is exact.
Nothing to change.

=item A location on a Redis or Valkey server may go where a path goes.

C<redis://host:6379/0#MAP> (also C<rediss://> and C<redis+unix://>) names a
map on a server; paths work as before.

=back

=head1 TIED HASHES

    use Data::HashMap::Shared::SS;

    tie my %h, 'Data::HashMap::Shared::SS', $path, $max_entries;   # the arguments of new
    tie my %h, 'Data::HashMap::Shared::SS', $map;                  # or an open map of that class

    $h{alice} = 'Alice';                  # put
    my $name = $h{alice};                 # get
    my $old  = delete $h{alice};          # take: removes and returns the value
    for my $k (keys %h) { ... }           # a cursor walk
    my $map  = tied(%h)->map;             # the map, for everything else

Every variant class can be tied to: load it first (C<use
Data::HashMap::Shared::SS;>), then C<tie> with the arguments of L</new>, or
with one map object of that class to give an open map a hash face. Each
hash operation is one operation of the map:

    $h{$k}               get
    $h{$k} = $v          put; croaks if the map is full (a hash assignment
                         cannot return false)
    exists $h{$k}        exists
    delete $h{$k}        take (returns the removed value)
    %h = ()              clear (%h = LIST clears, then stores each pair)
    keys, values, each   a cursor of the tie: FIRSTKEY resets it, NEXTKEY
                         takes its next entry
    scalar(%h), if (%h)  size

The rules of L</"KEYS AND VALUES"> apply: storing C<undef> croaks, and
integer keys and values must fit the variant. Errors are reported at the
line of the hash operation. The walk of C<keys>, C<values> and C<each> is
lock-free and returns every entry present for its whole duration exactly
once (L</CURSORS>); C<values> and C<each> fetch each value with a separate
C<get> (that is how Perl's tie interface works), so an entry removed by
another process between the two steps gives C<undef>. C<scalar(%h)> is
L</size>, which on a map with TTL counts expired entries not yet removed.

The object behind the hash is a L<Data::HashMap::Shared::Tie>; its C<map>
method returns the map object, for the operations a hash has no syntax
for (counters, TTLs, batches, statistics). Two hashes tied to one file, in
one process or many, see each other's changes at once. Every access goes
through Perl's tie magic and a method call, several times slower than a
keyword: tie for convenience, use the keywords where speed matters.

=head1 COMMAND-LINE TOOL

The distribution installs L<hashmap-shared>, which finds the variant of a
map file from its header and works on it live:

    hashmap-shared stat FILE                # sizes, limits, counters, lock state
    hashmap-shared dump FILE                # every entry, one escaped line each
    hashmap-shared get FILE KEY             # also put, rm
    hashmap-shared verify FILE              # $map->verify
    hashmap-shared watch FILE [SECONDS]     # size, evictions, expiries per second

=head1 FROM RUST

The engine is a Rust crate, C<hashmap_shared> (C<rust/> in the
distribution), whose public API is a safe, typed C<Map<K, V>>: a Rust
program opens a map file and shares the map with Perl programs, live, as
another Perl process would. The variant is the pair of kinds:
C<Map<I64, I64>> is an C<II> map, C<Map<Bytes, Bytes>> an C<SS> map,
C<Map<Bytes, I32>> an C<SI32> map; integers are C<i16>, C<i32>, C<i64>,
strings C<&[u8]> in and C<Vec<u8>> out (Perl's UTF-8 flag is kept in the
map but not reported to Rust).

    use hashmap_shared::{Bytes, Map, Params, I64};
    let mut hits = Map::<Bytes, I64>::open("/tmp/hits.shm", &Params::new(100_000))?;
    hits.incr(b"home")?;          // shm_si_get $map, 'home' sees it at once

C<rust/examples/share.rs> is a small program that counts in an C<II> map and
exchanges strings through an C<SS> map; C<t/75-rust-and-perl.t> runs it
beside Perl processes counting on the same keys and checks that the totals
are exact. C<cargo doc> in C<rust/> documents the API.

=head1 PERFORMANCE

Use the keywords where speed matters: a keyword is a single op, while a
method call goes through Perl's sub call (about a third slower on reads;
see the C<method> rows below). The figures in this section come from one
run of each script in F<bench/> on one machine (those of F<vs.pl> from a
later run than the others, see below):

    machine   AMD EPYC (model name as /proc/cpuinfo gives it), 2 vCPUs,
              2.6 GHz, a shared virtual machine; Linux 6.18, Debian 12
    software  perl 5.36.0, rustc 1.95.0; Data::HashMap::Shared 0.01
              (vs.pl: commit c5cd0ee with the benchmark changes of issue 16,
              load 1.8 to 2.1; the other scripts: the commit after 0db9863,
              the put fix); BerkeleyDB 0.64, LMDB_File 0.12,
              Cache::FastMmap 1.57, Hash::SharedMem 0.005 (Debian packages)
    maps      in /dev/shm (vs.pl, stress.pl), /tmp on ext4 (memory.pl)

Two later changes move the figures: C<$x = shm_xx_get ...> stores straight
into C<$x> (II get 114 instructions fewer per loop iteration, SS get 210;
one later run of the budget rows: II get 1.05, IS get 1.06, SS get 0.91),
and every argument is now converted once into safe Rust types (14 to 37
instructions more per operation). Then plain maps with integer keys got
their compact slots (a control byte and the key and value at their widths:
a third to a quarter of the memory, 15 to 46 instructions more per
operation). One run of the budget rows at the end (load 1.0, median
ratios, the previous version's in the same minute in brackets): II get
0.95 (0.98), IS get 0.94 (0.98), SS get 0.87 (0.85), II put 0.78 (0.80),
IS put 0.70 (0.71), SS put 0.66 (0.66), SS remove+put 0.93 (0.88), II incr
0.86 (0.83), SI incr 0.76 (0.73); II get at 4,000,000 entries 1.42 (1.41,
medians of four runs each). Then the keywords got their fast paths (each
map's own compiled entry points, one op for a run of lexical arguments,
and a pp function per variant for get, exists, put, remove and the
counters), and changes of one key started keeping a record for recovery
(about 40 instructions on a string put). One run of the budget rows at the
end (load 1.0, median ratios, the previous version's run just before in
brackets): II get 1.13 (0.97), IS get 1.03 (0.98), SS get 0.95 (0.83), II
put 0.99 (0.79), IS put 0.81 (0.73), SS put 0.70 (0.68), SS remove+put
1.03 (1.11), II incr 0.97 (0.87), SI incr 0.85 (0.77); inserts into an
empty map: II 0.61 (0.57), IS 0.75 (0.71), SS 0.75 (0.63), SI 0.56 (0.51).
Since then a string value replaced by one of its own size class is
rewritten where it is (SS put 1,110 to 973 instructions). One run at the
end (load 0.8 to 1.0, median ratios, the version before these changes in
the next minutes in brackets): II get 1.12 (1.08), IS get 1.21 (1.20), II
put 0.93 (0.88), IS put 0.92 (0.71), SS put 0.83 (0.69), SS remove+put
0.99 (0.88), II incr 0.95 (0.86), SI incr 0.82 (0.82); inserts into an
empty map: II 0.66 (0.59), IS 0.84 (0.72), SS 0.69 (0.65), SI 0.54 (0.52).
Since then a keyword whose arguments are all lexicals runs as one op, and
I16, I32 and II pass keys and values as numbers, try the common case
first, and put over an existing key without the lock (II get 486 to 384
instructions, II put 656 to 412, II incr 572 to 424). Two runs at the end,
each beside the version before these changes in the same minutes (load
0.6 to 1.0, median ratios, the version before in brackets): II get 1.52
(1.28) and 1.39 (1.14), IS get 1.61 (1.47) and 1.26 (1.21), SS get 1.17
(1.05) and 1.05 (0.99), II put 1.41 (0.94) and 1.25 (0.96), IS put 1.11
(0.95) and 1.03 (0.98), SS put 0.91 (0.86) and 0.87 (0.84), II incr 1.17
(0.97) and 1.31 (0.99), SI incr 0.95 (0.87) and 0.90 (0.93). The Perl
hash's own median moved by up to half between these runs on the rows that
remove (SS remove+put 1.01 (1.39) and 1.31 (1.29)), which measure its
allocator as much as anything. Since then an insert looks for its slot
once, not two or three times (1,012 to 858 instructions per II insert into
a cleared map), and F<vs.pl> has the sized-insert and first-insert rows
(see the cautions below). One run at the end (load 1.1 to 1.4, median
ratios): II get 1.46, IS get 1.32, SS get 1.10, II put 1.38, IS put 0.97,
SS put 0.88, SS remove+put 1.06, II incr 1.17, SI incr 0.88; inserts II
0.75, IS 1.08, SS 0.94, SI 0.72; first inserts II 1.16, IS 1.33, SS 1.10,
SI 1.05.
Since then F<vs.pl> also times every budget workload with the keys read in
a random order (the rows C</random>). One run of the budget rows (load 0.5,
median ratios, keys read in key order / in a random order): II get 2.00 /
2.76, IS get 1.65 / 2.21, SS get 1.34 / 1.60, II put 1.26 / 2.23, IS put
0.88 / 1.49, SS put 0.80 / 1.09, SS remove+put 0.95 / 1.37, II incr 1.10 /
2.06, SI incr 0.85 / 1.22. Read in the order it was filled, a Perl hash
finds its entries one after another in memory; a map's table is in hash
order either way. Lookups in a server come in the order of its requests,
closer to the random rows; the budgets are judged in key order.
F<DESIGN.md> ("Benchmarks") keeps the instruction counts of each step.

To reproduce, build the module and run:

    perl -Mblib bench/vs.pl          # ratios to a Perl hash, other modules,
                                     # LRU/TTL, 2 processes (about 5 min)
    perl -Mblib bench/vs.pl 25000 ss get   # one workload; see --help
    perl -Mblib bench/instructions.pl  # instructions per operation, counted
                                     # by valgrind's callgrind (25 s)
    perl -Mblib bench/memory.pl      # bytes per entry, RAM and disk (5 s)
    perl -Mblib bench/stress.pl --quick    # checked multi-process runs (10 s)
    cd rust && cargo bench --bench engine  # the engine without Perl

Other modules are used when installed
(C<apt-get install libberkeleydb-perl liblmdb-file-perl
libcache-fastmmap-perl libhash-sharedmem-perl>); F<vs.pl> says which are
missing. Speed is reported as a B<ratio> to a plain Perl hash doing the same
work in the same process and the same run (C<$h{$k}>, C<$h{$k} = $v>,
C<$h{$k}++>, C<delete $h{$k}>): the machine is shared and noisy, the ratio
much less so. Each ratio compares the B<median> pass of 25,000 operations
of each side, the pass a rerun typically gets; the ratio of the best
passes is printed beside it. Passes of the sides alternate, each after an
untimed one; each workload runs in a process of its own; the map and the
Perl hash are filled in the order the loop reads the keys (the C</random>
rows read them in one fixed random order instead). Where time
cannot be trusted, F<instructions.pl> counts instructions, which do not
depend on the machine's load (F<DESIGN.md>, "Benchmarks", has its table
and what was found about the measuring itself).

=head2 Against a plain Perl hash

25,000 keys (integers 1..N or C<key:N>), string values of 20 bytes, the
keyword forms. C<budget> is the target from F<DESIGN.md>, which the ratio
of the medians must meet; C<passes>: timed passes of each side.

                    ------ median pass, ops/s -----  ------- best pass, ops/s ------
    workload          Perl hash      Shared  ratio    Perl hash      Shared  ratio  passes  budget
    II get           19,500,689  17,525,037  0.899   20,197,940  18,096,089  0.896 230/230  >= 1.90  BELOW
    IS get           15,374,894  12,955,184  0.843   16,080,149  13,523,177  0.841 176/176  >= 1.10  BELOW
    SS get           14,897,668  11,584,699  0.778   15,349,081  12,002,341  0.782 175/175  >= 0.85  BELOW
    SI get           19,746,183  14,393,563  0.729   20,353,218  14,789,364  0.727 220/220
    II put           19,854,388  18,616,684  0.938   20,395,460  19,126,837  0.938 238/238  >= 1.20  BELOW
    IS put           17,366,478  13,359,464  0.769   17,906,180  13,733,494  0.767 208/208  >= 1.10  BELOW
    SS put           16,811,119  11,940,510  0.710   17,376,931  12,357,347  0.711 199/199  >= 1.00  BELOW
    SI put           18,771,305  15,079,636  0.803   19,531,662  15,669,236  0.802 223/223
    II insert         9,349,286   5,815,012  0.622    9,737,754   5,977,975  0.614 112/112
    IS insert         6,550,221   4,988,665  0.762    6,907,831   5,110,810  0.740   75/75
    SS insert         6,272,588   4,334,344  0.691    6,589,350   4,435,234  0.673   75/75
    SI insert         9,136,499   4,954,673  0.542    9,653,400   5,085,063  0.527 103/103
    II remove        19,062,869   9,660,387  0.507   20,031,794  10,119,602  0.505 219/219
    IS remove        16,931,418   8,905,944  0.526   18,006,157   9,361,189  0.520 191/191
    SS remove        15,826,506   7,270,108  0.459   17,588,751   8,364,214  0.476 180/180
    SI remove        17,123,980   8,323,692  0.486   18,166,017   8,746,427  0.481 203/203
    II remove+put    17,246,190  16,806,983  0.975   18,635,168  17,415,850  0.935 101/101
    IS remove+put    12,329,941  14,740,158  1.195   13,426,398  15,306,543  1.140   88/88
    SS remove+put    12,079,559  12,167,078  1.007   13,445,671  12,740,363  0.948   73/73  >= 1.10  BELOW
    SI remove+put    15,283,792  12,667,660  0.829   17,944,668  14,118,890  0.787   82/82
    II incr          15,935,320  12,701,600  0.797   22,142,529  17,890,918  0.808 139/139  >= 1.05  BELOW
    SI incr          18,879,551  13,110,349  0.694   21,490,957  15,762,449  0.733 198/198  >= 0.65

C<put> overwrites existing keys; C<insert> fills an empty map (which grows
from its smallest table, as a new Perl hash grows); C<remove> removes every
key of a full map; C<remove+put> removes a key and stores it again.

=head2 Against other modules

Same loop, same keys, one store per module in a temporary directory, all in
one run; C<ops/s> is the median pass, C<ratio> that divided by the Perl
hash's, C<best> the ratio of the best passes (a side that has run 5 passes
and 0.3 s stops, so the passes of a slow module and of a fast one come from
different stretches of time: these ratios move more than the budget
rows'). Integer keys and values are decimal strings for the other modules,
which store bytes. How each module was used:

=over

=item BerkeleyDB

C<BerkeleyDB::Hash> (DB_HASH) in a private environment
(C<DB_CREATE|DB_INIT_MPOOL|DB_PRIVATE>) with a 128 MB cache; an increment
is C<db_get> then C<db_put> (not atomic across processes).

=item LMDB_File

C<MDB_WRITEMAP|MDB_NOSYNC|MDB_NOMETASYNC|MDB_NORDAHEAD>, one transaction
per operation: a write transaction for each put, delete and increment (get
and put in one transaction), and for reads one read-only transaction
renewed and reset around each get. A loop that also writes (the mixed
cross-process case) begins a read-only transaction per get instead, since
while one exists LMDB_File nests every write transaction of the process
inside it, which C<MDB_WRITEMAP> forbids.

=item Cache::FastMmap

Raw values (C<serializer =E<gt> ''>), no expiry, a cache four times the
data; an increment is C<get_and_set>. It is a cache: it may evict, so every
figure is followed by a check of every key (none failed).

=item Hash::SharedMem

The function interface (C<shash_get>, C<shash_set>); delete stores
C<undef>; an increment is C<shash_get> and C<shash_cset>, retried until it
succeeds.

=back

    integer -> integer (II), 25,000 keys
    contender                 insert ops/s  ratio   best    lookup ops/s  ratio   best increment ops/s  ratio   best
    Perl hash                    8,181,489  1.000  1.000      19,338,058  1.000  1.000      20,669,562  1.000  1.000
    Shared::II                   5,732,349  0.701  0.683      16,435,464  0.850  0.878      16,549,759  0.801  0.827
    Shared::II method            4,824,742  0.590  0.572      10,699,146  0.553  0.559      11,382,622  0.551  0.553
    BerkeleyDB                   1,730,095  0.211  0.204       2,083,387  0.108  0.103         931,621  0.045  0.043
    LMDB_File                      228,003  0.028  0.027       1,177,530  0.061  0.058         228,927  0.011  0.011
    Cache::FastMmap                210,344  0.026  0.024         240,363  0.012  0.012         124,652  0.006  0.006
    Hash::SharedMem                905,490  0.111  0.109       4,819,949  0.249  0.245         719,561  0.035  0.036
      timed passes of each contender: 5 to 235

    integer -> string (values 20 bytes) (IS), 25,000 keys
    contender                 insert ops/s  ratio   best    lookup ops/s  ratio   best    delete ops/s  ratio   best
    Perl hash                    4,993,999  1.000  1.000      13,971,394  1.000  1.000      11,263,336  1.000  1.000
    Shared::IS                   4,636,492  0.928  0.811      11,279,832  0.807  0.864       8,754,878  0.777  0.747
    Shared::IS method            3,968,833  0.795  0.683       8,293,601  0.594  0.611       6,783,893  0.602  0.580
    BerkeleyDB                   1,758,001  0.352  0.300       1,860,431  0.133  0.138       1,564,449  0.139  0.129
    LMDB_File                      222,723  0.045  0.037         877,102  0.063  0.073         202,495  0.018  0.018
    Cache::FastMmap                206,753  0.041  0.035         196,016  0.014  0.015         257,124  0.023  0.021
    Hash::SharedMem                829,549  0.166  0.146       4,636,226  0.332  0.323         838,448  0.074  0.071
      timed passes of each contender: 5 to 140

    string -> string, short (keys and values <= 7 bytes) (SS), 25,000 keys
    contender                 insert ops/s  ratio   best    lookup ops/s  ratio   best    delete ops/s  ratio   best
    Perl hash                    5,191,580  1.000  1.000      15,869,761  1.000  1.000       7,056,420  1.000  1.000
    Shared::SS                   4,989,452  0.961  0.884      10,654,942  0.671  0.750       8,131,426  1.152  1.000
    Shared::SS method            4,294,821  0.827  0.749       7,179,002  0.452  0.518       6,329,992  0.897  0.770
    BerkeleyDB                   1,871,163  0.360  0.315       2,002,831  0.126  0.118       1,422,134  0.202  0.158
    LMDB_File                      227,508  0.044  0.038       1,136,214  0.072  0.067         226,896  0.032  0.025
    Cache::FastMmap                206,672  0.040  0.035         238,878  0.015  0.014         240,098  0.034  0.028
    Hash::SharedMem                795,576  0.153  0.137       4,873,135  0.307  0.304       1,014,303  0.144  0.112
      timed passes of each contender: 5 to 167

    string -> string, long (keys and values 50-100 bytes) (SS), 25,000 keys
    contender                 insert ops/s  ratio   best    lookup ops/s  ratio   best    delete ops/s  ratio   best
    Perl hash                    3,333,466  1.000  1.000       9,443,636  1.000  1.000       5,065,766  1.000  1.000
    Shared::SS                   2,956,350  0.887  0.644       7,775,298  0.823  0.844       3,371,285  0.666  0.496
    Shared::SS method            2,683,421  0.805  0.581       6,332,915  0.671  0.683       2,937,553  0.580  0.460
    BerkeleyDB                   1,207,376  0.362  0.291       1,473,854  0.156  0.148       1,058,231  0.209  0.172
    LMDB_File                      193,114  0.058  0.041         916,030  0.097  0.089         190,680  0.038  0.026
    Cache::FastMmap                202,894  0.061  0.042         217,183  0.023  0.021         225,348  0.044  0.032
    Hash::SharedMem                675,196  0.203  0.151       3,536,826  0.375  0.381         773,757  0.153  0.109
      timed passes of each contender: 5 to 106

    string -> integer (keys key:N) (SI), 25,000 keys
    contender                 insert ops/s  ratio   best increment ops/s  ratio   best
    Perl hash                    7,028,398  1.000  1.000      19,267,310  1.000  1.000
    Shared::SI                   4,666,194  0.664  0.587      10,815,689  0.561  0.692
    Shared::SI method            4,067,482  0.579  0.508       8,015,937  0.416  0.479
    BerkeleyDB                   1,765,058  0.251  0.216         859,584  0.045  0.042
    LMDB_File                      195,307  0.028  0.026         221,909  0.012  0.011
    Cache::FastMmap                202,990  0.029  0.025         130,420  0.007  0.006
    Hash::SharedMem                801,841  0.114  0.106         618,974  0.032  0.033
      timed passes of each contender: 5 to 212

In one process, this module reads 2.2 to 3.4 times as fast as
Hash::SharedMem (the fastest of the others at reading; across processes,
with a writer running, Hash::SharedMem's reader kept up better in some
runs), 5 to 8 times as fast as BerkeleyDB, 8 to 14 times as fast as
LMDB_File and 36 to 68 times as fast as Cache::FastMmap. It inserts 2.4 to
3.3 times and deletes 3 to 6 times as fast as the fastest of them
(BerkeleyDB), and its increments, atomic across processes, run 13 to 18
times as fast as BerkeleyDB's get-then-put (which is not atomic) and 17 to
23 times as fast as Hash::SharedMem's compare-and-set loop.

=head2 LRU and TTL

The same SS workloads on a map with LRU or TTL beside a plain map, in one
run (ratio: policy map / plain map, of the median passes, then of the
best). DESIGN.md asks reads to stay within 10%.

                    ------ median pass, ops/s -----  ------- best pass, ops/s ------
    policy (SS)       plain map      policy  ratio    plain map      policy  ratio  passes  budget
    LRU fill          4,028,160   2,360,955  0.586    4,289,573   2,500,106  0.583   47/47
    LRU lookup       10,347,072   9,467,811  0.915   11,860,235  11,484,342  0.968 114/114  >= 0.90
    LRU evicting      4,035,864   3,611,293  0.895    4,269,215   3,734,077  0.875   48/48
    TTL insert        3,934,218   3,381,482  0.860    4,233,047   3,584,064  0.847   46/46
    TTL lookup       10,525,469   9,479,532  0.901   11,826,745  11,149,545  0.943 125/125  >= 0.90
    LRU+TTL lookup    8,027,406   7,175,856  0.894   11,692,356  10,767,823  0.921   92/92  >= 0.90  BELOW
    TTL flush         5,179,214   6,710,384  1.296    5,179,214   6,710,384  1.296     1/1  (plain: remove each key; one pass)

C<LRU evicting> has C<max_size> N/2, so half its inserts evict. C<TTL
flush> is C<flush_expired> of 25,000 expired entries beside removing them
one by one from a plain map.

=head2 Across processes

Two processes on one SS map of 25,000 keys (20-byte values); each opens
its own handle after C<fork>, runs for one second, best of three runs.
Writes alternate between two values of the same length, so no store can
skip writing an equal value. C<cpu> is the share of a CPU each process got
(below 100% the machine was busy or a process slept on the lock);
C<reference> is DESIGN.md's target (the C implementation's figure times
1.3) for the total; C<at 100% cpu> is ops per CPU-second of each process,
summed.

    cross (2 processes, SS)     contender         total ops/s  cpu  at 100% cpu  per process      reference
    reads: 1 writer + 1 reader  Shared::SS          9,748,750  54%   17,936,790  w 6.00M r 3.75M  2.34M
                                LMDB_File           1,178,383  99%    1,195,904  w 160k r 1.02M   Shared 8.27x this
                                Cache::FastMmap       438,662  98%      447,264  w 202k r 237k    Shared 22.22x this
                                Hash::SharedMem     3,493,278  98%    3,562,410  w 870k r 2.62M   Shared 2.79x this
    writes: both write          Shared::SS          5,508,610  98%    5,637,755  w 2.77M w 2.74M  4.16M
                                LMDB_File             126,511  60%      211,268  w 64k w 63k      Shared 43.54x this
                                Cache::FastMmap       382,703  97%      396,195  w 195k w 188k    Shared 14.39x this
                                Hash::SharedMem     1,264,032  81%    1,552,083  w 574k w 690k    Shared 4.36x this
    mixed: both 50/50           Shared::SS          8,070,935  92%    8,757,013  m 4.03M m 4.04M  6.11M
                                LMDB_File             218,587  72%      301,178  m 98k m 120k     Shared 36.92x this
                                Cache::FastMmap       434,346  98%      442,478  m 218k m 216k    Shared 18.58x this
                                Hash::SharedMem     2,212,745  82%    2,696,839  m 1.07M m 1.14M  Shared 3.65x this
    both read                   Shared::SS         20,615,801  99%   20,729,798  r 10.37M r 10.24M -
                                LMDB_File           2,164,587 100%    2,175,000  r 1.07M r 1.10M  Shared 9.52x this
                                Cache::FastMmap       487,981  98%      497,525  r 243k r 245k    Shared 42.25x this
                                Hash::SharedMem    10,140,086  99%   10,201,010  r 5.04M r 5.10M  Shared 2.03x this

The figures with a writer vary more than any other between runs on this
virtual machine: in other runs the same day (some with earlier builds),
"reads" totalled 2.6 M (the reader 1.2 M/s), "writes" 4.1 M, "mixed" 2.7 to
7.8 M and "both read" 16 to 20 M. A separate test that made a new map for
every run found a reader beside a writer at 1.05 to 1.35 M/s in 14 runs of
15, and at 4.9 M/s in one. The likely cause: while a writer changes
entries, the cache lines it writes move to the reader's core at every
write, and what that costs depends on where the hypervisor has put the two
vCPUs (sharing a core's caches or not), which a guest can neither see nor
choose. The engine benchmark shows the same effect: a string read takes
30 ns alone and 151 ns on average while another thread writes (below). The
ratios between modules in one run are steadier than the totals.

=head2 Memory

F<bench/memory.pl>: the resident part of the map file's mapping in the
process that filled it (the C<Rss:> lines of F</proc/self/smaps>), the
file's disk use (C<stat> blocks times 512: the file is sparse), and, for
comparison, how much the resident set of a new process grows while it
builds a Perl hash of the same data. Map files on ext4.

    map                       entries     map RSS    /entry        disk    /entry   Perl hash    /entry map/Perl
    II, 1M entries          1,000,000    23.3 MiB      24.4    23.3 MiB      24.4   124.2 MiB     130.2    0.19
    SS, 100k entries          100,000    16.8 MiB     176.2    17.0 MiB     178.5    27.1 MiB     284.3    0.62
    SS, max 10M, 100 held         100    88.0 KiB     901.1    80.0 KiB     819.2           -         -       -

    II, 1M entries         file length 46.8 MiB, table capacity 1,333,335 slots, string storage in use 0 B
    SS, 100k entries       file length 21.9 MiB, table capacity 133,335 slots, string storage in use 13.7 MiB
    SS, max 10M, 100 held  file length 610.7 MiB, table capacity 256 slots, string storage in use 14.1 KiB

The SS entries have 20-byte keys and 100-byte values (120 bytes of data);
II entries hold 16 bytes. An II map of a million entries takes 24 bytes per
entry (1,333,335 slots of 16 bytes plus a control byte, 75% full), 0.19
times what a Perl hash takes; SS takes 176 bytes per entry (133,335 slots
of 24 bytes, and 13.7 MiB of string storage: 144 bytes per entry for 120
bytes of data), 0.62 times a Perl hash. A map made for 10 million entries
that holds 100 uses 88 KiB of RAM and 80 KiB of disk: the length of its
file (611 MiB) is address space only.

Every variant, a fresh map of C<max_entries> N filled to N, bytes per entry
averaged over N = 20,000 to 60,000 (C<bench/memory.pl --variants>; integer
keys and values, string keys of 20 bytes, string values of 16):

    I16 8.0   I32 13.3   II 25.6   I16S/I32S/IS 48.9   SI16/SI32/SI 64.5   SS 88.5

A plain map with integer keys keeps only a control byte and the key and
value at their own widths per slot (I16: 2 + 2 bytes); string keys, LRU and
TTL use 24-byte slots (32 with LRU or TTL, and 16 bytes of LRU links).

=head2 Checked multi-process runs

F<bench/stress.pl> runs these scenarios and exits non-zero when a check
fails (C<--quick>: 1.2 seconds per timed phase, about 10 seconds in all;
without it, 5 seconds and larger maps, about 40 seconds):

    writers   4 processes x 25,000 keys x 2 maps in 0.11s (1,836,913 puts/s); all present
    torn      3 maps (SS, SS with LRU and TTL, II); writer 389,750 ops/s; 3 readers
              1,226,500 reads/s, 0 torn of 1,471,800 (values carry their key and a checksum)
    counter   8 processes: 20,433,000 incr (17,027,500/s) + 2,043,300 incr_by, sums exact
    churn     4 processes: 387,400 put/remove of random-length strings (322,833/s);
              every process finds exactly its keys; verify passes; arena_used peak
              1,831,760 bytes, 0 after removing every key
    lru       4 processes: 879,537 adds (732,948/s), 878,537 evictions, size 1,000
              (max_size 1,000, never above it in 2,466,863 samples); evictions = adds - size
    reads     1 process    8,835,569 reads/s
              2 processes 19,884,801 reads/s (2.25x; both at 100% cpu)
              4 processes 18,991,468 reads/s (2.15x; 4 processes on 2 cpus)

Reads scale with the processes up to the number of CPUs: they take no lock
and write nothing shared.

=head2 The engine alone

C<cargo bench --bench engine> (Rust, no Perl; best of 5 passes of 25,000
operations; the C<1 writer> rows read while a second thread writes to the
same map through its own handle, SS values alternating between 5 and 33
bytes):

    II put                       17.8 ns/op
    II get hit                    5.8 ns/op
    II get miss                  13.5 ns/op
    II incr_by                    9.5 ns/op
    II get hit, 1 writer          6.0 ns/op (mean 6.5; writer 20.8 M puts/s meanwhile)
    SS put                       61.5 ns/op
    SS get hit                   29.8 ns/op
    SS get miss                   9.7 ns/op
    SS remove+put                94.8 ns/op
    SS get hit, 1 writer         37.0 ns/op (mean 151.5; writer 5.6 M puts/s meanwhile)

A keyword get costs about 55 ns per operation in Perl (18 million a
second), of which the engine's lookup is 6 ns for II: the rest is Perl's
loop, the op itself and making the result scalar.

=head2 The budgets, met and missed

Against the targets of F<DESIGN.md> (ratios of the median passes at 25,000
entries, the run above; the best passes gave nearly the same ratios). Until
issue 16 this section reported the best passes against a Perl hash copied
from another hash (C<%h = %fill>), whose entries then lay scattered against
the order the loop read them, while the map's lay in that order: that Perl
hash ran a get up to 1.4 times slower than one filled in key order, and the
ratios were correspondingly higher (SS get 1.01, II get 1.11). Both sides
are now filled the same way.

=over

=item Met

SI incr 0.694 (target 0.65); LRU lookup 0.915 and TTL lookup 0.901 of the
plain map (within 10%, narrowly). Across processes, in this run: 9.75 M
reads (target 2.34 M), 5.51 M writes (4.16 M), 8.07 M mixed (6.11 M); see
L</"Across processes"> for why the figures with a writer swing so much on
this machine; the targets come from another machine in any case.

=item Missed

II get 0.899 against 1.9, IS get 0.843 (1.1), SS get 0.778 (0.85), II put
0.938 (1.2), IS put 0.769 (1.1), SS put 0.710 (1.0), SS remove then put
1.007 (1.1), II incr 0.797 (1.05); LRU+TTL lookup 0.894 of the plain map
(0.9; 0.921 for the best passes); inserts into an empty map 0.54 to 0.76
(0.9).

Counted with callgrind (F<bench/instructions.pl>; F<DESIGN.md> has the
table), one C<$x = shm_ii_get $m, $k> iteration is 635 instructions against
608 for C<$x = $h{$k}>: the loop and the dispatch of ops take 185 to 195
on both sides and storing the result in C<$x> 104; the keyword's op costs 115 and its three pad reads 74
where Perl's single C<multideref> op costs 100 and one pad read 28; the
engine call (C<dhms_get> and below) costs 147 where Perl's C<hv_common>
costs 151. For SS get (1,019 against 786) the engine call costs 393 plus
30 of copying, against 153 in C<hv_common>. Inserts also pay the kernel:
a cleared map gives its memory back and faults it in again as it grows
(770 to 1,090 minor page faults per 25,000 inserts, the Perl hash 1 or 2).

=item Not checked

Resident memory per entry against the C implementation's: its figures are
not available on this machine, so only the figures above are given (24
bytes per II entry at a million, 176 per SS entry; 0.19 and 0.62 times a
Perl hash; I16, I32 and II 8.0, 13.3 and 25.6 at 20,000 to 60,000).

=back

Two cautions when reading these ratios. The Perl hash's speed depends on
where its entries lie in memory: in a process that has freed many entries
before, a Perl hash built afresh looks up to 2.4 times slower than one
built in a new process; one built in another order than it is read
(C<%h = %other>) 1.4 times slower; and a cold pass (after the passes of six
other stores evicted it from the caches) ran at a third of the speed of a
warm one. F<vs.pl> therefore runs every workload in a process of its own,
fills both sides in the order the loop reads them and times a pass only
after an untimed one, which gives the Perl hash its best case: read in a
random order, the map's SS get ratio was 1.04 to 1.10 where it was 0.76 to
0.80 in key order. And inserts are compared from an empty hash that grows
(C<undef %h>), as the map grows from its smallest table after C<clear>; a
Perl hash emptied with C<%h = ()> keeps its buckets and inserts 1.6 times
as fast. Even so the insert rows time a refill: the memory a Perl hash
freed stays in its process's malloc for the next pass, while a cleared map
gives its pages back (to every process: memory follows the data) and takes
fresh ones as it grows again, about a third of its pass. The first-insert
rows time a first fill instead, a new map and a new hash in a perl started
for each pass; there the map inserted 1.13 to 1.36 times as fast as the
Perl hash (II, IS, SS and SI), where the insert rows give 0.6 to 0.9.

=head1 SEE ALSO

L<Data::HashMap::Shared::Cookbook>, recipes with complete programs;
L<hashmap-shared>, the command-line tool; the ten variant pages
(L<Data::HashMap::Shared::II> and its siblings).

L<XS::Parse::Keyword>, which provides the keyword syntax.

=head2 Alternatives, and when to pick each

Data::HashMap::Shared is for live, typed, mutable data shared by processes
on one Linux machine at high rates: lock-free reads, atomic counters, LRU
and TTL built in, and a lock that survives the death of its holder. It is
not a database: no transactions over several keys, no ordered keys or range
scans, no durability guarantee on disk (it is a memory map; the page cache
writes it back when it likes), no nested Perl structures (serialize them).
Other modules make other trades:

=over

=item L<Hash::SharedMem>

A shared hash of byte-string keys and values in a directory of mmap'd
files, readable as a consistent snapshot of the whole hash at any moment,
and portable beyond Linux. Pick it when readers need whole-hash snapshots,
or for a platform other than Linux; it has no integer values, counters,
LRU or expiry.

=item L<Cache::FastMmap>

A shared cache in an mmap'd file, divided into pages, each with its own
C<fcntl> lock and its own LRU and expiry. It stores any Perl data
(serializing it for you), and can read through to and write back to a
backing store with callbacks. Pick it for a cache of Perl structures with
a backing store, or outside Linux; prefer this module for counters, hot
keys written by many processes, exact LRU over the whole map, or raw
speed.

=item L<LMDB_File>

The Perl binding of LMDB: a memory-mapped B+tree with ACID transactions,
sorted keys and range scans, several databases in one environment, durable
on disk and bigger than RAM. Pick it when the data must survive a crash of
the machine, when several keys must change together, or when you need keys
in order. Each write transaction commits (and by default syncs), so
frequent small writes cost far more.

=item L<BerkeleyDB>

Berkeley DB: hash, B-tree, queue and record access methods, transactions,
locking and replication in a shared environment. Pick it to read or share
existing Berkeley DB files, or for its queue and transaction machinery
across several tables; it is heavier to set up, and recent versions have a
restrictive licence.

=item L<IPC::Shareable>

Ties Perl variables, nested structures included, to System V shared
memory, serializing the whole variable on every access under a semaphore.
Pick it for small nested structures shared by a few processes at low
rates; its cost grows with the size of the data on every access.

=item A plain hash and C<fork>

Data loaded into a hash before C<fork> is shared with every child at no
cost, copy-on-write, but a change made by one process is seen by no other.
Pick it for read-only data (configuration, lookup tables) loaded once at
startup: nothing is faster. (Perl's reference counts touch the pages they
live in, so the sharing erodes as children run.)

=back

The engine is also a Rust library (F<rust/> in the distribution): Rust
programs can open and share the same map files.

=head1 AUTHOR

The Data::HashMap::Shared developers. Report bugs and send patches at
L<https://github.com/data-hashmap-shared/Data-HashMap-Shared/issues>.

=head1 COPYRIGHT AND LICENSE

This software is copyright (c) 2026 by the Data::HashMap::Shared developers.

This is free software; you can redistribute it and/or modify it under the
same terms as the Perl 5 programming language system itself: the GNU General
Public License, version 1 or later, or the Artistic License (the file
F<LICENSE> in the distribution says where to find both). That covers the Rust
engine in F<rust/> too.

=cut
