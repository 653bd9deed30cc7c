/*
 * Shared.xs - the Perl side of Data::HashMap::Shared.
 *
 * This file holds no map logic. It converts SVs to the engine's dhms_item /
 * dhms_out and back, builds the custom ops behind the shm_<prefix>_<op>
 * keywords, installs the methods, and croaks on error statuses (always after
 * the engine call has returned and released its locks).
 *
 * Everything per variant and per operation comes from two lists:
 *   xs/variants.h  DHMS_VARIANT_LIST  the ten variants
 *   xs/ops.h       DHMS_OP_LIST       the operations
 * BOOT walks both and installs, for every (variant, op) pair, one method
 * (the generic XSUB S_xsub_dispatch) and, for keyword ops, one keyword that
 * compiles to the op's custom op. Each operation has exactly one body,
 * S_body_<op>, shared by its custom op and its method.
 */

#define PERL_NO_GET_CONTEXT
#include "EXTERN.h"
#include "perl.h"
#include "XSUB.h"

#include "XSParseKeyword.h"

#include "dhms.h"
#include "variants.h"
#include "ops.h"
#include "sigbus.h"

#include <string.h>

#ifndef G_LIST
#  define G_LIST G_ARRAY /* perl < 5.35.1 */
#endif
#ifndef XS_INTERNAL
#  define XS_INTERNAL(name) STATIC XSPROTO(name) /* perl < 5.15.2 */
#endif

#if defined(__GNUC__)
#  define DHMS_INLINE static inline __attribute__((always_inline))
#  define DHMS_COLD   static __attribute__((cold, noinline))
#  define DHMS_NORETURN static __attribute__((cold, noinline, noreturn))
#else
#  define DHMS_INLINE PERL_STATIC_INLINE
#  define DHMS_COLD   static
#  define DHMS_NORETURN static
#endif

/* ====================================================================== */
/* Kinds of keys and values                                               */
/* ====================================================================== */

enum dhms_kind { KIND_INT16, KIND_INT32, KIND_INT64, KIND_BYTES };

static const struct {
    IV min, max;      /* accepted range (integer kinds) */
    const char *name; /* for messages */
} S_kinds[] = {
    [KIND_INT16] = { -32768, 32767, "int16" },
    [KIND_INT32] = { -2147483647 - 1, 2147483647, "int32" },
    [KIND_INT64] = { IV_MIN, IV_MAX, "int64" },
    [KIND_BYTES] = { 0, 0, "byte string" },
};

/* ====================================================================== */
/* Variant descriptors, from DHMS_VARIANT_LIST                            */
/* ====================================================================== */

struct dhms_variant_desc {
    const char *name;    /* "II" */
    const char *package; /* "Data::HashMap::Shared::II" */
    const char *prefix;  /* "ii": keywords shm_ii_<op> */
    const char *hintkey; /* "Data::HashMap::Shared/ii", set by import */
    const char *cursor_package; /* "Data::HashMap::Shared::II::Cursor" */
    U8 id;               /* enum dhms_variant: index into S_variants */
    U8 key_kind;         /* enum dhms_kind */
    U8 val_kind;
};

#define X(NAME, prefix, ID, KEY, VAL)                                   \
    [ID] = { #NAME, "Data::HashMap::Shared::" #NAME, #prefix,           \
             "Data::HashMap::Shared/" #prefix,                          \
             "Data::HashMap::Shared::" #NAME "::Cursor",                \
             ID, KIND_##KEY, KIND_##VAL },
static const struct dhms_variant_desc S_variants[DHMS_VARIANTS] = {
    DHMS_VARIANT_LIST(X)
};
#undef X

/* ====================================================================== */
/* Operation descriptors, from DHMS_OP_LIST                               */
/* ====================================================================== */

/*
 * Stack discipline, shared by the custom ops and the methods.
 *
 * A body is called with args[0 .. nargs-1] = its arguments on the Perl stack
 * (args[0] is the map, or the class for class methods; m is the map already
 * resolved and checked unless the op has OPF_NOMAP). It writes its results
 * over its arguments, starting at args[0], and returns a pointer to the last
 * result (args - 1 for an empty list); the caller stores that in
 * PL_stack_sp. A body returning more values than it received EXTENDs from
 * args - 1 first and never touches args afterwards (EXTEND may move the
 * stack). In scalar and void context every body returns exactly one value.
 * Scalar results are targ (the custom op's pad target, or the method's
 * dXSTARG), an immortal (&PL_sv_yes, &PL_sv_no, &PL_sv_undef) or a mortal.
 */
typedef SV **(*dhms_body_fn)(pTHX_ const struct dhms_variant_desc *v, dhms_map *m,
                             SV **args, I32 nargs, SV *targ, U8 gimme);

/* Bodies are always_inline: each custom op gets its own copy, with nargs
 * constant; the methods call the out-of-line copy through S_ops. */
#define DHMS_BODY(name)                                                       \
    DHMS_INLINE SV **S_body_##name(pTHX_                                      \
        const struct dhms_variant_desc *v PERL_UNUSED_DECL,                   \
        dhms_map *m PERL_UNUSED_DECL, SV **args PERL_UNUSED_DECL,             \
        I32 nargs PERL_UNUSED_DECL, SV *targ PERL_UNUSED_DECL,                \
        U8 gimme PERL_UNUSED_DECL)

enum dhms_op_id {
#define X(name, ...) DHMS_OP_##name,
    DHMS_OP_LIST(X)
#undef X
    DHMS_N_OPS
};

#define X(name, ...) DHMS_BODY(name); static OP *S_pp_##name(pTHX);
DHMS_OP_LIST(X)
#undef X

struct dhms_op_desc {
    const char *name;     /* "get" */
    const char *xop_name; /* "dhms_get" */
    const char *xop_desc; /* "Data::HashMap::Shared get" */
    I32 min_args, max_args;  /* max DHMS_ANY_ARGS: no limit */
    U8 flags;             /* OPF_* */
    const char *usage;
    dhms_body_fn body;
    Perl_ppaddr_t pp;     /* the custom op (keyword ops only) */
};

#define X(name, min, max, flags, usage)                                      \
    { #name, "dhms_" #name, "Data::HashMap::Shared " #name, min, max, flags, \
      usage, S_body_##name, S_pp_##name },
static const struct dhms_op_desc S_ops[DHMS_N_OPS] = {
    DHMS_OP_LIST(X)
};
#undef X

/* A (variant, op) pair: CvXSUBANY of each method and hookdata of each
 * keyword point at one of these. */
struct dhms_method {
    const struct dhms_variant_desc *v;
    const struct dhms_op_desc *op;
};
static struct dhms_method S_methods[DHMS_VARIANTS][DHMS_N_OPS];

/* ====================================================================== */
/* Croaks                                                                 */
/* ====================================================================== */

/* A copy of sv for a message, taken without running get-magic again. */
static SV *S_shown(pTHX_ SV *sv)
{
    SV *copy = sv_newmortal();
    sv_setsv_flags(copy, sv, SV_NOSTEAL);
    return copy;
}
#define shown(sv) S_shown(aTHX_ sv)

DHMS_NORETURN void S_croak_engine(pTHX_ const struct dhms_variant_desc *v)
{
    Perl_croak(aTHX_ "%s: %s", v->package, dhms_last_error());
}
#define croak_engine(v) S_croak_engine(aTHX_ v)

/* A store that did not happen but is an answer, not an error: the map or
 * its arena is full, or the file system had no room (DHMS_ENOSPC; the
 * operations that must store croak with the engine's message instead). */
#define not_stored(st) ((st) == DHMS_EFULL || (st) == DHMS_ENOSPC)

/* Any status a body did not expect: DHMS_ERROR (or DHMS_ENOSPC where the
 * operation must store), or an engine bug. */
DHMS_NORETURN void S_croak_status(pTHX_ const struct dhms_variant_desc *v, int status)
{
    if (status == DHMS_ERROR || status == DHMS_ENOSPC)
        croak_engine(v);
    Perl_croak(aTHX_ "%s: internal error: unexpected engine status %d", v->package, status);
}
#define croak_status(v, st) S_croak_status(aTHX_ v, st)

/* A diagnostic value. For a map on a server it may take a round trip,
 * which may fail: then croak. */
static uint64_t S_info_of(pTHX_ const struct dhms_variant_desc *v, dhms_map *m, int which)
{
    uint64_t n = 0;
    int st = dhms_info_try(m, which, &n);
    if (st != DHMS_OK)
        croak_status(v, st);
    return n;
}
#define info_of(v, m, which) S_info_of(aTHX_ v, m, which)

DHMS_NORETURN void S_croak_undef(pTHX_ const struct dhms_variant_desc *v, const char *what)
{
    Perl_croak(aTHX_ "%s: %s is undef", v->package, what);
}
#define croak_undef(...) S_croak_undef(aTHX_ __VA_ARGS__)

DHMS_NORETURN void S_croak_not_int(pTHX_ const struct dhms_variant_desc *v, SV *sv)
{
    Perl_croak(aTHX_ "%s: '%" SVf "' is not an integer", v->package, SVfARG(shown(sv)));
}
#define croak_not_int(...) S_croak_not_int(aTHX_ __VA_ARGS__)

DHMS_NORETURN void S_croak_range_sv(pTHX_ const struct dhms_variant_desc *v, SV *sv, U8 kind)
{
    Perl_croak(aTHX_ "%s: %" SVf " does not fit %s", v->package, SVfARG(shown(sv)),
               S_kinds[kind].name);
}
#define croak_range_sv(...) S_croak_range_sv(aTHX_ __VA_ARGS__)

DHMS_NORETURN void S_croak_range_iv(pTHX_ const struct dhms_variant_desc *v, IV iv, U8 kind)
{
    Perl_croak(aTHX_ "%s: %" IVdf " does not fit %s", v->package, iv, S_kinds[kind].name);
}
#define croak_range_iv(...) S_croak_range_iv(aTHX_ __VA_ARGS__)

/* ====================================================================== */
/* The map object                                                         */
/* ====================================================================== */

/*
 * A map is a blessed reference to a scalar that carries PERL_MAGIC_ext magic
 * with S_map_vtbl: mg_ptr is the dhms_map *, mg_private the variant. The
 * magic's free hook closes the handle, exactly once, when the last reference
 * goes (so no DESTROY). A thread clone gets a NULL handle: a handle belongs
 * to one interpreter. fork needs nothing here: the engine handles it.
 */
static int S_mg_free(pTHX_ SV *sv, MAGIC *mg)
{
    dhms_map *m = (dhms_map *)mg->mg_ptr;
    PERL_UNUSED_ARG(sv);
    mg->mg_ptr = NULL;
    dhms_close(m);
    return 0;
}

#ifdef USE_ITHREADS
static int S_mg_dup(pTHX_ MAGIC *mg, CLONE_PARAMS *param)
{
    PERL_UNUSED_ARG(param);
    mg->mg_ptr = NULL;
    return 0;
}
#endif

static MGVTBL S_map_vtbl = {
    NULL, NULL, NULL, NULL, /* get, set, len, clear */
    S_mg_free,
    NULL,                   /* copy */
#ifdef USE_ITHREADS
    S_mg_dup,
#else
    NULL,
#endif
    NULL,                   /* local */
};

/* Why sv is not a map of variant v; croaks. */
DHMS_NORETURN void S_croak_not_map(pTHX_ const struct dhms_variant_desc *v, SV *sv)
{
    if (SvROK(sv) && SvTYPE(SvRV(sv)) >= SVt_PVMG) {
        MAGIC *mg = mg_findext(SvRV(sv), PERL_MAGIC_ext, &S_map_vtbl);
        if (mg && !mg->mg_ptr)
            Perl_croak(aTHX_ "%s: this map handle was opened in another thread; "
                       "open the map again in this thread", v->package);
        if (mg && mg->mg_private < DHMS_VARIANTS)
            Perl_croak(aTHX_ "%s: not a %s object (got a %s map)", v->package,
                       v->package, S_variants[mg->mg_private].package);
    }
    if (!SvOK(sv))
        Perl_croak(aTHX_ "%s: not a %s object (got undef)", v->package, v->package);
    if (SvROK(sv))
        Perl_croak(aTHX_ "%s: not a %s object (got a %s reference)", v->package,
                   v->package, sv_reftype(SvRV(sv), TRUE));
    Perl_croak(aTHX_ "%s: not a %s object (got '%" SVf "')", v->package, v->package,
               SVfARG(shown(sv)));
}
#define croak_not_map(...) S_croak_not_map(aTHX_ __VA_ARGS__)

/* The slow path: our magic is not first in the chain, or sv is wrong. */
DHMS_COLD dhms_map *S_map_from_slow(pTHX_ SV *sv, const struct dhms_variant_desc *v)
{
    if (SvROK(sv) && SvTYPE(SvRV(sv)) >= SVt_PVMG) {
        MAGIC *mg = mg_findext(SvRV(sv), PERL_MAGIC_ext, &S_map_vtbl);
        if (mg && mg->mg_ptr && mg->mg_private == v->id)
            return (dhms_map *)mg->mg_ptr;
    }
    croak_not_map(v, sv);
}
#define map_from_slow(...) S_map_from_slow(aTHX_ __VA_ARGS__)

/* The handle behind sv, which must be a map of variant v. No allocation, no
 * hash lookup: the first MAGIC in the chain is ours in every object that
 * new() made. */
DHMS_INLINE dhms_map *S_map_from(pTHX_ SV *sv, const struct dhms_variant_desc *v)
{
    SvGETMAGIC(sv);
    if (LIKELY(SvROK(sv))) {
        SV *obj = SvRV(sv);
        if (LIKELY(SvTYPE(obj) >= SVt_PVMG)) {
            MAGIC *mg = SvMAGIC(obj);
            if (LIKELY(mg && mg->mg_virtual == &S_map_vtbl && mg->mg_private == v->id
                       && mg->mg_ptr))
                return (dhms_map *)mg->mg_ptr;
        }
    }
    return map_from_slow(sv, v);
}
#define map_from(sv, v) S_map_from(aTHX_ sv, v)

/* ====================================================================== */
/* SV -> dhms_item (SPEC section 4)                                       */
/* ====================================================================== */

/* Truncate toward zero, as int() does; croak unless it fits int64. */
static IV S_nv_to_iv(pTHX_ const struct dhms_variant_desc *v, NV nv, SV *sv, U8 kind)
{
    if (Perl_isnan(nv))
        croak_not_int(v, sv);
    nv = nv < 0 ? -Perl_floor(-nv) : Perl_floor(nv);
    if (!(nv >= -9223372036854775808.0 && nv < 9223372036854775808.0))
        croak_range_sv(v, sv, kind);
    return (IV)nv;
}
#define nv_to_iv(...) S_nv_to_iv(aTHX_ __VA_ARGS__)

/* Everything but a plain IV: magic, undef, UV, NV, strings, references.
 * Returns an int64 (the caller checks the kind's narrower range). */
static IV S_sv_to_iv_slow(pTHX_ const struct dhms_variant_desc *v, SV *sv,
                             const char *what, U8 kind)
{
    STRLEN len;
    const char *pv;
    UV uv;
    int type;

    SvGETMAGIC(sv);
    if (SvIOK(sv)) {
        if (!SvIsUV(sv))
            return SvIVX(sv);
        if (SvUVX(sv) > (UV)IV_MAX)
            croak_range_sv(v, sv, kind);
        return (IV)SvUVX(sv);
    }
    if (!SvOK(sv))
        croak_undef(v, what);
    if (SvROK(sv) && !SvAMAGIC(sv))
        croak_not_int(v, sv);
    if (SvNOK(sv) && !SvPOK(sv))
        return nv_to_iv(v, SvNVX(sv), sv, kind);

    /* A string (or an object that overloads "" or 0+): it must look like
     * a number. Integers are taken exactly, digit by digit; for "12.7" the
     * integer part is in uv already (truncation toward zero). */
    pv = SvPV_nomg_const(sv, len);
    type = grok_number(pv, len, &uv);
    if (!type)
        croak_not_int(v, sv);
    if (type & (IS_NUMBER_INFINITY | IS_NUMBER_NAN))
        croak_range_sv(v, sv, kind);
    if (type & IS_NUMBER_IN_UV) {
        if (type & IS_NUMBER_NEG) {
            if (uv > (UV)IV_MAX + 1)
                croak_range_sv(v, sv, kind);
            return uv == (UV)IV_MAX + 1 ? IV_MIN : -(IV)uv;
        }
        if (uv > (UV)IV_MAX)
            croak_range_sv(v, sv, kind);
        return (IV)uv;
    }
    /* an exponent, or too many digits for a UV */
    return nv_to_iv(v, SvNV_nomg(sv), sv, kind);
}
#define sv_to_iv_slow(...) S_sv_to_iv_slow(aTHX_ __VA_ARGS__)

/* Fill *it from sv for a key or value of the given kind; `what` ("key",
 * "value", ...) names it in messages. Byte strings are taken as they are
 * (no upgrade or downgrade) with their UTF-8 flag; the item points into
 * sv's buffer, valid until sv changes. */
DHMS_INLINE void S_sv_to_item(pTHX_ const struct dhms_variant_desc *v, U8 kind, SV *sv,
                              dhms_item *it, const char *what)
{
    if (kind == KIND_BYTES) {
        STRLEN len;
        SvGETMAGIC(sv);
        if (UNLIKELY(!SvOK(sv)))
            croak_undef(v, what);
        it->ptr = (const uint8_t *)SvPV_nomg_const(sv, len);
        it->len = len;
        it->num = 0;
        it->utf8 = SvUTF8(sv) ? 1 : 0;
    }
    else {
        IV iv;
        if (LIKELY((SvFLAGS(sv) & (SVf_IOK | SVf_IVisUV | SVs_GMG)) == SVf_IOK))
            iv = SvIVX(sv);
        else
            iv = sv_to_iv_slow(v, sv, what, kind);
        if (kind != KIND_INT64 && UNLIKELY(iv < S_kinds[kind].min || iv > S_kinds[kind].max))
            croak_range_iv(v, iv, kind);
        it->num = iv;
        it->ptr = NULL; /* unused for integers: zeroed all the same */
        it->len = 0;
        it->utf8 = 0;
    }
}
#define sv_to_item(v, kind, sv, it, what) S_sv_to_item(aTHX_ v, kind, sv, it, what)

/* ====================================================================== */
/* dhms_out / dhms_item -> SV                                             */
/* ====================================================================== */

/* targ = iv, with pp.h's TARGi fast path for a plain IV target. */
DHMS_INLINE SV *S_ret_iv(pTHX_ SV *targ, IV iv)
{
    if (LIKELY((SvFLAGS(targ) & (SVTYPEMASK | SVf_THINKFIRST | SVf_IVisUV)) == SVt_IV)) {
        SvFLAGS(targ) |= (SVf_IOK | SVp_IOK);
        SvIV_set(targ, iv);
    }
    else
        sv_setiv(targ, iv);
    return targ;
}
#define ret_iv(targ, iv) S_ret_iv(aTHX_ targ, iv)

#define DHMS_MIN_BUF 32

/* Point *out at sv's own string buffer. The buffer is kept between calls
 * (its size is the guess for the next result); a COW or read-only buffer
 * is dropped first, never written. For integer kinds there is no buffer. */
DHMS_INLINE void S_out_init(pTHX_ U8 kind, SV *sv, dhms_out *out)
{
    out->len = 0;
    out->num = 0;
    out->utf8 = 0;
    if (kind != KIND_BYTES) {
        out->buf = NULL;
        out->cap = 0;
        return;
    }
    if (UNLIKELY(SvTHINKFIRST(sv)))
        sv_force_normal_flags(sv, SV_COW_DROP_PV);
    SvUPGRADE(sv, SVt_PV);
    if (SvLEN(sv) < DHMS_MIN_BUF)
        SvGROW(sv, DHMS_MIN_BUF);
    out->buf = (uint8_t *)SvPVX(sv);
    out->cap = SvLEN(sv) - 1;
}
#define out_init(kind, sv, out) S_out_init(aTHX_ kind, sv, out)

/* After DHMS_ESMALL: make room for out->len bytes and a NUL. */
static void S_out_grow(pTHX_ SV *sv, dhms_out *out)
{
    SvGROW(sv, out->len + 1);
    out->buf = (uint8_t *)SvPVX(sv);
    out->cap = SvLEN(sv) - 1;
}
#define out_grow(sv, out) S_out_grow(aTHX_ sv, out)

/* The result the engine wrote into *out, as sv. */
DHMS_INLINE SV *S_out_finish(pTHX_ U8 kind, SV *sv, const dhms_out *out)
{
    if (kind != KIND_BYTES)
        return ret_iv(sv, out->num);
    SvCUR_set(sv, out->len);
    SvPVX(sv)[out->len] = '\0';
    SvPOK_only(sv);
    if (out->utf8)
        SvUTF8_on(sv);
    return sv;
}
#define out_finish(kind, sv, out) S_out_finish(aTHX_ kind, sv, out)

/* A new mortal holding an engine-owned key or value. */
static SV *S_item_to_mortal(pTHX_ U8 kind, const dhms_item *it)
{
    if (kind != KIND_BYTES)
        return sv_2mortal(newSViv(it->num));
    /* newSVpvn(NULL, 0) would be undef: the empty string has ptr NULL */
    return newSVpvn_flags(it->len ? (const char *)it->ptr : "", it->len,
                          SVs_TEMP | (it->utf8 ? SVf_UTF8 : 0));
}
#define item_to_mortal(kind, it) S_item_to_mortal(aTHX_ kind, it)

/* A yes/no engine status as Perl's true or false; anything else croaks. */
DHMS_INLINE SV *S_ret_bool(pTHX_ const struct dhms_variant_desc *v, int st)
{
    if (LIKELY(st == DHMS_OK))
        return &PL_sv_yes;
    if (st == DHMS_FALSE)
        return &PL_sv_no;
    croak_status(v, st);
}
#define ret_bool(v, st) S_ret_bool(aTHX_ v, st)

/* ====================================================================== */
/* Argument checks for the constructor and friends                        */
/* ====================================================================== */

/* An unsigned integer argument in [lo, hi]; `rule` says what is expected,
 * e.g. "an integer from 1 to 4294967295". undef (or a missing argument)
 * gives dflt when the argument is optional (optional != 0). */
static UV S_arg_uint(pTHX_ const struct dhms_variant_desc *v, SV *sv, const char *name,
                     UV lo, UV hi, const char *rule, int optional, UV dflt)
{
    UV uv = 0;
    int ok = 0;

    if (!sv)
        return dflt;
    SvGETMAGIC(sv);
    if (!SvOK(sv)) {
        if (optional)
            return dflt;
    }
    else if (SvIOK(sv)) {
        if (SvIsUV(sv))
            uv = SvUVX(sv), ok = 1;
        else if (SvIVX(sv) >= 0)
            uv = (UV)SvIVX(sv), ok = 1;
    }
    else if (SvNOK(sv) && !SvPOK(sv)) {
        NV nv = SvNVX(sv);
        if (nv >= 0 && nv < 18446744073709551616.0 && nv == Perl_floor(nv))
            uv = (UV)nv, ok = 1;
    }
    else if (!SvROK(sv)) {
        STRLEN len;
        const char *pv = SvPV_nomg_const(sv, len);
        int type = grok_number(pv, len, &uv);
        ok = (type & IS_NUMBER_IN_UV) && !(type & (IS_NUMBER_NOT_INT | IS_NUMBER_NEG))
            && !(type & IS_NUMBER_GREATER_THAN_UV_MAX);
        if (!ok && type == (IS_NUMBER_IN_UV | IS_NUMBER_NEG) && uv == 0)
            ok = 1; /* "-0" */
    }
    if (!ok || uv < lo || uv > hi) {
        if (!SvOK(sv))
            Perl_croak(aTHX_ "%s: %s must be %s, got undef", v->package, name, rule);
        Perl_croak(aTHX_ "%s: %s must be %s, got '%" SVf "'", v->package, name, rule,
                   SVfARG(shown(sv)));
    }
    return uv;
}
#define arg_uint(...) S_arg_uint(aTHX_ __VA_ARGS__)

/* A NUL-terminated file name from sv, for the engine. */
static const char *S_arg_path(pTHX_ const struct dhms_variant_desc *v, SV *sv)
{
    STRLEN len;
    const char *pv;

    SvGETMAGIC(sv);
    if (!SvOK(sv))
        Perl_croak(aTHX_ "%s: a path or name is required here, got undef", v->package);
    pv = SvPV_nomg_const(sv, len);
    if (len == 0)
        Perl_croak(aTHX_ "%s: path is empty; give a file path", v->package);
    if (memchr(pv, '\0', len))
        Perl_croak(aTHX_ "%s: path contains a NUL byte; give a file path without NUL",
                   v->package);
    return pv;
}
#define arg_path(...) S_arg_path(aTHX_ __VA_ARGS__)

/* ====================================================================== */
/* Bodies: one per line of DHMS_OP_LIST                                   */
/* ====================================================================== */

/* ---- one key --------------------------------------------------------- */

/* A store's status: true, false when full, else croak. */
DHMS_INLINE SV *S_ret_stored(pTHX_ const struct dhms_variant_desc *v, int st)
{
    if (LIKELY(st == DHMS_OK))
        return &PL_sv_yes;
    if (not_stored(st))
        return &PL_sv_no;
    croak_status(v, st);
}
#define ret_stored(v, st) S_ret_stored(aTHX_ v, st)

/* Seconds as a TTL argument (0 = permanent). */
#define arg_secs(sv, name) \
    arg_uint(v, sv, name, 0, 0xffffffffUL, "a number of seconds from 0 to 4294967295", 0, 0)

DHMS_BODY(put)
{
    dhms_item key, val;

    sv_to_item(v, v->key_kind, args[1], &key, "key");
    sv_to_item(v, v->val_kind, args[2], &val, "value");
    if (v->key_kind != KIND_BYTES && v->val_kind != KIND_BYTES)
        args[0] = ret_stored(v, DHMS_FAST(m)->put_num(m, key.num, val.num));
    else
        args[0] = ret_stored(v, DHMS_FAST(m)->put(m, &key, &val));
    return args;
}

DHMS_BODY(put_ttl)
{
    dhms_item key, val;
    UV secs;

    sv_to_item(v, v->key_kind, args[1], &key, "key");
    sv_to_item(v, v->val_kind, args[2], &val, "value");
    secs = arg_secs(args[3], "put_ttl's seconds");
    args[0] = ret_stored(v, dhms_put_ttl(m, &key, &val, secs));
    return args;
}

DHMS_BODY(get)
{
    dhms_item key;
    dhms_out out;
    int st;

    sv_to_item(v, v->key_kind, args[1], &key, "key");
    if (v->key_kind != KIND_BYTES && v->val_kind != KIND_BYTES) {
        /* numbers both ways: the handle's own get for them */
        int64_t val;
        st = DHMS_FAST(m)->get_num(m, key.num, &val);
        if (LIKELY(st == DHMS_OK))
            args[0] = ret_iv(targ, (IV)val);
        else if (st == DHMS_FALSE)
            args[0] = &PL_sv_undef;
        else
            croak_status(v, st);
        return args;
    }
    out_init(v->val_kind, targ, &out);
    while (UNLIKELY((st = DHMS_FAST(m)->get(m, &key, &out)) == DHMS_ESMALL))
        out_grow(targ, &out);
    if (LIKELY(st == DHMS_OK))
        args[0] = out_finish(v->val_kind, targ, &out);
    else if (st == DHMS_FALSE)
        args[0] = &PL_sv_undef;
    else
        croak_status(v, st);
    return args;
}

DHMS_BODY(exists)
{
    dhms_item key;

    sv_to_item(v, v->key_kind, args[1], &key, "key");
    args[0] = ret_bool(v, DHMS_FAST(m)->exists(m, &key));
    return args;
}

DHMS_BODY(remove)
{
    dhms_item key;

    sv_to_item(v, v->key_kind, args[1], &key, "key");
    args[0] = ret_bool(v, DHMS_FAST(m)->remove(m, &key));
    return args;
}

DHMS_BODY(take)
{
    dhms_item key;
    dhms_out out;
    int st;

    sv_to_item(v, v->key_kind, args[1], &key, "key");
    out_init(v->val_kind, targ, &out);
    while ((st = dhms_take(m, &key, &out)) == DHMS_ESMALL)
        out_grow(targ, &out);
    if (st == DHMS_OK)
        args[0] = out_finish(v->val_kind, targ, &out);
    else if (st == DHMS_FALSE)
        args[0] = &PL_sv_undef;
    else
        croak_status(v, st);
    return args;
}

DHMS_BODY(get_or_set)
{
    dhms_item key, dflt;
    dhms_out out;
    int st;

    sv_to_item(v, v->key_kind, args[1], &key, "key");
    sv_to_item(v, v->val_kind, args[2], &dflt, "default");
    out_init(v->val_kind, targ, &out);
    while ((st = dhms_get_or_set(m, &key, &dflt, &out)) == DHMS_ESMALL)
        out_grow(targ, &out);
    if (st == DHMS_OK)
        args[0] = out_finish(v->val_kind, targ, &out);
    else if (not_stored(st))
        args[0] = &PL_sv_undef;
    else
        croak_status(v, st);
    return args;
}

/* ---- expiry and recency ------------------------------------------------ */

DHMS_BODY(ttl_remaining)
{
    dhms_item key;
    uint64_t secs = 0;
    int st;

    sv_to_item(v, v->key_kind, args[1], &key, "key");
    st = dhms_ttl_remaining(m, &key, &secs);
    if (st == DHMS_OK)
        args[0] = ret_iv(targ, (IV)secs);
    else if (st == DHMS_FALSE)
        args[0] = &PL_sv_undef;
    else
        croak_status(v, st);
    return args;
}

DHMS_BODY(get_with_ttl)
{
    dhms_item key;
    dhms_out out;
    int64_t ttl = 0;
    SV *val = sv_newmortal();
    SV **sp;
    int st;

    sv_to_item(v, v->key_kind, args[1], &key, "key");
    out_init(v->val_kind, val, &out);
    while ((st = dhms_get_with_ttl(m, &key, &out, &ttl)) == DHMS_ESMALL)
        out_grow(val, &out);
    if (st == DHMS_FALSE) {
        if (gimme == G_LIST)
            return args - 1;
        args[0] = &PL_sv_undef;
        return args;
    }
    if (st != DHMS_OK)
        croak_status(v, st);
    out_finish(v->val_kind, val, &out);
    if (gimme != G_LIST) {
        args[0] = val;
        return args;
    }
    sp = args - 1;
    EXTEND(sp, 2);
    PUSHs(val);
    PUSHs(ttl < 0 ? &PL_sv_undef : sv_2mortal(newSViv((IV)ttl)));
    return sp;
}

DHMS_BODY(touch)
{
    dhms_item key;

    sv_to_item(v, v->key_kind, args[1], &key, "key");
    args[0] = ret_bool(v, dhms_touch(m, &key));
    return args;
}

DHMS_BODY(persist)
{
    dhms_item key;

    sv_to_item(v, v->key_kind, args[1], &key, "key");
    args[0] = ret_bool(v, dhms_persist(m, &key));
    return args;
}

DHMS_BODY(set_ttl)
{
    dhms_item key;
    UV secs;

    sv_to_item(v, v->key_kind, args[1], &key, "key");
    secs = arg_secs(args[2], "set_ttl's seconds");
    args[0] = ret_bool(v, dhms_set_ttl(m, &key, secs));
    return args;
}

DHMS_BODY(flush_expired)
{
    uint64_t removed = 0;
    int done = 0;
    int st = dhms_flush_expired(m, UINT64_MAX, &removed, &done);

    if (st != DHMS_OK)
        croak_status(v, st);
    args[0] = ret_iv(targ, (IV)removed);
    return args;
}

/* (removed, done) in list context; removed in scalar context. */
DHMS_BODY(flush_expired_partial)
{
    UV limit = arg_uint(v, args[1], "flush_expired_partial's limit", 1, UV_MAX,
                        "an integer >= 1 (slots to scan)", 0, 0);
    uint64_t removed = 0;
    int done = 0;
    SV **sp;
    int st = dhms_flush_expired(m, (uint64_t)limit, &removed, &done);

    if (st != DHMS_OK)
        croak_status(v, st);
    if (gimme != G_LIST) {
        args[0] = ret_iv(targ, (IV)removed);
        return args;
    }
    sp = args - 1;
    EXTEND(sp, 2);
    PUSHs(sv_2mortal(newSVuv((UV)removed)));
    PUSHs(done ? &PL_sv_yes : &PL_sv_no);
    return sp;
}

/* ---- counters (integer-value variants) --------------------------------- */

DHMS_NORETURN void S_croak_counter(pTHX_ const struct dhms_variant_desc *v, dhms_map *m,
                                   int st, const char *opname)
{
    if (st == DHMS_ERANGE)
        Perl_croak(aTHX_ "%s: %s would overflow %s (value unchanged)", v->package, opname,
                   S_kinds[v->val_kind].name);
    if (st == DHMS_EFULL) {
        /* "increment failed" and friends: the words code written for the C
         * implementation matches. */
        const char *what = strEQ(opname, "incr")   ? "increment"
                           : strEQ(opname, "decr") ? "decrement"
                                                   : opname;
        uint64_t max = info_of(v, m, DHMS_INFO_MAX_ENTRIES);
        if (info_of(v, m, DHMS_INFO_SIZE) < max)
            Perl_croak(aTHX_ "%s: %s failed: string storage is full (arena_cap %" UVuf
                       " bytes): cannot insert key", v->package, what,
                       (UV)info_of(v, m, DHMS_INFO_ARENA_CAP));
        Perl_croak(aTHX_ "%s: %s failed: map is full (max_entries %" UVuf "): cannot insert key",
                   v->package, what, (UV)max);
    }
    croak_status(v, st);
}
#define croak_counter(...) S_croak_counter(aTHX_ __VA_ARGS__)

DHMS_INLINE SV **S_count_by(pTHX_ const struct dhms_variant_desc *v, dhms_map *m, SV **args,
                            SV *targ, IV delta, const char *opname)
{
    dhms_item key;
    int64_t result;
    int st;

    sv_to_item(v, v->key_kind, args[1], &key, "key");
    if (v->key_kind != KIND_BYTES)
        st = DHMS_FAST(m)->incr_num(m, key.num, delta, &result);
    else
        st = DHMS_FAST(m)->incr_by(m, &key, delta, &result);
    if (UNLIKELY(st != DHMS_OK))
        croak_counter(v, m, st, opname);
    args[0] = ret_iv(targ, result);
    return args;
}
#define count_by(...) S_count_by(aTHX_ __VA_ARGS__)

DHMS_BODY(incr)
{
    return count_by(v, m, args, targ, 1, "incr");
}

DHMS_BODY(decr)
{
    return count_by(v, m, args, targ, -1, "decr");
}

static SV **S_extreme(pTHX_ const struct dhms_variant_desc *v, dhms_map *m, SV **args,
                       SV *targ, int want_max)
{
    dhms_item key, d;
    int64_t result;
    int st;

    sv_to_item(v, v->key_kind, args[1], &key, "key");
    sv_to_item(v, v->val_kind, args[2], &d, "value");
    st = dhms_extreme(m, &key, d.num, want_max, &result);
    if (UNLIKELY(st != DHMS_OK))
        croak_counter(v, m, st, want_max ? "max" : "min");
    args[0] = ret_iv(targ, result);
    return args;
}

DHMS_BODY(max)
{
    return S_extreme(aTHX_ v, m, args, targ, 1);
}

DHMS_BODY(min)
{
    return S_extreme(aTHX_ v, m, args, targ, 0);
}

DHMS_BODY(incr_by)
{
    dhms_item delta;
    sv_to_item(v, KIND_INT64, args[2], &delta, "delta");
    return count_by(v, m, args, targ, delta.num, "incr_by");
}

/* ---- numbers about the whole map ---------------------------------------- */

#define DHMS_INFO_BODY(name, KEY)                                   \
    DHMS_BODY(name)                                                 \
    {                                                               \
        args[0] = ret_iv(targ, (IV)info_of(v, m, KEY));             \
        return args;                                                \
    }

DHMS_INFO_BODY(size, DHMS_INFO_SIZE)
DHMS_INFO_BODY(max_entries, DHMS_INFO_MAX_ENTRIES)
DHMS_INFO_BODY(max_size, DHMS_INFO_MAX_SIZE)
DHMS_INFO_BODY(ttl, DHMS_INFO_TTL)
DHMS_INFO_BODY(capacity, DHMS_INFO_CAPACITY)
DHMS_INFO_BODY(tombstones, DHMS_INFO_TOMBSTONES)
DHMS_INFO_BODY(mmap_size, DHMS_INFO_MMAP_SIZE)
DHMS_INFO_BODY(arena_used, DHMS_INFO_ARENA_USED)
DHMS_INFO_BODY(arena_cap, DHMS_INFO_ARENA_CAP)
DHMS_INFO_BODY(stat_evictions, DHMS_INFO_STAT_EVICTIONS)
DHMS_INFO_BODY(stat_expired, DHMS_INFO_STAT_EXPIRED)
DHMS_INFO_BODY(stat_recoveries, DHMS_INFO_STAT_RECOVERIES)

/* ---- snapshots: keys, values, items, to_hash ------------------------------ */

static void S_free_snapshot(pTHX_ void *snap)
{
    PERL_UNUSED_CONTEXT;
    dhms_snapshot_free((dhms_snapshot *)snap);
}

/* Take a snapshot that is freed at the matching LEAVE, even if we croak. */
static dhms_snapshot *S_snapshot(pTHX_ const struct dhms_variant_desc *v, dhms_map *m)
{
    dhms_snapshot *snap = NULL;
    int st = dhms_snapshot_take(m, &snap);
    if (st != DHMS_OK)
        croak_status(v, st);
    SAVEDESTRUCTOR_X(S_free_snapshot, snap);
    return snap;
}
#define snapshot(...) S_snapshot(aTHX_ __VA_ARGS__)

/* The number of live entries: the size, unless expired entries may still
 * be counted in it (TTL maps), where only a snapshot is exact. */
static UV S_live_count(pTHX_ const struct dhms_variant_desc *v, dhms_map *m)
{
    UV n;
    if (info_of(v, m, DHMS_INFO_TTL) == 0)
        return (UV)info_of(v, m, DHMS_INFO_SIZE);
    ENTER;
    n = dhms_snapshot_len(snapshot(v, m));
    LEAVE;
    return n;
}
#define live_count(...) S_live_count(aTHX_ __VA_ARGS__)

#define WANT_KEYS   1
#define WANT_VALUES 2

/* keys, values, items: a flat list in list context; the number of
 * elements that list would have otherwise. */
static SV **S_snapshot_list(pTHX_ const struct dhms_variant_desc *v, dhms_map *m, SV **args,
                   SV *targ, U8 gimme, int want)
{
    const int per = (want & WANT_KEYS) && (want & WANT_VALUES) ? 2 : 1;
    dhms_snapshot *snap;
    size_t n, i;
    SV **sp = args - 1;

    if (gimme != G_LIST) {
        args[0] = ret_iv(targ, (IV)(live_count(v, m) * per));
        return args;
    }
    ENTER;
    snap = snapshot(v, m);
    n = dhms_snapshot_len(snap);
    EXTEND(sp, (SSize_t)(n * per));
    for (i = 0; i < n; i++) {
        dhms_item key, val;
        dhms_snapshot_entry(snap, i, &key, &val);
        if (want & WANT_KEYS)
            PUSHs(item_to_mortal(v->key_kind, &key));
        if (want & WANT_VALUES)
            PUSHs(item_to_mortal(v->val_kind, &val));
    }
    LEAVE;
    return sp;
}
#define snapshot_list(...) S_snapshot_list(aTHX_ __VA_ARGS__)

DHMS_BODY(keys)
{
    return snapshot_list(v, m, args, targ, gimme, WANT_KEYS);
}

DHMS_BODY(values)
{
    return snapshot_list(v, m, args, targ, gimme, WANT_VALUES);
}

DHMS_BODY(items)
{
    return snapshot_list(v, m, args, targ, gimme, WANT_KEYS | WANT_VALUES);
}

DHMS_BODY(to_hash)
{
    HV *hv = newHV();
    SV *rv = sv_2mortal(newRV_noinc((SV *)hv)); /* freed if we croak */
    dhms_snapshot *snap;
    size_t n, i;

    ENTER;
    snap = snapshot(v, m);
    n = dhms_snapshot_len(snap);
    if (n)
        hv_ksplit(hv, n);
    for (i = 0; i < n; i++) {
        dhms_item key, val;
        SV *vsv;
        dhms_snapshot_entry(snap, i, &key, &val);
        vsv = v->val_kind == KIND_BYTES
            ? newSVpvn_flags(val.len ? (const char *)val.ptr : "", val.len,
                             val.utf8 ? SVf_UTF8 : 0)
            : newSViv(val.num);
        if (v->key_kind == KIND_BYTES) {
            I32 klen = (I32)key.len;
            (void)hv_store(hv, key.len ? (const char *)key.ptr : "",
                           key.utf8 ? -klen : klen, vsv, 0);
        }
        else {
            char buf[32];
            int klen = snprintf(buf, sizeof buf, "%" IVdf, (IV)key.num);
            (void)hv_store(hv, buf, klen, vsv, 0);
        }
    }
    LEAVE;
    args[0] = rv;
    return args;
}

/* ---- conditional and atomic writes -------------------------------------- */

/* add / update, with the map's default lifetime (ttl_arg NULL) or this
 * entry's own: true if stored. */
static SV **S_conditional(pTHX_ const struct dhms_variant_desc *v, dhms_map *m, SV **args,
                          SV *ttl_arg, int present, const char *what)
{
    dhms_item key, val;
    int64_t ttl = -1;
    int st;

    sv_to_item(v, v->key_kind, args[1], &key, "key");
    sv_to_item(v, v->val_kind, args[2], &val, "value");
    if (ttl_arg)
        ttl = (int64_t)arg_secs(ttl_arg, what);
    st = present ? dhms_update(m, &key, &val, ttl) : dhms_add(m, &key, &val, ttl);
    args[0] = not_stored(st) ? &PL_sv_no : ret_bool(v, st);
    return args;
}
#define conditional(...) S_conditional(aTHX_ __VA_ARGS__)

DHMS_BODY(add)
{
    return conditional(v, m, args, NULL, 0, NULL);
}

DHMS_BODY(update)
{
    return conditional(v, m, args, NULL, 1, NULL);
}

DHMS_BODY(add_ttl)
{
    return conditional(v, m, args, args[3], 0, "add_ttl's seconds");
}

DHMS_BODY(update_ttl)
{
    return conditional(v, m, args, args[3], 1, "update_ttl's seconds");
}

DHMS_NORETURN void S_croak_full(pTHX_ const struct dhms_variant_desc *v, dhms_map *m,
                                const char *opname)
{
    uint64_t max = info_of(v, m, DHMS_INFO_MAX_ENTRIES);
    if (info_of(v, m, DHMS_INFO_SIZE) < max)
        Perl_croak(aTHX_ "%s: %s: string storage is full (arena_cap %" UVuf " bytes): "
                   "cannot store", v->package, opname, (UV)info_of(v, m, DHMS_INFO_ARENA_CAP));
    Perl_croak(aTHX_ "%s: %s: map is full (max_entries %" UVuf "): cannot insert key",
               v->package, opname, (UV)max);
}
#define croak_full(...) S_croak_full(aTHX_ __VA_ARGS__)

DHMS_BODY(swap)
{
    dhms_item key, val;
    dhms_out out;
    int st;

    sv_to_item(v, v->key_kind, args[1], &key, "key");
    sv_to_item(v, v->val_kind, args[2], &val, "value");
    out_init(v->val_kind, targ, &out);
    while ((st = dhms_swap(m, &key, &val, &out)) == DHMS_ESMALL)
        out_grow(targ, &out);
    if (st == DHMS_OK)
        args[0] = out_finish(v->val_kind, targ, &out);
    else if (st == DHMS_FALSE)
        args[0] = &PL_sv_undef;
    else if (st == DHMS_EFULL)
        croak_full(v, m, "swap");
    else
        croak_status(v, st);
    return args;
}

DHMS_BODY(cas)
{
    dhms_item key, expected, desired;
    int st;

    sv_to_item(v, v->key_kind, args[1], &key, "key");
    sv_to_item(v, v->val_kind, args[2], &expected, "expected value");
    sv_to_item(v, v->val_kind, args[3], &desired, "desired value");
    st = dhms_cas(m, &key, &expected, &desired);
    args[0] = not_stored(st) ? &PL_sv_no : ret_bool(v, st);
    return args;
}

DHMS_BODY(cas_take)
{
    dhms_item key, expected;
    dhms_out out;
    int st;

    sv_to_item(v, v->key_kind, args[1], &key, "key");
    sv_to_item(v, v->val_kind, args[2], &expected, "expected value");
    out_init(v->val_kind, targ, &out);
    while ((st = dhms_cas_take(m, &key, &expected, &out)) == DHMS_ESMALL)
        out_grow(targ, &out);
    if (st == DHMS_OK)
        args[0] = out_finish(v->val_kind, targ, &out);
    else if (st == DHMS_FALSE)
        args[0] = &PL_sv_undef;
    else
        croak_status(v, st);
    return args;
}

/* ---- batches -------------------------------------------------------------- */

/* Convert args[from..nargs) to items in a buffer freed at LEAVE (so a
 * conversion that dies - a tied or overloaded argument - leaks nothing and
 * happens before the engine takes any lock). Kinds alternate key/value when
 * pairs is set. */
static dhms_item *S_items(pTHX_ const struct dhms_variant_desc *v, SV **args, I32 from,
                          I32 nargs, int pairs)
{
    dhms_item *items;
    I32 i, n = nargs - from;

    Newx(items, n ? n : 1, dhms_item);
    SAVEFREEPV(items);
    for (i = 0; i < n; i++) {
        int is_val = pairs && (i & 1);
        sv_to_item(v, is_val ? v->val_kind : v->key_kind, args[from + i], &items[i],
                   is_val ? "value" : "key");
    }
    return items;
}
#define items_of(...) S_items(aTHX_ __VA_ARGS__)

DHMS_BODY(set_multi)
{
    uint64_t stored = 0;
    dhms_item *items;
    int st;

    if ((nargs - 1) % 2)
        Perl_croak(aTHX_ "%s: set_multi takes key => value pairs; got an odd number (%d) of "
                   "arguments after the map", v->package, (int)(nargs - 1));
    ENTER;
    items = items_of(v, args, 1, nargs, 1);
    st = dhms_set_multi(m, items, (size_t)(nargs - 1) / 2, &stored);
    LEAVE;
    if (st != DHMS_OK)
        croak_status(v, st);
    args[0] = ret_iv(targ, (IV)stored);
    return args;
}

DHMS_BODY(remove_multi)
{
    uint64_t removed = 0;
    dhms_item *items;
    int st;

    ENTER;
    items = items_of(v, args, 1, nargs, 0);
    st = dhms_remove_multi(m, items, (size_t)(nargs - 1), &removed);
    LEAVE;
    if (st != DHMS_OK)
        croak_status(v, st);
    args[0] = ret_iv(targ, (IV)removed);
    return args;
}

/* After an engine call that made a list of entries: croak on failure,
 * else have the list freed at the matching LEAVE. */
static void S_keep(pTHX_ const struct dhms_variant_desc *v, int st, dhms_snapshot *snap)
{
    if (st != DHMS_OK)
        croak_status(v, st);
    SAVEDESTRUCTOR_X(S_free_snapshot, snap);
}
#define keep(...) S_keep(aTHX_ __VA_ARGS__)

/* The values of the keys (undef where missing); in scalar context, how
 * many of the keys were found. */
DHMS_BODY(get_multi)
{
    dhms_snapshot *snap = NULL;
    dhms_item *items;
    size_t i, n = (size_t)(nargs - 1), found = 0;
    SV **sp = args - 1;
    int st;

    ENTER;
    items = items_of(v, args, 1, nargs, 0);
    st = dhms_get_multi(m, items, n, &snap);
    keep(v, st, snap);
    if (gimme == G_LIST)
        EXTEND(sp, (SSize_t)n);
    for (i = 0; i < n; i++) {
        dhms_item key, val;
        st = dhms_snapshot_entry(snap, i, &key, &val);
        found += st == DHMS_OK;
        if (gimme == G_LIST)
            PUSHs(st == DHMS_OK ? item_to_mortal(v->val_kind, &val) : &PL_sv_undef);
    }
    LEAVE;
    if (gimme != G_LIST) {
        args[0] = ret_iv(targ, (IV)found);
        return args;
    }
    return sp;
}

/* ---- removing from the ends ------------------------------------------------ */

/* pop, shift: (key, value) or (); drain: the flat list. In scalar context
 * pop and shift give the key, drain the number of pairs. */
static SV **S_take_ends(pTHX_ const struct dhms_variant_desc *v, dhms_map *m, SV **args,
                        SV *targ, U8 gimme, uint64_t n, int newest, int counted)
{
    dhms_snapshot *snap = NULL;
    size_t i, got;
    SV **sp = args - 1;
    int st;

    ENTER;
    st = dhms_take_ends(m, n, newest, &snap);
    keep(v, st, snap);
    got = dhms_snapshot_len(snap);
    if (gimme != G_LIST) {
        if (counted)
            args[0] = ret_iv(targ, (IV)got);
        else if (got) {
            dhms_item key, val;
            dhms_snapshot_entry(snap, 0, &key, &val);
            args[0] = item_to_mortal(v->key_kind, &key);
        }
        else
            args[0] = &PL_sv_undef;
        LEAVE;
        return args;
    }
    EXTEND(sp, (SSize_t)(got * 2));
    for (i = 0; i < got; i++) {
        dhms_item key, val;
        dhms_snapshot_entry(snap, i, &key, &val);
        PUSHs(item_to_mortal(v->key_kind, &key));
        PUSHs(item_to_mortal(v->val_kind, &val));
    }
    LEAVE;
    return sp;
}
#define take_ends(...) S_take_ends(aTHX_ __VA_ARGS__)

DHMS_BODY(pop)
{
    return take_ends(v, m, args, targ, gimme, 1, 0, 0);
}

DHMS_BODY(shift)
{
    return take_ends(v, m, args, targ, gimme, 1, 1, 0);
}

DHMS_BODY(drain)
{
    UV n = arg_uint(v, args[1], "drain's n", 0, UV_MAX, "an integer >= 0 (pairs to remove)", 0, 0);
    return take_ends(v, m, args, targ, gimme, (uint64_t)n, 0, 1);
}

/* ---- cursors --------------------------------------------------------------- */

/*
 * A cursor is a blessed reference (into <variant package>::Cursor) to a
 * scalar with PERL_MAGIC_ext magic of S_cursor_vtbl whose mg_ptr is a
 * struct dhms_cursor: the walk position and a counted reference to its
 * map object, which keeps the map alive while the cursor lives.
 */
struct dhms_cursor {
    SV *map_rv;     /* reference to the map object (counted) */
    dhms_map *m;
    uint64_t pos[2]; /* the shard, and DHMS_POS_START, a hash, or the end */
};

static int S_cursor_free(pTHX_ SV *sv, MAGIC *mg)
{
    struct dhms_cursor *c = (struct dhms_cursor *)mg->mg_ptr;
    PERL_UNUSED_ARG(sv);
    if (c) {
        /* the map lives while the cursor does, except in global destruction */
        if (PL_phase != PERL_PHASE_DESTRUCT)
            dhms_cursor_release(c->m, c->pos);
        SvREFCNT_dec(c->map_rv);
        Safefree(c);
        mg->mg_ptr = NULL;
    }
    return 0;
}

#ifdef USE_ITHREADS
static int S_cursor_dup(pTHX_ MAGIC *mg, CLONE_PARAMS *param)
{
    PERL_UNUSED_ARG(param);
    mg->mg_ptr = NULL; /* the map handle does not cross threads either */
    return 0;
}
#endif

static MGVTBL S_cursor_vtbl = {
    NULL, NULL, NULL, NULL, S_cursor_free, NULL,
#ifdef USE_ITHREADS
    S_cursor_dup,
#else
    NULL,
#endif
    NULL,
};

/* The cursor behind sv, which must be a cursor of a variant-v map. */
static struct dhms_cursor *S_cursor_from(pTHX_ SV *sv, const struct dhms_variant_desc *v)
{
    MAGIC *mg = NULL;
    SvGETMAGIC(sv);
    if (SvROK(sv) && SvTYPE(SvRV(sv)) >= SVt_PVMG)
        mg = mg_findext(SvRV(sv), PERL_MAGIC_ext, &S_cursor_vtbl);
    if (mg && mg->mg_ptr && mg->mg_private == v->id)
        return (struct dhms_cursor *)mg->mg_ptr;
    if (mg && mg->mg_private < DHMS_VARIANTS)
        Perl_croak(aTHX_ "%s: not a %s::Cursor (got a cursor of a %s map): use the "
                   "keywords or methods of that map's class", v->package, v->package,
                   S_variants[mg->mg_private].package);
    Perl_croak(aTHX_ "%s: not a %s::Cursor; make one with shm_%s_cursor $map or $map->cursor",
               v->package, v->package, v->prefix);
}
#define cursor_from(...) S_cursor_from(aTHX_ __VA_ARGS__)

DHMS_BODY(cursor)
{
    struct dhms_cursor *c;
    SV *obj = newSV_type(SVt_PVMG);
    SV *rv = sv_2mortal(newRV_noinc(obj));
    MAGIC *mg;

    Newxz(c, 1, struct dhms_cursor);
    c->map_rv = newSVsv(args[0]);
    c->m = m;
    c->pos[0] = 0;
    c->pos[1] = DHMS_POS_START;
    mg = sv_magicext(obj, NULL, PERL_MAGIC_ext, &S_cursor_vtbl, (const char *)c, 0);
    mg->mg_private = v->id;
    sv_bless(rv, gv_stashpv(v->cursor_package, GV_ADD));
    args[0] = rv;
    return args;
}

DHMS_BODY(cursor_next)
{
    struct dhms_cursor *c = cursor_from(args[0], v);
    SV *ksv = sv_newmortal();
    SV *vsv = sv_newmortal();
    dhms_out ko, vo;
    SV **sp;
    int st;

    out_init(v->key_kind, ksv, &ko);
    out_init(v->val_kind, vsv, &vo);
    while ((st = dhms_cursor_next(c->m, c->pos, &ko, &vo)) == DHMS_ESMALL) {
        if (v->key_kind == KIND_BYTES && ko.len > ko.cap)
            out_grow(ksv, &ko);
        if (v->val_kind == KIND_BYTES && vo.len > vo.cap)
            out_grow(vsv, &vo);
    }
    if (st == DHMS_FALSE) {
        if (gimme == G_LIST)
            return args - 1;
        args[0] = &PL_sv_undef;
        return args;
    }
    if (st != DHMS_OK)
        croak_status(v, st);
    out_finish(v->key_kind, ksv, &ko);
    if (gimme != G_LIST) {
        args[0] = ksv;
        return args;
    }
    out_finish(v->val_kind, vsv, &vo);
    sp = args - 1;
    EXTEND(sp, 2);
    PUSHs(ksv);
    PUSHs(vsv);
    return sp;
}

DHMS_BODY(cursor_reset)
{
    struct dhms_cursor *c = cursor_from(args[0], v);
    dhms_cursor_release(c->m, c->pos);
    c->pos[0] = 0;
    c->pos[1] = DHMS_POS_START;
    args[0] = &PL_sv_yes;
    return args;
}

DHMS_BODY(cursor_seek)
{
    struct dhms_cursor *c = cursor_from(args[0], v);
    dhms_item key;
    uint64_t pos[2];
    int st;

    sv_to_item(v, v->key_kind, args[1], &key, "key");
    pos[0] = c->pos[0];
    pos[1] = c->pos[1];
    st = dhms_cursor_seek(c->m, &key, pos);
    if (st == DHMS_OK && (pos[0] != c->pos[0] || pos[1] != c->pos[1])) {
        dhms_cursor_release(c->m, c->pos);
        c->pos[0] = pos[0];
        c->pos[1] = pos[1];
    }
    args[0] = ret_bool(v, st);
    return args;
}

/* ---- iteration -------------------------------------------------------- */

DHMS_BODY(each)
{
    SV *ksv = sv_newmortal();
    SV *vsv = sv_newmortal();
    dhms_out ko, vo;
    SV **sp;
    int st;

    out_init(v->key_kind, ksv, &ko);
    out_init(v->val_kind, vsv, &vo);
    while ((st = dhms_each(m, &ko, &vo)) == DHMS_ESMALL) {
        if (v->key_kind == KIND_BYTES && ko.len > ko.cap)
            out_grow(ksv, &ko);
        if (v->val_kind == KIND_BYTES && vo.len > vo.cap)
            out_grow(vsv, &vo);
    }
    if (st == DHMS_FALSE) {
        if (gimme == G_LIST)
            return args - 1;
        args[0] = &PL_sv_undef;
        return args;
    }
    if (st != DHMS_OK)
        croak_status(v, st);
    out_finish(v->key_kind, ksv, &ko);
    if (gimme != G_LIST) {
        args[0] = ksv;
        return args;
    }
    out_finish(v->val_kind, vsv, &vo);
    sp = args - 1;
    EXTEND(sp, 2);
    PUSHs(ksv);
    PUSHs(vsv);
    return sp;
}

DHMS_BODY(iter_reset)
{
    dhms_iter_reset(m);
    args[0] = &PL_sv_yes;
    return args;
}

DHMS_BODY(clear)
{
    int st = dhms_clear(m);
    if (st != DHMS_OK)
        croak_status(v, st);
    args[0] = &PL_sv_yes;
    return args;
}

DHMS_BODY(reserve)
{
    UV n = arg_uint(v, args[1], "reserve's n", 0, UV_MAX,
                      "an integer >= 0 (a number of entries)", 0, 0);
    args[0] = ret_bool(v, dhms_reserve(m, (uint64_t)n));
    return args;
}

/* ---- methods only ------------------------------------------------------ */

/* The constructor parameters at args[first ..] (all optional but
 * max_entries when `first` is given; all defaults when first < 0). */
static void S_arg_params(pTHX_ const struct dhms_variant_desc *v, SV **args, I32 nargs,
                         I32 first, dhms_params *p)
{
    char rule[96];
#define OPT(i) (first >= 0 && nargs > first + (i) ? args[first + (i)] : NULL)
    p->max_entries = first < 0 ? 1
        : arg_uint(v, args[first], "max_entries", 1, 4294967295U,
                   "an integer from 1 to 4294967295", 0, 0);
    snprintf(rule, sizeof rule,
             "an integer from 0 (no LRU eviction) to max_entries (%" UVuf ")",
             (UV)p->max_entries);
    p->max_size = arg_uint(v, OPT(1), "max_size", 0, p->max_entries, rule, 1, 0);
    p->ttl = arg_uint(v, OPT(2), "ttl", 0, UV_MAX,
                      "a whole number of seconds >= 0 (0: entries never expire)", 1, 0);
    p->lru_skip = arg_uint(v, OPT(3), "lru_skip", 0, 99,
                           "an integer from 0 to 99 (a percentage)", 1, 0);
    p->arena_cap = arg_uint(v, OPT(4), "arena_cap", 0, UV_MAX,
                            "a byte count >= 0 (0: string storage grows on demand)", 1, 0);
    p->file_mode = (uint32_t)arg_uint(v, OPT(5), "file_mode", 0, 07777,
                                      "a permission mode from 0 to 07777, such as 0600", 1, 0600);
#undef OPT
}

/* Open from `src` and return the new map object, blessed into the
 * invocant's class (subclasses work: the handle is found by its magic). */
static SV **S_construct(pTHX_ const struct dhms_variant_desc *v, SV **args,
                        const dhms_source *src, const dhms_params *p)
{
    dhms_map *map = NULL;
    HV *stash;
    SV *obj, *rv;
    MAGIC *mg;
    int st = dhms_open_source(src, v->id, p, &map);

    if (st != DHMS_OK || !map)
        croak_status(v, st == DHMS_OK ? DHMS_ERROR : st);
    if (SvROK(args[0]) && SvOBJECT(SvRV(args[0])))
        stash = SvSTASH(SvRV(args[0]));
    else
        stash = gv_stashsv(args[0], GV_ADD);
    obj = newSV_type(SVt_PVMG);
    mg = sv_magicext(obj, NULL, PERL_MAGIC_ext, &S_map_vtbl, (const char *)map, 0);
    mg->mg_private = v->id;
#ifdef USE_ITHREADS
    mg->mg_flags |= MGf_DUP;
#endif
    rv = sv_2mortal(newRV_noinc(obj));
    sv_bless(rv, stash);
    args[0] = rv;
    return args;
}
#define construct(...) S_construct(aTHX_ __VA_ARGS__)

/* new($path, $max_entries, ...); new(undef, $max_entries, ...) makes an
 * anonymous map shared with fork children. */
DHMS_BODY(new)
{
    dhms_source src = { DHMS_SRC_PATH, NULL, -1, 0 };
    dhms_params p;

    SvGETMAGIC(args[1]);
    if (SvOK(args[1]))
        src.name = arg_path(v, args[1]);
    else
        src.kind = DHMS_SRC_ANON;
    S_arg_params(aTHX_ v, args, nargs, 2, &p);
    return construct(v, args, &src, &p);
}

DHMS_BODY(new_memfd)
{
    dhms_source src = { DHMS_SRC_MEMFD, NULL, -1, 0 };
    dhms_params p;

    src.name = arg_path(v, args[1]);
    S_arg_params(aTHX_ v, args, nargs, 2, &p);
    return construct(v, args, &src, &p);
}

DHMS_BODY(new_from_fd)
{
    dhms_source src = { DHMS_SRC_FD, NULL, -1, 0 };
    dhms_params p;

    src.fd = (int)arg_uint(v, args[1], "the descriptor", 0, 0x7fffffff,
                           "an open file descriptor number (see ->memfd)", 0, 0);
    S_arg_params(aTHX_ v, args, nargs, -1, &p);
    return construct(v, args, &src, &p);
}

DHMS_BODY(new_readonly)
{
    dhms_source src = { DHMS_SRC_READONLY, NULL, -1, 0 };
    dhms_params p;

    src.name = arg_path(v, args[1]);
    S_arg_params(aTHX_ v, args, nargs, -1, &p);
    return construct(v, args, &src, &p);
}

/* new_sharded($prefix, $shards, $max_entries, ...) */
DHMS_BODY(new_sharded)
{
    dhms_source src = { DHMS_SRC_SHARDED, NULL, -1, 0 };
    dhms_params p;
    SV *prefix = sv_mortalcopy(args[1]); /* get-magic once */

    if (!SvOK(prefix) || !sv_len(prefix))
        Perl_croak(aTHX_ "%s: new_sharded needs a path_prefix (the shard files are "
                   "PREFIX.0, PREFIX.1, ...), got %s", v->package,
                   SvOK(prefix) ? "an empty string" : "undef");
    src.name = arg_path(v, prefix);
    src.shards = (uint32_t)arg_uint(v, args[2], "num_shards (the number of shards)", 1, 1024,
                                    "an integer from 1 to 1024", 0, 0);
    S_arg_params(aTHX_ v, args, nargs, 3, &p);
    return construct(v, args, &src, &p);
}

DHMS_BODY(freeze)
{
    int st = dhms_freeze(m);
    if (st != DHMS_OK)
        croak_status(v, st);
    args[0] = &PL_sv_yes;
    return args;
}

DHMS_BODY(sync)
{
    int st = dhms_sync(m);
    if (st != DHMS_OK)
        croak_status(v, st);
    args[0] = &PL_sv_yes;
    return args;
}

/* wait_timeout: a number of seconds, fractions allowed; the engine checks
 * the range. */
#define WAIT_TIMEOUT_RULE "a number of seconds above 0 and at most 86400 (fractions allowed, e.g. 0.5)"
DHMS_BODY(wait_timeout)
{
    if (nargs > 1) {
        SV *sv = args[1];
        int st;
        SvGETMAGIC(sv);
        if (!SvOK(sv))
            Perl_croak(aTHX_ "%s: wait_timeout must be " WAIT_TIMEOUT_RULE ", got undef",
                       v->package);
        if (SvROK(sv) || !looks_like_number(sv))
            Perl_croak(aTHX_ "%s: wait_timeout must be " WAIT_TIMEOUT_RULE ", got '%" SVf "'",
                       v->package, SVfARG(shown(sv)));
        st = dhms_set_wait_timeout(m, (double)SvNV_nomg(sv));
        if (st != DHMS_OK)
            croak_status(v, st);
    }
    sv_setnv(targ, (NV)dhms_wait_timeout(m));
    args[0] = targ;
    return args;
}

DHMS_BODY(memfd)
{
    args[0] = ret_iv(targ, dhms_handle_info(m, 0));
    return args;
}

DHMS_BODY(frozen)
{
    args[0] = dhms_handle_info(m, 1) ? &PL_sv_yes : &PL_sv_no;
    return args;
}

DHMS_BODY(readonly)
{
    args[0] = dhms_handle_info(m, 2) ? &PL_sv_yes : &PL_sv_no;
    return args;
}

static const struct {
    const char *name;
    int key;
} S_info_names[] = {
    { "size", DHMS_INFO_SIZE },
    { "max_entries", DHMS_INFO_MAX_ENTRIES },
    { "max_size", DHMS_INFO_MAX_SIZE },
    { "ttl", DHMS_INFO_TTL },
    { "lru_skip", DHMS_INFO_LRU_SKIP },
    { "capacity", DHMS_INFO_CAPACITY },
    { "tombstones", DHMS_INFO_TOMBSTONES },
    { "mmap_size", DHMS_INFO_MMAP_SIZE },
    { "arena_used", DHMS_INFO_ARENA_USED },
    { "arena_cap", DHMS_INFO_ARENA_CAP },
    { "stat_evictions", DHMS_INFO_STAT_EVICTIONS },
    { "stat_expired", DHMS_INFO_STAT_EXPIRED },
    { "stat_recoveries", DHMS_INFO_STAT_RECOVERIES },
};

DHMS_BODY(verify)
{
    int st = dhms_verify(m);
    if (st != DHMS_OK)
        croak_status(v, st);
    args[0] = &PL_sv_yes;
    return args;
}

DHMS_BODY(stats)
{
    HV *hv = newHV();
    size_t i;

    for (i = 0; i < sizeof S_info_names / sizeof S_info_names[0]; i++)
        (void)hv_store(hv, S_info_names[i].name, (I32)strlen(S_info_names[i].name),
                       newSVuv((UV)info_of(v, m, S_info_names[i].key)), 0);
    (void)hv_stores(hv, "frozen", newSViv(dhms_handle_info(m, 1)));
    (void)hv_stores(hv, "readonly", newSViv(dhms_handle_info(m, 2)));
    args[0] = sv_2mortal(newRV_noinc((SV *)hv));
    return args;
}

DHMS_BODY(path)
{
    const char *p = dhms_path(m);
    if (p) {
        sv_setpv(targ, p);
        args[0] = targ;
    }
    else
        args[0] = &PL_sv_undef;
    return args;
}

/* $map->unlink or Class->unlink($path): true if removed; never dies on a
 * failing unlink(2). */
DHMS_BODY(unlink)
{
    int st;

    if (nargs == 1) {
        st = dhms_unlink(map_from(args[0], v));
    }
    else {
        SV *sv = args[1];
        STRLEN len;
        const char *pv;
        SvGETMAGIC(sv);
        if (!SvOK(sv)) {
            args[0] = &PL_sv_no;
            return args;
        }
        pv = SvPV_nomg_const(sv, len);
        st = len && !memchr(pv, '\0', len) ? dhms_unlink_path(pv) : DHMS_FALSE;
    }
    args[0] = st == DHMS_OK ? &PL_sv_yes : &PL_sv_no;
    return args;
}

/* ====================================================================== */
/* Custom ops (keyword form) and the generic XSUB (method form)           */
/* ====================================================================== */

/* op_private of a keyword op: the variant in the low bits; DHMS_TARGMY
 * once `$lexical = shm_..._op ...` was folded into the op (S_ck_sassign):
 * op_targ is then the lexical itself, and the op stores its result there,
 * as perl's own ops do with OPpTARGET_MY. */
#define DHMS_VARIANT_MASK 0x0f
#define DHMS_TARGMY 0x80

/* A folded op's result into its lexical (it is already there when the body
 * wrote into targ); the stack then holds the lexical, the value of the
 * assignment. */
static SV **S_store_targmy(pTHX_ SV **sp, SV **args, SV *lex)
{
    SV *r = sp >= args ? *sp : &PL_sv_undef;
    if (r != lex)
        sv_setsv(lex, r);
    SvSETMAGIC(lex);
    *args = lex;
    return args;
}

/* The context keyword op kw runs in (GIMME_V for an op that need not be
 * PL_op). */
DHMS_INLINE U8 S_gimme_of(pTHX_ const OP *kw)
{
    const U8 want = kw->op_flags & OPf_WANT;
    return want ? want : block_gimme();
}

/* The body of every custom op, for its keyword op kw: the op's nargs
 * children have pushed the arguments; the variant is `fixed` (the hot ops'
 * own pp functions, below) or, when that is NULL, in op_private. */
DHMS_INLINE OP *S_pp_run(pTHX_ dhms_body_fn body, I32 nargs, U8 flags,
                         const struct dhms_variant_desc *fixed, const OP *kw)
{
    dSP;
    SV **args = SP - nargs + 1;
    const U8 priv = kw->op_private;
    const struct dhms_variant_desc *v =
        fixed ? fixed : &S_variants[priv & DHMS_VARIANT_MASK];
    dhms_map *m = (flags & OPF_NOMAP) ? NULL : map_from(args[0], v);
    SV *targ = PAD_SV(kw->op_targ);
    SV *out = targ;
    U8 gimme;

    if ((flags & OPF_TARG) && UNLIKELY(priv & DHMS_TARGMY)) {
        /* The result goes into a lexical: as the right side of a scalar
         * assignment the op runs in scalar context, and it must not write
         * into a lexical that is also one of its arguments before it has
         * read them ($k = shm_ss_get $m, $k): then a temporary takes the
         * result, copied afterwards. */
        I32 i;
        gimme = G_SCALAR;
        for (i = 0; i < nargs; i++)
            if (args[i] == targ)
                out = sv_newmortal();
    }
    else
        gimme = S_gimme_of(aTHX_ kw);
    /* one call of the body, so that it is inlined here */
    SP = body(aTHX_ v, m, args, nargs, out, gimme);
    if ((flags & OPF_TARG) && UNLIKELY(priv & DHMS_TARGMY))
        SP = S_store_targmy(aTHX_ SP, args, targ);
    PUTBACK;
    return kw->op_next;
}

/* One pp function per operation (those of method-only ops are never run). */
#define X(name, min, max, flags, usage)                                 \
    static OP *S_pp_##name(pTHX) { return S_pp_run(aTHX_ S_body_##name, min, flags, NULL, PL_op); }
DHMS_OP_LIST(X)
#undef X

/*
 * The hot keyword ops get one pp function per variant as well: there the
 * variant is a constant, and so are its key and value kinds (S_variants is
 * a constant table), so that the body keeps only the branches of its own
 * kinds (no variant lookup, no test of the kind per argument). S_build_kw
 * picks them; the op still carries its variant in op_private.
 */
#define DHMS_HOT_LIST(X) X(get) X(exists) X(put) X(remove) X(incr) X(decr) X(incr_by)

#define DHMS_HOT_FN(op, NAME, prefix, ID, KEY, VAL)                          \
    static OP *S_pp_##op##_##NAME(pTHX)                                      \
    {                                                                        \
        return S_pp_run(aTHX_ S_body_##op, S_ops[DHMS_OP_##op].min_args,     \
                        S_ops[DHMS_OP_##op].flags, &S_variants[ID], PL_op);  \
    }                                                                        \
    static OP *S_pp_##op##_##NAME##_pad(pTHX)                                \
    {                                                                        \
        return S_pp_pad(aTHX_ S_body_##op, S_ops[DHMS_OP_##op].min_args,     \
                        S_ops[DHMS_OP_##op].flags, &S_variants[ID]);         \
    }

/*
 * A hot keyword op whose arguments are all plain lexicals (`shm_ii_get $m,
 * $k`) runs as one op: its first argument's padsv runs this instead
 * (S_peep_fuse), which pushes every argument from the pad, runs the
 * keyword op's body for it, and goes on after the keyword op (which stays
 * in the op_next chain, but never runs). The argument ops are found from
 * the first: each one's op_sibparent is the next argument, and the last
 * one's is the keyword op, their parent. Saves two op dispatches and a
 * pass over the stack per statement. Perls without op_sibparent (before
 * 5.22, or 5.22 and 5.24 built without PERL_OP_PARENT) do not fuse.
 */
#ifdef PERL_OP_PARENT
#  define DHMS_SIBPARENT(o) ((o)->op_sibparent)
#else
#  define DHMS_SIBPARENT(o) ((OP *)NULL) /* never run: S_peep_fuse does not fuse */
#endif
DHMS_INLINE OP *S_pp_pad(pTHX_ dhms_body_fn body, I32 nargs, U8 flags,
                         const struct dhms_variant_desc *fixed)
{
    dSP;
    const OP *k = PL_op;
    I32 i;
    EXTEND(SP, nargs);
    for (i = 1; i < nargs; i++) {
        *++SP = PAD_SV(k->op_targ);
        k = DHMS_SIBPARENT(k);
    }
    *++SP = PAD_SV(k->op_targ);
    PUTBACK;
    return S_pp_run(aTHX_ body, nargs, flags, fixed, DHMS_SIBPARENT(k));
}

#define DHMS_HOT_FNS(op) DHMS_VARIANT_LIST_WITH(DHMS_HOT_FN, op)
DHMS_HOT_LIST(DHMS_HOT_FNS)
#undef DHMS_HOT_FNS
#undef DHMS_HOT_FN

/* A hot op's pp functions for one variant: the keyword op's own, and the
 * one its first argument runs when it runs the whole op (S_pp_pad). */
struct dhms_hot {
    Perl_ppaddr_t pp, pad;
};
#define DHMS_HOT_ENTRY(op, NAME, prefix, ID, KEY, VAL) \
    [DHMS_OP_##op][ID] = { S_pp_##op##_##NAME, S_pp_##op##_##NAME##_pad },
#define DHMS_HOT_ROW(op) DHMS_VARIANT_LIST_WITH(DHMS_HOT_ENTRY, op)
static const struct dhms_hot S_hot[DHMS_N_OPS][DHMS_VARIANTS] = {
    DHMS_HOT_LIST(DHMS_HOT_ROW)
};
#undef DHMS_HOT_ROW
#undef DHMS_HOT_ENTRY

/* The pp function of a keyword op of variant v: its own, if the op is hot. */
static Perl_ppaddr_t S_kw_pp(const struct dhms_method *d)
{
    Perl_ppaddr_t hot = S_hot[d->op - S_ops][d->v->id].pp;
    return hot ? hot : d->op->pp;
}

/* Every method of every variant: CvXSUBANY(cv).any_ptr is its
 * struct dhms_method. */
XS_INTERNAL(S_xsub_dispatch)
{
    dXSARGS;
    const struct dhms_method *d = (const struct dhms_method *)CvXSUBANY(cv).any_ptr;
    const struct dhms_op_desc *op = d->op;
    dhms_map *m;

    if (UNLIKELY(items < op->min_args || items > op->max_args))
        croak_xs_usage(cv, op->usage);
    if (UNLIKELY((op->flags & OPF_INTVAL) && d->v->val_kind == KIND_BYTES))
        Perl_croak(aTHX_ "%s: %s needs integer values, and this variant stores byte "
                   "strings: use an integer-value variant (I16 I32 II SI16 SI32 SI) "
                   "for counters", d->v->package, op->name);
    {
        dXSTARG;
        m = (op->flags & OPF_NOMAP) ? NULL : map_from(ST(0), d->v);
        SP = op->body(aTHX_ d->v, m, &ST(0), items, targ, GIMME_V);
        PUTBACK;
    }
}

/* ====================================================================== */
/* Keywords                                                               */
/* ====================================================================== */

/*
 * Keyword grammar, for an op of N arguments (N = 1..4, the map first):
 *
 *     shm_<prefix>_<op> TERM, TERM, ...       exactly N terms, no more
 *     shm_<prefix>_<op>(TERM, TERM, ...)      the same, in parentheses
 *
 * TERM is an expression down to assignment precedence (perl's
 * parse_termexpr), in scalar context: it ends at the next comma. Without
 * parentheses, items after the N-th term belong to the enclosing list, so
 * is(shm_ii_get $m, 42, 100, 'name') passes 100 and 'name' to is. As with
 * perl's own list operators, a "(" right after the keyword encloses all
 * the arguments.
 *
 * This is XPK_ARGSCOPE(XPK_TERMEXPR_SCALARCTX, XPK_COMMA, ...), but parsed
 * by hand: in XS::Parse::Keyword 0.33 a TERMEXPR that starts with "(" ends
 * at the matching ")", so shm_ii_get $m, ($i + 1) * 2 would silently
 * compile as (shm_ii_get $m, ($i + 1)) * 2. XS::Parse::Keyword still
 * registers the keywords and checks their hint keys.
 */
#define DHMS_MAX_KW_ARGS 4

/* Build the op's custom op over its argument expressions: a UNOP, BINOP or
 * LISTOP by arity (no pushmark: the count is fixed), the variant in
 * op_private, a pad target for the scalar result. */
static OP *S_build_kw(pTHX_ const struct dhms_method *d, OP **args, int nargs)
{
    OP *o;
    int i;

    switch (nargs) {
    case 1:
        o = newUNOP(OP_CUSTOM, 0, args[0]);
        break;
    case 2:
        o = newBINOP(OP_CUSTOM, 0, args[0], args[1]);
        break;
    default:
        o = newLISTOP(OP_CUSTOM, 0, args[0], args[1]);
        for (i = 2; i < nargs; i++) {
            o = op_append_elem(OP_CUSTOM, o, args[i]);
            /* op_sibling_splice keeps op_last only for op types whose class
             * it knows, and OP_CUSTOM is not one: set it, or the next
             * append would go after the second argument */
            cLISTOPx(o)->op_last = args[i];
        }
        break;
    }
    o->op_ppaddr = S_kw_pp(d);
    o->op_private = d->v->id;
    o->op_targ = pad_alloc(OP_CUSTOM, SVs_PADTMP);
    return o;
}
#define build_kw(...) S_build_kw(aTHX_ __VA_ARGS__)

DHMS_NORETURN void S_croak_kw_args(pTHX_ const struct dhms_method *d)
{
    Perl_croak(aTHX_ "shm_%s_%s takes %d argument%s: %s", d->v->prefix, d->op->name,
               d->op->min_args, d->op->min_args == 1 ? "" : "s", d->op->usage);
}
#define croak_kw_args(...) S_croak_kw_args(aTHX_ __VA_ARGS__)

/* The parse hook of every keyword: hookdata is its struct dhms_method. */
static int S_parse_kw(pTHX_ OP **out, void *hookdata)
{
    const struct dhms_method *d = (const struct dhms_method *)hookdata;
    const int nargs = d->op->min_args;
    OP *args[DHMS_MAX_KW_ARGS] = { NULL };
    int i, parens;

    lex_read_space(0);
    parens = lex_peek_unichar(0) == '(';
    if (parens) {
        lex_read_unichar(0);
        lex_read_space(0);
    }
    for (i = 0; i < nargs; i++) {
        if (i) {
            lex_read_space(0);
            if (lex_peek_unichar(0) != ',')
                croak_kw_args(d);
            lex_read_unichar(0);
            lex_read_space(0);
        }
        args[i] = parse_termexpr(0);
        if (!args[i]) /* a syntax error, already queued by perl */
            args[i] = newOP(OP_NULL, 0);
        args[i] = op_contextualize(args[i], G_SCALAR);
    }
    if (parens) {
        lex_read_space(0);
        if (lex_peek_unichar(0) != ')')
            croak_kw_args(d);
        lex_read_unichar(0);
    }
    *out = build_kw(d, args, nargs);
    return KEYWORD_PLUGIN_EXPR;
}

/*
 * Lexical arguments without an op each. `shm_ii_get $m, $k` runs padsv($m),
 * padsv($k), then the keyword's op: two op dispatches only to push two pad
 * entries. The peephole hook below (the keyword ops' xop_peep) finds a run
 * of two or more arguments that are plain lexicals (a padsv that is not
 * declared, localised or an lvalue there) and lets the run's first op push
 * them all: its pp function becomes S_pp_padrun, the others are marked
 * with S_pp_padrun_elided and skipped (the first one's op_next goes past
 * them). Nothing else changes: the keyword op finds its arguments on the
 * stack as before, and the first op stays where control enters the
 * argument list, so no jump into it is moved. Only the followers are
 * skipped, and nothing but their leaf predecessor leads to them.
 */
static OP *S_pp_padrun_elided(pTHX)
{
    /* never run: the run's first op skips its followers */
    Perl_croak(aTHX_ "Data::HashMap::Shared: internal error: a skipped argument op ran");
}

static OP *S_pp_padrun(pTHX)
{
    dSP;
    const OP *k = PL_op;
    EXTEND(SP, DHMS_MAX_KW_ARGS);
    do {
        PUSHs(PAD_SV(k->op_targ));
        k = OpSIBLING(k);
    } while (k && k->op_ppaddr == S_pp_padrun_elided);
    PUTBACK;
    return PL_op->op_next;
}

/* A padsv that only pushes its lexical (what pp_padsv does when the op
 * has no OPf_MOD). */
static int S_plain_padsv(const OP *o)
{
    return o->op_type == OP_PADSV && o->op_ppaddr == PL_ppaddr[OP_PADSV]
        && !(o->op_flags & (OPf_MOD | OPf_KIDS));
}

/* Which of this module's operations op o is (its index in S_ops), or -1;
 * *hot (unless hot is NULL) gets the hot op's pp functions for o's variant
 * if o runs one of them, else NULL. */
static int S_op_of(const OP *o, const struct dhms_hot **hot)
{
    int oi, vi;
    if (hot)
        *hot = NULL;
    if (o->op_type != OP_CUSTOM)
        return -1;
    for (oi = 0; oi < DHMS_N_OPS; oi++) {
        if (S_ops[oi].pp && o->op_ppaddr == S_ops[oi].pp)
            return oi;
        for (vi = 0; vi < DHMS_VARIANTS; vi++)
            if (S_hot[oi][vi].pp && o->op_ppaddr == S_hot[oi][vi].pp) {
                if (hot)
                    *hot = &S_hot[oi][vi];
                return oi;
            }
    }
    return -1;
}

/* If every argument of keyword op o is a plain lexical, run in this order
 * (the first is where control enters, the last leads to o), let the first
 * run the whole op (S_pp_pad) and mark the others as skipped. */
static int S_peep_fuse(pTHX_ OP *o)
{
    const struct dhms_hot *hot; /* the pp functions of a hot op, else NULL */
    Perl_ppaddr_t pad;
    OP *first = cUNOPo->op_first, *k;
    S_op_of(o, &hot);
    pad = hot ? hot->pad : NULL; /* runs o from its first argument (S_pp_pad) */
#ifndef PERL_OP_PARENT
    pad = NULL; /* S_pp_pad needs op_sibparent */
#endif
    if (!pad)
        return 0;
    for (k = first; k; k = OpSIBLING(k))
        if (!S_plain_padsv(k) || k->op_next != (OpHAS_SIBLING(k) ? OpSIBLING(k) : o))
            return 0;
    for (k = OpSIBLING(first); k; k = OpSIBLING(k))
        k->op_ppaddr = S_pp_padrun_elided;
    first->op_ppaddr = pad;
    /* S_pp_pad goes on with o's op_next, which later passes of the
     * optimizer may still change (they skip null ops after it): the
     * chain that B and debuggers follow keeps o, past the skipped
     * arguments */
    first->op_next = o;
    return 1;
}

/* xop_peep of every keyword op: its arguments' ops have been through the
 * peephole optimizer already (they run first). */
static void S_peep_kw(pTHX_ OP *o, OP *oldop)
{
    OP *k, *next;
    PERL_UNUSED_ARG(oldop);
    if (!(o->op_flags & OPf_KIDS) || S_peep_fuse(aTHX_ o))
        return;
    for (k = cUNOPo->op_first; k; k = next) {
        OP *last = k;
        next = OpSIBLING(k);
        if (!S_plain_padsv(k))
            continue;
        while (next && S_plain_padsv(next) && last->op_next == next) {
            last = next;
            next = OpSIBLING(next);
        }
        if (last != k) {
            OP *f;
            for (f = OpSIBLING(k); f != OpSIBLING(last); f = OpSIBLING(f))
                f->op_ppaddr = S_pp_padrun_elided;
            k->op_ppaddr = S_pp_padrun;
            k->op_next = last->op_next;
        }
    }
}

/* ====================================================================== */
/* BOOT                                                                   */
/* ====================================================================== */

static XOP S_xops[DHMS_N_OPS];

/* Is o one of this module's keyword ops, one whose result may go straight
 * into a lexical (OPF_TARG)? */
static int S_is_dhms_op(const OP *o)
{
    int oi = S_op_of(o, NULL);
    return oi >= 0 && (S_ops[oi].flags & (OPF_KW | OPF_TARG)) == (OPF_KW | OPF_TARG);
}

/* `$lexical = shm_<prefix>_<op> ...`: fold the assignment into the op, as
 * perl folds it into its own ops that have a target (S_maybe_targlex in
 * op.c, OPpTARGET_MY): the op's target becomes the lexical, and the
 * sassign and the lexical's padsv ops go. Saves two ops per statement and,
 * for strings, a copy: the engine writes the value into the lexical's own
 * buffer. As in perl, not for `my $x = ...` (the declaration must run). */
static Perl_check_t S_old_ck_sassign;
static OP *S_ck_sassign(pTHX_ OP *o)
{
    OP *kid, *kid2;

    o = S_old_ck_sassign(aTHX_ o);
    if (o->op_type != OP_SASSIGN || (o->op_private & OPpASSIGN_BACKWARDS))
        return o;
    kid = cBINOPo->op_first;
    kid2 = kid ? OpSIBLING(kid) : NULL;
    if (kid && S_is_dhms_op(kid) && !(kid->op_private & DHMS_TARGMY)
        && !(kid->op_flags & OPf_STACKED) && kid2 && kid2->op_type == OP_PADSV
        && !OpHAS_SIBLING(kid2)
        && (!(kid2->op_private & OPpLVAL_INTRO) || (kid2->op_private & OPpPAD_STATE))) {
        kid->op_targ = kid2->op_targ;
        kid->op_private |= DHMS_TARGMY;
        op_sibling_splice(o, NULL, 1, NULL);
        op_free(o);
        return kid;
    }
    return o;
}
/* one per variant: they differ by hint key only */
static struct XSParseKeywordHooks S_hooks[DHMS_VARIANTS];

static void S_boot(pTHX)
{
    int vi, oi;

    boot_xs_parse_keyword(0.33);
    S_sigbus_boot(aTHX);
    wrap_op_checker(OP_SASSIGN, S_ck_sassign, &S_old_ck_sassign);

    for (oi = 0; oi < DHMS_N_OPS; oi++) {
        const struct dhms_op_desc *op = &S_ops[oi];
        if (!(op->flags & OPF_KW))
            continue;
        if (op->min_args != op->max_args || op->min_args < 1
            || op->min_args > DHMS_MAX_KW_ARGS)
            Perl_croak(aTHX_ "Data::HashMap::Shared: internal error: keyword op %s "
                       "has %d..%d arguments", op->name, op->min_args, op->max_args);
        XopENTRY_set(&S_xops[oi], xop_name, op->xop_name);
        XopENTRY_set(&S_xops[oi], xop_desc, op->xop_desc);
        XopENTRY_set(&S_xops[oi], xop_class,
                     op->min_args == 1 ? OA_UNOP : op->min_args == 2 ? OA_BINOP : OA_LISTOP);
        XopENTRY_set(&S_xops[oi], xop_peep, S_peep_kw);
        Perl_custom_op_register(aTHX_ op->pp, &S_xops[oi]);
        /* a hot op's per-variant pp functions are the same op to perl */
        for (vi = 0; vi < DHMS_VARIANTS; vi++)
            if (S_hot[oi][vi].pp)
                Perl_custom_op_register(aTHX_ S_hot[oi][vi].pp, &S_xops[oi]);
    }

    for (vi = 0; vi < DHMS_VARIANTS; vi++) {
        const struct dhms_variant_desc *v = &S_variants[vi];

        if (v->id != vi || vi > DHMS_VARIANT_MASK)
            Perl_croak(aTHX_ "Data::HashMap::Shared: internal error: variant table order");
        S_hooks[vi].flags = XPK_FLAG_EXPR;
        S_hooks[vi].permit_hintkey = v->hintkey;
        S_hooks[vi].parse = S_parse_kw;
        for (oi = 0; oi < DHMS_N_OPS; oi++) {
            const struct dhms_op_desc *op = &S_ops[oi];
            struct dhms_method *d = &S_methods[vi][oi];
            SV *name;
            CV *cv;

            d->v = v;
            d->op = op;
            /* cursor_next & co. are methods of the cursor class: $cur->next */
            name = op->flags & OPF_CURSOR
                ? sv_2mortal(newSVpvf("%s::%s", v->cursor_package,
                                      op->name + sizeof "cursor_" - 1))
                : sv_2mortal(newSVpvf("%s::%s", v->package, op->name));
            cv = newXS(SvPVX(name), S_xsub_dispatch, __FILE__);
            CvXSUBANY(cv).any_ptr = d;
            /* counters on string values: a method that says what to do, no keyword */
            if ((op->flags & OPF_KW)
                && !((op->flags & OPF_INTVAL) && v->val_kind == KIND_BYTES)) {
                /* XS::Parse::Keyword keeps the name: it lives forever */
                const char *kw = savesharedpv(
                    SvPVX(sv_2mortal(newSVpvf("shm_%s_%s", v->prefix, op->name))));
                register_xs_parse_keyword(kw, &S_hooks[vi], d);
            }
        }
    }
}

MODULE = Data::HashMap::Shared    PACKAGE = Data::HashMap::Shared

PROTOTYPES: DISABLE

BOOT:
    S_boot(aTHX);
