/*
 * dhms.h - the C ABI of the Data::HashMap::Shared engine (rust/src/ffi.rs).
 *
 * Written by hand; it mirrors rust/src/ffi.rs and must change with it.
 * The engine never calls back into Perl and never unwinds across this
 * boundary: every function catches panics and returns DHMS_ERROR.
 *
 * Conventions
 *   - A map handle (dhms_map *) belongs to one interpreter thread at a time.
 *   - Functions returning int return a dhms_status.
 *   - On DHMS_ERROR the message is in dhms_last_error() (thread-local, valid
 *     until the next call into the engine from this thread).
 *   - Keys and values cross as dhms_item (input, or a view of engine-owned
 *     bytes) or dhms_out (output into a caller-owned buffer).
 *     For integer kinds only .num is used; for byte-string kinds ptr/len/utf8.
 *     An output's buffer may be uninitialized; it must not overlap the bytes
 *     of an input or another output's buffer of the same call (the engine
 *     views them as Rust slices: shared for inputs, exclusive for outputs).
 *   - DHMS_ESMALL: a string result did not fit the caller's buffer. Nothing
 *     was changed; out->len (and for pair results both outs' len) holds the
 *     size needed. Grow the buffer and call again.
 */
#ifndef DHMS_H
#define DHMS_H

#include <stddef.h>
#include <stdint.h>

typedef struct dhms_map dhms_map;

/* Variants, in SPEC order. The number is stored in the file header. */
enum dhms_variant {
    DHMS_I16 = 0,  /* int16 -> int16   */
    DHMS_I32 = 1,  /* int32 -> int32   */
    DHMS_II = 2,   /* int64 -> int64   */
    DHMS_I16S = 3, /* int16 -> bytes   */
    DHMS_I32S = 4, /* int32 -> bytes   */
    DHMS_IS = 5,   /* int64 -> bytes   */
    DHMS_SI16 = 6, /* bytes -> int16   */
    DHMS_SI32 = 7, /* bytes -> int32   */
    DHMS_SI = 8,   /* bytes -> int64   */
    DHMS_SS = 9,   /* bytes -> bytes   */
    DHMS_VARIANTS = 10
};

enum dhms_status {
    DHMS_OK = 0,     /* done; the answer is yes / found / stored          */
    DHMS_FALSE = 1,  /* done; the answer is no / missing / not stored     */
    DHMS_EFULL = 2,  /* not stored: max_entries or arena_cap reached      */
    DHMS_ERANGE = 3, /* counter result outside the value type; unchanged  */
    DHMS_ESMALL = 4, /* output buffer too small; unchanged; see len       */
    DHMS_ERROR = 5,  /* failed; message in dhms_last_error()              */
    DHMS_ENOSPC = 6  /* not stored: the file system refused space (ENOSPC,
                      * EDQUOT, EFBIG); nothing was lost; message in
                      * dhms_last_error()                                  */
};

/* An input key/value, or a read-only view of bytes owned by the engine. */
typedef struct dhms_item {
    const uint8_t *ptr; /* bytes (string kinds); may be NULL when len == 0 */
    size_t len;
    int64_t num;        /* integer kinds */
    uint32_t utf8;      /* 1 if the Perl string had the UTF-8 flag */
} dhms_item;

/* An output key/value written into a caller-owned buffer. */
typedef struct dhms_out {
    uint8_t *buf;       /* caller's buffer (string kinds) */
    size_t cap;         /* its size in bytes */
    size_t len;         /* bytes written; bytes needed on DHMS_ESMALL */
    int64_t num;        /* integer kinds */
    uint32_t utf8;
} dhms_out;

/* Constructor parameters; see SPEC section 3. Ignored when attaching. */
typedef struct dhms_params {
    uint64_t max_entries; /* 1 .. 2**32-1 */
    uint64_t max_size;    /* 0 = no LRU; else <= max_entries */
    uint64_t ttl;         /* seconds; 0 = no expiry */
    uint64_t lru_skip;    /* 0 .. 99 */
    uint64_t arena_cap;   /* bytes; 0 = grow on demand */
    uint32_t file_mode;   /* applied exactly, e.g. 0600 */
} dhms_params;

/* Diagnostics readable with dhms_info(). */
enum dhms_info_key {
    DHMS_INFO_SIZE = 0,
    DHMS_INFO_MAX_ENTRIES,
    DHMS_INFO_MAX_SIZE,
    DHMS_INFO_TTL,
    DHMS_INFO_LRU_SKIP,
    DHMS_INFO_CAPACITY,
    DHMS_INFO_TOMBSTONES,
    DHMS_INFO_MMAP_SIZE,
    DHMS_INFO_ARENA_USED,
    DHMS_INFO_ARENA_CAP,
    DHMS_INFO_STAT_EVICTIONS,
    DHMS_INFO_STAT_EXPIRED,
    DHMS_INFO_STAT_RECOVERIES,
    DHMS_INFO_VARIANT,
    DHMS_INFO_COUNT
};

/* ---- errors ---------------------------------------------------------- */

/* The message of the last DHMS_ERROR on this thread (never NULL). */
const char *dhms_last_error(void);

/* ---- lifetime -------------------------------------------------------- */

/* Create or attach the map at `path` (a NUL-terminated byte string).
 * Fails with DHMS_ERROR for a file of another variant, a corrupt header,
 * an unsupported version, or a failing system call; the message names the
 * path and the reason. */
int dhms_open(const char *path, uint32_t variant, const dhms_params *params, dhms_map **out);

/* Where dhms_open_source opens a map from. */
enum dhms_source_kind {
    DHMS_SRC_PATH = 0,     /* name: the file (created if absent)                */
    DHMS_SRC_MEMFD = 1,    /* name: a new memfd's name                          */
    DHMS_SRC_ANON = 2,     /* an anonymous map, shared with fork children only  */
    DHMS_SRC_FD = 3,       /* fd: attach the map in this descriptor (dup'ed)    */
    DHMS_SRC_READONLY = 4, /* name: a frozen map, mapped read-only              */
    DHMS_SRC_SHARDED = 5   /* name: prefix of files name.0 .. name.(shards-1)   */
};
typedef struct dhms_source {
    int kind;
    const char *name;
    int fd;
    uint32_t shards;
} dhms_source;

/* Create or attach a map from any source. Params are for new maps (for a
 * sharded map: for the whole map, divided among the shards); attaching
 * ignores them. Errors as dhms_open. */
int dhms_open_source(const dhms_source *src, uint32_t variant, const dhms_params *params,
                     dhms_map **out);

/* Seal a file-backed map: from now on every mutator on every handle fails
 * with "map is frozen". Synced to disk before it returns. */
int dhms_freeze(dhms_map *map);
/* msync the whole map (every shard); DHMS_ERROR on failure. */
int dhms_sync(dhms_map *map);
/* The handle's wait timeout in seconds: how long a wait on another live
 * process may see no progress before the operation fails (DHMS_ERROR). Set:
 * above 0, at most 86400 (every shard of a sharded map); DHMS_ERROR if not. */
double dhms_wait_timeout(const dhms_map *map);
int dhms_set_wait_timeout(dhms_map *map, double secs);
/* which: 0 the memfd descriptor (-1 unless a memfd map), 1 frozen, 2 read-only. */
int dhms_handle_info(const dhms_map *map, int which);

/* Detach and free the handle. NULL is allowed. */
void dhms_close(dhms_map *map);

/* The file's path as given to dhms_open (NUL-terminated; NULL for
 * anonymous, memfd and sharded maps). */
const char *dhms_path(const dhms_map *map);

/* unlink(2) of the map's file / of `path`: DHMS_OK if removed, else DHMS_FALSE.
 * The mapping stays usable. For a map on a server (a location such as
 * redis://host#MAP): its keys are deleted. */
int dhms_unlink(const dhms_map *map);
int dhms_unlink_path(const char *path);

/* ---- one key --------------------------------------------------------- */

/* OK stored; EFULL the key is new and the map (or arena) is full. */
int dhms_put(dhms_map *map, const dhms_item *key, const dhms_item *val);
/* OK found (value in *out); FALSE missing; ESMALL. Lock-free. */
int dhms_get(dhms_map *map, const dhms_item *key, dhms_out *out);
/* OK present; FALSE missing. Lock-free. */
int dhms_exists(dhms_map *map, const dhms_item *key);
/* OK removed; FALSE missing. */
int dhms_remove(dhms_map *map, const dhms_item *key);
/* OK removed, old value in *out; FALSE missing; ESMALL (nothing removed). */
int dhms_take(dhms_map *map, const dhms_item *key, dhms_out *out);
/* OK: *out holds the existing value, or `dflt` which was stored;
 * EFULL: the key is missing and cannot be stored; ESMALL. */
int dhms_get_or_set(dhms_map *map, const dhms_item *key, const dhms_item *dflt, dhms_out *out);
/* Integer-value variants only (DHMS_ERROR otherwise). A missing key starts
 * at 0. OK: *result is the new value; ERANGE: result outside the value type,
 * nothing changed; EFULL: the key is new and the map is full. */
int dhms_incr_by(dhms_map *map, const dhms_item *key, int64_t delta, int64_t *result);

/* A handle's own entry points for the keywords' hot operations, with the
 * signatures and contracts of the functions above (and of dhms_remove).
 * For a map in a file they are compiled for its key and value types (no
 * dispatch, the whole operation in one function); otherwise they are
 * dhms_get & co. */
typedef struct dhms_fast {
    int (*get)(dhms_map *map, const dhms_item *key, dhms_out *out);
    int (*exists)(dhms_map *map, const dhms_item *key);
    int (*put)(dhms_map *map, const dhms_item *key, const dhms_item *val);
    int (*incr_by)(dhms_map *map, const dhms_item *key, int64_t delta, int64_t *result);
    /* As get, for integer keys and integer values: OK (the value in *val)
     * or FALSE; no dhms_item or dhms_out to fill. */
    int (*get_num)(dhms_map *map, int64_t key, int64_t *val);
    /* As incr_by, for integer keys (and values), the key as a number. */
    int (*incr_num)(dhms_map *map, int64_t key, int64_t delta, int64_t *result);
    /* As put, for integer keys and integer values, both as numbers. */
    int (*put_num)(dhms_map *map, int64_t key, int64_t val);
    int (*remove)(dhms_map *map, const dhms_item *key);
} dhms_fast;

/* Every handle starts with this (the rest is the engine's). */
struct dhms_map_head {
    const dhms_fast *fast; /* never NULL */
};
#define DHMS_FAST(map) (((const struct dhms_map_head *)(map))->fast)

/* ---- expiry and recency (SPEC section 5 and 6) ------------------------ */

/* As dhms_put, with this entry's own lifetime in seconds (0 = permanent).
 * DHMS_ERROR on a map without TTL (the message says what to do). */
int dhms_put_ttl(dhms_map *map, const dhms_item *key, const dhms_item *val, uint64_t secs);
/* As dhms_get; *ttl = seconds left (0 = permanent, -1 = the map has no TTL). */
int dhms_get_with_ttl(dhms_map *map, const dhms_item *key, dhms_out *out, int64_t *ttl);
/* OK: *secs = seconds left (0 = permanent); FALSE: missing, expired, no TTL. */
int dhms_ttl_remaining(dhms_map *map, const dhms_item *key, uint64_t *secs);
/* Reset the lifetime to the default (permanent stays permanent) and mark
 * recently used. OK, or FALSE if missing or the map has neither LRU nor TTL. */
int dhms_touch(dhms_map *map, const dhms_item *key);
/* Lifetime from now (0 = permanent). OK, or FALSE if missing or no TTL. */
int dhms_set_ttl(dhms_map *map, const dhms_item *key, uint64_t secs);
/* Make permanent. OK, or FALSE if missing or no TTL. */
int dhms_persist(dhms_map *map, const dhms_item *key);
/* Remove expired entries, scanning up to `limit` slots from the position the
 * last call (from any process) left in the file; UINT64_MAX scans everything.
 * *removed = how many; *done = 1 once a full pass has ended. */
int dhms_flush_expired(dhms_map *map, uint64_t limit, uint64_t *removed, int *done);

/* ---- conditional and atomic writes ------------------------------------ */

/* Insert only if absent / overwrite only if present. ttl < 0: the map's
 * default lifetime; ttl >= 0: this entry's own (DHMS_ERROR without TTL).
 * OK stored; FALSE not (present / absent); EFULL. */
int dhms_add(dhms_map *map, const dhms_item *key, const dhms_item *val, int64_t ttl);
int dhms_update(dhms_map *map, const dhms_item *key, const dhms_item *val, int64_t ttl);
/* Store val. OK: the previous value is in *out; FALSE: a fresh insert;
 * EFULL: could not store; ESMALL (nothing changed). */
int dhms_swap(dhms_map *map, const dhms_item *key, const dhms_item *val, dhms_out *out);
/* Replace the value with *desired if it equals *expected (numbers for
 * integer values, bytes for strings). OK replaced; FALSE not; EFULL. */
int dhms_cas(dhms_map *map, const dhms_item *key, const dhms_item *expected,
             const dhms_item *desired);
/* Remove and return (in *out) the value if it equals *expected. */
int dhms_cas_take(dhms_map *map, const dhms_item *key, const dhms_item *expected, dhms_out *out);
/* Integer values: store max (want_max != 0) or min of the current value and
 * d (a missing key takes d), lock-free on an existing key. As dhms_incr_by. */
int dhms_extreme(dhms_map *map, const dhms_item *key, int64_t d, int want_max, int64_t *result);

/* ---- batches (each under one lock acquisition) ------------------------- */

/* items[2i] -> items[2i+1] for i < n; *stored = how many were stored. */
int dhms_set_multi(dhms_map *map, const dhms_item *items, size_t n, uint64_t *stored);
/* Values of keys[0..n) as a snapshot of n entries whose dhms_snapshot_entry
 * is DHMS_FALSE where the key is missing. */
typedef struct dhms_snapshot dhms_snapshot;
int dhms_get_multi(dhms_map *map, const dhms_item *keys, size_t n, dhms_snapshot **out);
int dhms_remove_multi(dhms_map *map, const dhms_item *keys, size_t n, uint64_t *removed);

/* ---- removing from the ends -------------------------------------------- */

/* Remove up to n entries and return them as a snapshot: from the least
 * recently used end (newest == 0; pop, drain) or the most recently used end
 * (newest != 0; shift) of an LRU map; from the table's last / first entry
 * otherwise. */
int dhms_take_ends(dhms_map *map, uint64_t n, int newest, dhms_snapshot **out);

/* ---- cursors ------------------------------------------------------------ */

/* A cursor is a position the caller keeps: pos[0] the shard (0 unless the
 * map is sharded), pos[1] DHMS_POS_START to begin. A walk
 * in hash order returns every entry present for the whole walk exactly once,
 * whatever resizes happen meanwhile. */
#define DHMS_POS_START UINT64_MAX
/* OK: the next entry (position advanced); FALSE: at the end (the position
 * stays there until reset); ESMALL: position kept. */
int dhms_cursor_next(dhms_map *map, uint64_t pos[2], dhms_out *key, dhms_out *val);
/* OK: *pos set so that the next step returns key; FALSE: key missing. */
int dhms_cursor_seek(dhms_map *map, const dhms_item *key, uint64_t pos[2]);
/* Forget what the engine keeps for a position (a map on a server keeps each
 * walk's de-duplication set): call before a position is reset, replaced or
 * dropped. Never fails; a no-op for local maps. */
void dhms_cursor_release(dhms_map *map, const uint64_t pos[2]);

/* ---- verification --------------------------------------------------------- */

/* Walk the whole map under the writer lock and check every invariant (header,
 * table, counts, string references, arena and free lists, LRU list):
 * DHMS_OK, or DHMS_ERROR with the first problem in dhms_last_error(). */
int dhms_verify(dhms_map *map);

/* ---- whole map ------------------------------------------------------- */

uint64_t dhms_info(const dhms_map *map, int which);
/* The same, asking the server for a map on one (size, stat_expired,
 * mmap_size): DHMS_OK with the value in *out, or DHMS_ERROR. */
int dhms_info_try(dhms_map *map, int which, uint64_t *out);
/* OK: capacity now fits n entries; FALSE: n > max_entries. */
int dhms_reserve(dhms_map *map, uint64_t n);
/* Removes every entry; the stat counters survive. */
int dhms_clear(dhms_map *map);

/* Per-handle iterator used by `each`. OK: the next entry is in *key and *val;
 * FALSE: the walk ended (the next call starts over); ESMALL: either buffer
 * too small (both len fields say what is needed; the position is kept). */
int dhms_each(dhms_map *map, dhms_out *key, dhms_out *val);
void dhms_iter_reset(dhms_map *map);

/* A consistent copy of all live entries, taken under the writer lock:
 * for keys / values / items / to_hash. */
int dhms_snapshot_take(dhms_map *map, dhms_snapshot **out);
size_t dhms_snapshot_len(const dhms_snapshot *snap);
/* Views of entry i (0 <= i < len); valid until dhms_snapshot_free.
 * DHMS_OK, or DHMS_FALSE if the entry has no value (get_multi: missing). */
int dhms_snapshot_entry(const dhms_snapshot *snap, size_t i, dhms_item *key, dhms_item *val);
void dhms_snapshot_free(dhms_snapshot *snap);

#endif /* DHMS_H */
