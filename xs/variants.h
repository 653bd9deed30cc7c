/*
 * variants.h - THE list of map variants (X-macro).
 *
 * One line per variant, in enum dhms_variant order (dhms.h):
 *
 *   X(NAME, prefix, DHMS_NUMBER, KEY_KIND, VALUE_KIND)
 *
 *   NAME        class suffix: Data::HashMap::Shared::NAME
 *   prefix      keyword prefix: shm_<prefix>_<op>, hint key
 *               "Data::HashMap::Shared/<prefix>"
 *   DHMS_NUMBER the engine's variant number (stored in the file header)
 *   KEY_KIND,
 *   VALUE_KIND  INT16, INT32, INT64 or BYTES (see enum dhms_kind in the .xs)
 *
 * Everything per variant (packages, methods, keywords) is generated from
 * this list at BOOT; nothing else names a variant.
 */
#ifndef DHMS_VARIANTS_H
#define DHMS_VARIANTS_H

#define DHMS_VARIANT_LIST(X) DHMS_VARIANT_LIST_WITH(DHMS_VARIANT_APPLY, X)

/* The same list with an extra first argument A for each X: for lists of
 * (something, variant) pairs, e.g. the hot ops' pp functions. */
#define DHMS_VARIANT_LIST_WITH(X, A)                  \
    X(A, I16,  i16,  DHMS_I16,  INT16, INT16)         \
    X(A, I32,  i32,  DHMS_I32,  INT32, INT32)         \
    X(A, II,   ii,   DHMS_II,   INT64, INT64)         \
    X(A, I16S, i16s, DHMS_I16S, INT16, BYTES)         \
    X(A, I32S, i32s, DHMS_I32S, INT32, BYTES)         \
    X(A, IS,   is,   DHMS_IS,   INT64, BYTES)         \
    X(A, SI16, si16, DHMS_SI16, BYTES, INT16)         \
    X(A, SI32, si32, DHMS_SI32, BYTES, INT32)         \
    X(A, SI,   si,   DHMS_SI,   BYTES, INT64)         \
    X(A, SS,   ss,   DHMS_SS,   BYTES, BYTES)
#define DHMS_VARIANT_APPLY(X, ...) X(__VA_ARGS__)

#endif /* DHMS_VARIANTS_H */
