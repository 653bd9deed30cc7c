/*
 * ops.h - THE list of operations (X-macro).
 *
 * One line per operation:
 *
 *   X(name, min_args, max_args, flags, "usage")
 *
 *   name      method name; keyword shm_<prefix>_<name>; its body is
 *             S_body_<name> in Shared.xs (one body serves the custom op
 *             and the method of every variant)
 *   min_args,
 *   max_args  argument count including the map (or class); keyword
 *             operations take exactly min_args == max_args (1..4)
 *   flags     OPF_KW       also a keyword (and a custom op)
 *             OPF_INTVAL   only on integer-value variants
 *             OPF_NOMAP    the body gets no map: it reads args[0] itself
 *                          (class methods)
 *             OPF_TARG     a scalar result that `$x = shm_..._op ...` stores
 *                          straight into $x (the assignment is folded)
 *   "usage"   argument list for the "Usage: Class::name(...)" croak
 *
 * Adding an operation: one line here, one S_body_<name> in Shared.xs,
 * and its POD in Shared.pm.
 */
#ifndef DHMS_OPS_H
#define DHMS_OPS_H

#define OPF_METHOD 0x00 /* method only (every op is a method) */
#define OPF_KW     0x01 /* also a keyword shm_<prefix>_<name> (custom op) */
#define OPF_INTVAL 0x02 /* integer-value variants only */
#define OPF_NOMAP  0x04 /* no map resolved: the body reads args[0] itself */
#define DHMS_ANY_ARGS 0x7fffffff /* max_args of the batch methods */
#define OPF_TARG   0x10 /* a scalar result: `$lexical = shm_<prefix>_<name> ...` is
                         * folded into the op, which then stores into the
                         * lexical (Shared.xs, S_ck_sassign) */
#define OPF_CURSOR 0x08 /* args[0] is a cursor; the method is installed in
                           <package>::Cursor without the "cursor_" prefix */

#define DHMS_OP_LIST(X)                                                 \
    /* one key */                                                       \
    X(put,             3, 3, OPF_KW,            "$map, $key, $value")   \
    X(get,             2, 2, OPF_KW|OPF_TARG,   "$map, $key")           \
    X(exists,          2, 2, OPF_KW,            "$map, $key")           \
    X(remove,          2, 2, OPF_KW,            "$map, $key")           \
    X(take,            2, 2, OPF_KW|OPF_TARG,   "$map, $key")           \
    X(get_or_set,      3, 3, OPF_KW|OPF_TARG,   "$map, $key, $default") \
    /* expiry and recency */                                            \
    X(put_ttl,         4, 4, OPF_KW,        "$map, $key, $value, $seconds") \
    X(ttl_remaining,   2, 2, OPF_KW|OPF_TARG,   "$map, $key")           \
    X(touch,           2, 2, OPF_KW,            "$map, $key")           \
    X(persist,         2, 2, OPF_KW,            "$map, $key")           \
    X(set_ttl,         3, 3, OPF_KW,            "$map, $key, $seconds") \
    X(get_with_ttl,    2, 2, OPF_METHOD,        "$map, $key")           \
    X(flush_expired,   1, 1, OPF_KW,            "$map")                 \
    X(flush_expired_partial, 2, 2, OPF_KW,      "$map, $limit")         \
    /* conditional and atomic writes */                                 \
    X(add,             3, 3, OPF_KW,            "$map, $key, $value")   \
    X(update,          3, 3, OPF_KW,            "$map, $key, $value")   \
    X(add_ttl,         4, 4, OPF_KW,        "$map, $key, $value, $seconds") \
    X(update_ttl,      4, 4, OPF_KW,        "$map, $key, $value, $seconds") \
    X(swap,            3, 3, OPF_KW|OPF_TARG,   "$map, $key, $value")   \
    X(cas,             4, 4, OPF_KW,      "$map, $key, $expected, $desired") \
    X(cas_take,        3, 3, OPF_KW|OPF_TARG,   "$map, $key, $expected") \
    X(max,             3, 3, OPF_KW|OPF_INTVAL, "$map, $key, $value")   \
    X(min,             3, 3, OPF_KW|OPF_INTVAL, "$map, $key, $value")   \
    /* removing from the ends */                                        \
    X(pop,             1, 1, OPF_KW,            "$map")                 \
    X(shift,           1, 1, OPF_KW,            "$map")                 \
    X(drain,           2, 2, OPF_KW,            "$map, $n")             \
    /* cursors */                                                       \
    X(cursor,          1, 1, OPF_KW,            "$map")                 \
    X(cursor_next,     1, 1, OPF_KW|OPF_NOMAP|OPF_CURSOR, "$cursor")    \
    X(cursor_reset,    1, 1, OPF_KW|OPF_NOMAP|OPF_CURSOR, "$cursor")    \
    X(cursor_seek,     2, 2, OPF_KW|OPF_NOMAP|OPF_CURSOR, "$cursor, $key") \
    /* batches (method only) */                                         \
    X(set_multi,       1, DHMS_ANY_ARGS, OPF_METHOD,      "$map, $key => $value, ...") \
    X(get_multi,       1, DHMS_ANY_ARGS, OPF_METHOD,      "$map, $key, ...")      \
    X(remove_multi,    1, DHMS_ANY_ARGS, OPF_METHOD,      "$map, $key, ...")      \
    /* counters */                                                      \
    X(incr,            2, 2, OPF_KW|OPF_INTVAL, "$map, $key")           \
    X(decr,            2, 2, OPF_KW|OPF_INTVAL, "$map, $key")           \
    X(incr_by,         3, 3, OPF_KW|OPF_INTVAL, "$map, $key, $delta")   \
    /* whole map */                                                     \
    X(size,            1, 1, OPF_KW,            "$map")                 \
    X(max_entries,     1, 1, OPF_KW,            "$map")                 \
    X(max_size,        1, 1, OPF_KW,            "$map")                 \
    X(ttl,             1, 1, OPF_KW,            "$map")                 \
    X(keys,            1, 1, OPF_KW,            "$map")                 \
    X(values,          1, 1, OPF_KW,            "$map")                 \
    X(items,           1, 1, OPF_KW,            "$map")                 \
    X(to_hash,         1, 1, OPF_KW,            "$map")                 \
    X(each,            1, 1, OPF_KW,            "$map")                 \
    X(iter_reset,      1, 1, OPF_KW,            "$map")                 \
    X(clear,           1, 1, OPF_KW,            "$map")                 \
    /* diagnostics */                                                   \
    X(capacity,        1, 1, OPF_KW,            "$map")                 \
    X(tombstones,      1, 1, OPF_KW,            "$map")                 \
    X(mmap_size,       1, 1, OPF_KW,            "$map")                 \
    X(arena_used,      1, 1, OPF_KW,            "$map")                 \
    X(arena_cap,       1, 1, OPF_KW,            "$map")                 \
    X(reserve,         2, 2, OPF_KW,            "$map, $n")             \
    X(stat_evictions,  1, 1, OPF_KW,            "$map")                 \
    X(stat_expired,    1, 1, OPF_KW,            "$map")                 \
    X(stat_recoveries, 1, 1, OPF_KW,            "$map")                 \
    /* method only */                                                   \
    X(new,             3, 8, OPF_NOMAP,                                 \
      "$class, $path, $max_entries, $max_size = 0, $ttl = 0, "          \
      "$lru_skip = 0, $arena_cap = 0, $file_mode = 0600")               \
    X(new_memfd,       3, 8, OPF_NOMAP,                                 \
      "$class, $name, $max_entries, $max_size = 0, $ttl = 0, "          \
      "$lru_skip = 0, $arena_cap = 0, $file_mode = 0600")               \
    X(new_from_fd,     2, 2, OPF_NOMAP,         "$class, $fd")          \
    X(new_readonly,    2, 2, OPF_NOMAP,         "$class, $path")        \
    X(new_sharded,     4, 9, OPF_NOMAP,                                 \
      "$class, $prefix, $shards, $max_entries, $max_size = 0, $ttl = 0, " \
      "$lru_skip = 0, $arena_cap = 0, $file_mode = 0600")               \
    X(freeze,          1, 1, OPF_METHOD,        "$map")                 \
    X(sync,            1, 1, OPF_METHOD,        "$map")                 \
    X(memfd,           1, 1, OPF_METHOD,        "$map")                 \
    X(frozen,          1, 1, OPF_METHOD,        "$map")                 \
    X(readonly,        1, 1, OPF_METHOD,        "$map")                 \
    X(stats,           1, 1, OPF_METHOD,        "$map")                 \
    X(verify,          1, 1, OPF_METHOD,        "$map")                 \
    X(path,            1, 1, OPF_METHOD,        "$map")                 \
    X(wait_timeout,    1, 2, OPF_METHOD,        "$map [, $seconds]")   \
    X(unlink,          1, 2, OPF_NOMAP,         "$map | $class, $path")

#endif /* DHMS_OPS_H */
