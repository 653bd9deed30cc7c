//! The C ABI (`xs/dhms.h`). One function per operation; the variant is
//! resolved once, when the handle is made, into a `dyn AnyMap`. Every
//! function catches panics and reports them as `DHMS_ERROR`: nothing unwinds
//! into C, and the writer lock is released by its guard on the way out.

use crate::dynmap::{again, AnyMap, CursorPos};
use crate::error::{Error, Result};
use crate::map::{End, Map, Quick};
use crate::open::{is_location, open_any, open_source};
use crate::os::region::Source;
use crate::raw::codec::{Bytes, Codec, I16, I32, I64};
use crate::raw::types::{Entry, Info, Item, Out, Params, Status, Variant};
use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::mem::MaybeUninit;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// `DHMS_OK` .. `DHMS_ESMALL` are [`Status`]'s numbers.
pub const DHMS_OK: c_int = Status::Ok as c_int;
/// `DHMS_FALSE`.
pub const DHMS_FALSE: c_int = Status::False as c_int;
/// `DHMS_EFULL`.
pub const DHMS_EFULL: c_int = Status::Full as c_int;
/// `DHMS_ERANGE`.
pub const DHMS_ERANGE: c_int = Status::Range as c_int;
/// `DHMS_ESMALL`.
pub const DHMS_ESMALL: c_int = Status::Small as c_int;
/// `DHMS_ERROR`: the message is in `dhms_last_error`.
pub const DHMS_ERROR: c_int = 5;
/// `DHMS_ENOSPC`: the file system refused space; nothing was lost; the
/// message is in `dhms_last_error`.
pub const DHMS_ENOSPC: c_int = 6;

/// `dhms_item`: an input key or value, or a view of engine-owned bytes.
/// Raw pointers live here and nowhere else: each call turns its
/// `dhms_item`s into safe [`Item`]s once ([`item`]), and its `dhms_out`s
/// into [`Out`]s over the caller's buffer ([`out_arg`]).
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct CItem {
    /// Bytes (string kinds); may be null when `len == 0`.
    pub ptr: *const u8,
    /// Their length.
    pub len: usize,
    /// The integer (integer kinds).
    pub num: i64,
    /// 1 if the Perl string had the UTF-8 flag.
    pub utf8: u32,
}

impl CItem {
    /// The safe view of this item.
    ///
    /// # Safety
    /// `ptr` is valid for reads of `len` bytes, unchanged, for `'a`.
    #[inline(always)]
    unsafe fn view<'a>(&self) -> Result<Item<'a>> {
        let bytes: &'a [u8] = if self.len == 0 {
            &[]
        } else if self.ptr.is_null() {
            return Err(Error::new("null bytes pointer with a non-zero length"));
        } else {
            // SAFETY: per the contract.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        };
        Ok(Item {
            bytes,
            num: self.num,
            utf8: self.utf8,
        })
    }
}

/// `dhms_out`: an output key or value into a caller-owned buffer.
#[derive(Debug)]
#[repr(C)]
pub struct COut {
    /// Caller's buffer (string kinds); may be uninitialized.
    pub buf: *mut u8,
    /// Its size in bytes.
    pub cap: usize,
    /// Bytes written; bytes needed on `DHMS_ESMALL`.
    pub len: usize,
    /// Integer result.
    pub num: i64,
    /// UTF-8 flag.
    pub utf8: u32,
}

/// The item at `p`, as a safe [`Item`] for the call.
///
/// # Safety
/// `p` is null or points at a `dhms_item` whose bytes are valid for `'a`.
#[inline(always)]
unsafe fn item<'a>(p: *const CItem) -> Result<Item<'a>> {
    // SAFETY: per the contract.
    unsafe { arg(p)?.view() }
}

/// `n` items at `p`, as safe [`Item`]s for the call.
///
/// # Safety
/// `p` is valid for `n` items (when `n > 0`) whose bytes are valid for `'a`.
unsafe fn items<'a>(p: *const CItem, n: usize) -> Result<Vec<Item<'a>>> {
    // SAFETY: per the contract.
    let c = unsafe { slice(p, n)? };
    // SAFETY: per the contract.
    c.iter().map(|c| unsafe { c.view() }).collect()
}

/// An [`Out`] over a `dhms_out`'s buffer; dropping it writes `len`, `num`
/// and `utf8` back into the `dhms_out`.
struct OutArg<'a> {
    c: *mut COut,
    o: Out<'a>,
}

impl<'a> std::ops::Deref for OutArg<'a> {
    type Target = Out<'a>;
    #[inline(always)]
    fn deref(&self) -> &Out<'a> {
        &self.o
    }
}

impl<'a> std::ops::DerefMut for OutArg<'a> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut Out<'a> {
        &mut self.o
    }
}

impl Drop for OutArg<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        // Field by field, with volatile reads: the engine has just stored
        // them one by one, and the one wide load the compiler would merge
        // them into cannot be forwarded from those stores (a stall that
        // cost 15% of a `get`).
        // SAFETY: reads of our own fields; `c` was checked non-null and is
        // valid for the call (`out_arg`'s contract); the buffer it names is
        // not `*c` itself.
        unsafe {
            let len = std::ptr::read_volatile(&self.o.len);
            let num = std::ptr::read_volatile(&self.o.num);
            let utf8 = std::ptr::read_volatile(&self.o.utf8);
            (*self.c).len = len;
            (*self.c).num = num;
            (*self.c).utf8 = utf8;
        }
    }
}

/// The output at `p`, as a safe [`Out`] for the call.
///
/// # Safety
/// `p` is null or points at a `dhms_out` valid for `'a` whose `buf` is
/// valid for writes of `cap` bytes (or `cap == 0`) and overlaps nothing
/// else the call uses.
#[inline(always)]
unsafe fn out_arg<'a>(p: *mut COut) -> Result<OutArg<'a>> {
    // SAFETY: per the contract.
    let c = unsafe { arg_mut(p)? };
    let buf: &'a mut [MaybeUninit<u8>] = if c.cap == 0 {
        &mut []
    } else if c.buf.is_null() {
        return Err(Error::new("null output buffer with a non-zero capacity"));
    } else {
        // SAFETY: per the contract; MaybeUninit: the buffer may be
        // uninitialized (the spare room of a Perl string).
        unsafe { std::slice::from_raw_parts_mut(c.buf.cast(), c.cap) }
    };
    Ok(OutArg {
        c: p,
        o: Out::uninit(buf),
    })
}

/// `dhms_params`: the parameters of a new map, as C passes them.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct CParams {
    /// 1 .. 2**32-1.
    pub max_entries: u64,
    /// 0 = no LRU.
    pub max_size: u64,
    /// Seconds; 0 = no expiry.
    pub ttl: u64,
    /// 0 .. 99.
    pub lru_skip: u64,
    /// Bytes; 0 = grow on demand.
    pub arena_cap: u64,
    /// Applied exactly, e.g. 0600.
    pub file_mode: u32,
}

impl From<&CParams> for Params {
    fn from(c: &CParams) -> Params {
        Params {
            max_entries: c.max_entries,
            max_size: c.max_size,
            ttl: c.ttl,
            lru_skip: c.lru_skip,
            arena_cap: c.arena_cap,
            file_mode: c.file_mode,
        }
    }
}

/// The handle C holds. C sees its first field (`struct dhms_map_head`):
/// the handle's entry points for the keywords' hot operations.
#[repr(C)]
pub struct DhmsMap {
    /// Never null: [`DhmsFast`] for the map's codecs, or the generic one.
    fast: &'static DhmsFast,
    map: Box<dyn AnyMap>,
    /// The file path (NULL for anonymous, memfd and sharded maps).
    path: Option<CString>,
}

impl DhmsMap {
    fn boxed(map: Box<dyn AnyMap>) -> *mut DhmsMap {
        let path = map.file_path().and_then(|p| CString::new(p).ok());
        let fast = fast_table(&*map);
        Box::into_raw(Box::new(DhmsMap { fast, map, path }))
    }
}

/// `dhms_fast`: a handle's entry points for get, exists, put and incr_by,
/// with the signatures (and the contracts) of `dhms_get` & co. For a map
/// in a file they are compiled for its key and value codecs: the map is
/// reached without the trait object, and each is one function with the
/// whole operation inlined. A map on a server, or a sharded one, gets
/// [`GENERIC`]: `dhms_get` & co. themselves.
#[repr(C)]
pub struct DhmsFast {
    /// As [`dhms_get`].
    pub get: unsafe extern "C" fn(*mut DhmsMap, *const CItem, *mut COut) -> c_int,
    /// As [`dhms_exists`].
    pub exists: unsafe extern "C" fn(*mut DhmsMap, *const CItem) -> c_int,
    /// As [`dhms_put`].
    pub put: unsafe extern "C" fn(*mut DhmsMap, *const CItem, *const CItem) -> c_int,
    /// As [`dhms_incr_by`].
    pub incr_by: unsafe extern "C" fn(*mut DhmsMap, *const CItem, i64, *mut i64) -> c_int,
    /// As [`dhms_get`] for a variant whose keys and values are both
    /// integers, with the key and the value as numbers: no `dhms_item` or
    /// `dhms_out` to fill and read back.
    pub get_num: unsafe extern "C" fn(*mut DhmsMap, i64, *mut i64) -> c_int,
    /// As [`dhms_incr_by`] for a variant with integer keys (and values),
    /// with the key as a number.
    pub incr_num: unsafe extern "C" fn(*mut DhmsMap, i64, i64, *mut i64) -> c_int,
    /// As [`dhms_put`] for a variant whose keys and values are both
    /// integers, with the key and the value as numbers.
    pub put_num: unsafe extern "C" fn(*mut DhmsMap, i64, i64) -> c_int,
    /// As [`dhms_remove`].
    pub remove: unsafe extern "C" fn(*mut DhmsMap, *const CItem) -> c_int,
}

/// The entry points of a handle whose map is not a `Map` in a file.
static GENERIC: DhmsFast = DhmsFast {
    get: dhms_get,
    exists: dhms_exists,
    put: dhms_put,
    incr_by: dhms_incr_by,
    get_num: generic_get_num,
    incr_num: generic_incr_num,
    put_num: generic_put_num,
    remove: dhms_remove,
};

/// `put_num` of [`GENERIC`]: [`dhms_put`] with items.
///
/// # Safety
/// As [`dhms_put`].
unsafe extern "C" fn generic_put_num(m: *mut DhmsMap, key: i64, val: i64) -> c_int {
    // SAFETY: per the contract; the items are ours.
    unsafe { dhms_put(m, &int_item(key), &int_item(val)) }
}

/// `incr_num` of [`GENERIC`]: [`dhms_incr_by`] with an item.
///
/// # Safety
/// As [`dhms_incr_by`].
unsafe extern "C" fn generic_incr_num(
    m: *mut DhmsMap,
    key: i64,
    delta: i64,
    result: *mut i64,
) -> c_int {
    // SAFETY: per the contract; the item is ours.
    unsafe { dhms_incr_by(m, &int_item(key), delta, result) }
}

/// `get_num` of [`GENERIC`]: [`dhms_get`] with an item and an output.
///
/// # Safety
/// As [`dhms_get`]; `val` is valid for a write.
unsafe extern "C" fn generic_get_num(m: *mut DhmsMap, key: i64, val: *mut i64) -> c_int {
    let mut out = COut {
        buf: std::ptr::null_mut(),
        cap: 0,
        len: 0,
        num: 0,
        utf8: 0,
    };
    // SAFETY: per the contract; the item and `out` are ours.
    let st = unsafe { dhms_get(m, &int_item(key), &mut out) };
    if st == DHMS_OK {
        // SAFETY: per the contract.
        unsafe { *val = out.num };
    }
    st
}

/// The entry points compiled for `Map<K, V>`.
struct Fast<K, V>(std::marker::PhantomData<(K, V)>);

impl<K: Codec, V: Codec> Fast<K, V> {
    const TABLE: DhmsFast = DhmsFast {
        get: fast_get::<K, V>,
        exists: fast_exists::<K, V>,
        put: fast_put::<K, V>,
        incr_by: fast_incr_by::<K, V>,
        get_num: fast_get_num::<K, V>,
        incr_num: fast_incr_num::<K, V>,
        put_num: fast_put_num::<K, V>,
        remove: fast_remove::<K, V>,
    };
}

/// The entry points for `map`: its codecs' if it is a `Map` in a file.
fn fast_table(map: &dyn AnyMap) -> &'static DhmsFast {
    let Some(any) = map.as_any() else {
        return &GENERIC;
    };
    macro_rules! codecs {
        ($(($k:ty, $v:ty)),*) => {
            $(if any.is::<Map<$k, $v>>() {
                return &Fast::<$k, $v>::TABLE;
            })*
        };
    }
    codecs!(
        (I16, I16),
        (I32, I32),
        (I64, I64),
        (I16, Bytes),
        (I32, Bytes),
        (I64, Bytes),
        (Bytes, I16),
        (Bytes, I32),
        (Bytes, I64),
        (Bytes, Bytes)
    );
    &GENERIC
}

/// Run `f` on the handle's map, known to be a `Map<K, V>`, inside
/// `guard`: what [`with`] does, without the trait object.
///
/// # Safety
/// `m` is a valid handle used by this thread only, whose `fast` is
/// `Fast::<K, V>::TABLE` (so its map is a `Map<K, V>`).
#[inline(always)]
unsafe fn with_typed<K: Codec, V: Codec>(
    m: *mut DhmsMap,
    f: impl FnOnce(&mut Map<K, V>) -> Result<c_int>,
) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let h = unsafe { arg_mut(m)? };
        // SAFETY: `fast_table` chose this table because the map is a
        // `Map<K, V>`; the trait object's data pointer is that map.
        let map = unsafe { &mut *(&mut *h.map as *mut dyn AnyMap).cast::<Map<K, V>>() };
        let r = f(map);
        if map.core_ref().truncated() {
            return Err(truncated_error(&*h.map));
        }
        r
    })
}

/// `fast.get` for `Map<K, V>`.
///
/// # Safety
/// As [`dhms_get`]; `m`'s `fast` is `Fast::<K, V>::TABLE`.
unsafe extern "C" fn fast_get<K: Codec, V: Codec>(
    m: *mut DhmsMap,
    k: *const CItem,
    out: *mut COut,
) -> c_int {
    // SAFETY: per the contract.
    unsafe { with_typed::<K, V>(m, |map| st(map.get(&item(k)?, &mut *out_arg(out)?))) }
}

/// The quick attempt `f` on the handle's map, known to be a `Map<K, V>`:
/// what it decided, or `Quick::Slow` for a null handle or a panic (the
/// full path then runs, and reports its own). A `Quick` and no `Result`,
/// so that the common case runs in a small frame.
///
/// # Safety
/// `m` is null or a valid handle used by this thread only, whose `fast`
/// is `Fast::<K, V>::TABLE`.
#[inline(always)]
unsafe fn quick<K: Codec, V: Codec>(m: *mut DhmsMap, f: impl FnOnce(&Map<K, V>) -> Quick) -> Quick {
    // SAFETY: per the contract.
    let Some(h) = (unsafe { m.as_ref() }) else {
        return Quick::Slow;
    };
    // SAFETY: as in `with_typed`.
    let map = unsafe { &*(&*h.map as *const dyn AnyMap).cast::<Map<K, V>>() };
    catch_unwind(AssertUnwindSafe(|| f(map))).unwrap_or(Quick::Slow)
}

/// An integer item (`dhms_item` with no bytes).
fn int_item(num: i64) -> CItem {
    CItem {
        ptr: std::ptr::null(),
        len: 0,
        num,
        utf8: 0,
    }
}

/// `fast.get_num` for `Map<K, V>`.
///
/// # Safety
/// As [`dhms_get`], for integer keys and values; `val` is valid for a
/// write; `m`'s `fast` is `Fast::<K, V>::TABLE`.
unsafe extern "C" fn fast_get_num<K: Codec, V: Codec>(
    m: *mut DhmsMap,
    key: i64,
    val: *mut i64,
) -> c_int {
    // The common case first (`quick`): one attempt that either decides
    // or leaves it to the full path, compiled out of line.
    if !val.is_null() {
        // SAFETY: per the contract.
        match unsafe { quick::<K, V>(m, |map| map.get_quick(key)) } {
            Quick::Hit(v) => {
                // SAFETY: per the contract; checked non-null above.
                unsafe { *val = v };
                return DHMS_OK;
            }
            Quick::Miss => return DHMS_FALSE,
            Quick::Slow => {}
        }
    }
    // SAFETY: per the contract.
    unsafe { get_num_full::<K, V>(m, key, val) }
}

/// [`fast_get_num`] when the quick attempt did not decide.
///
/// # Safety
/// As [`fast_get_num`].
#[cold]
#[inline(never)]
unsafe fn get_num_full<K: Codec, V: Codec>(m: *mut DhmsMap, key: i64, val: *mut i64) -> c_int {
    // SAFETY: per the contract.
    unsafe {
        with_typed::<K, V>(m, |map| match map.get_num(key)? {
            Some(v) => {
                *arg_mut(val)? = v;
                Ok(DHMS_OK)
            }
            None => Ok(DHMS_FALSE),
        })
    }
}

/// `fast.incr_num` for `Map<K, V>`.
///
/// # Safety
/// As [`dhms_incr_by`], for integer keys; `m`'s `fast` is
/// `Fast::<K, V>::TABLE`.
unsafe extern "C" fn fast_incr_num<K: Codec, V: Codec>(
    m: *mut DhmsMap,
    key: i64,
    delta: i64,
    result: *mut i64,
) -> c_int {
    // As `fast_get_num`: the common case first.
    if !result.is_null() {
        // SAFETY: per the contract.
        if let Quick::Hit(v) = unsafe { quick::<K, V>(m, |map| map.incr_quick(key, delta)) } {
            // SAFETY: per the contract; checked non-null above.
            unsafe { *result = v };
            return DHMS_OK;
        }
    }
    // SAFETY: per the contract.
    unsafe { incr_num_full::<K, V>(m, key, delta, result) }
}

/// [`fast_incr_num`] when the quick attempt did not decide.
///
/// # Safety
/// As [`fast_incr_num`].
#[cold]
#[inline(never)]
unsafe fn incr_num_full<K: Codec, V: Codec>(
    m: *mut DhmsMap,
    key: i64,
    delta: i64,
    result: *mut i64,
) -> c_int {
    // SAFETY: per the contract.
    unsafe {
        with_typed::<K, V>(m, |map| {
            let (s, v) = again(map, |map| map.incr_num(key, delta))?;
            if s == Status::Ok {
                *arg_mut(result)? = v;
            }
            st(Ok(s))
        })
    }
}

/// `fast.put_num` for `Map<K, V>`.
///
/// # Safety
/// As [`dhms_put`], for integer keys and values; `m`'s `fast` is
/// `Fast::<K, V>::TABLE`.
unsafe extern "C" fn fast_put_num<K: Codec, V: Codec>(
    m: *mut DhmsMap,
    key: i64,
    val: i64,
) -> c_int {
    // As `fast_get_num`: the common case first.
    // SAFETY: per the contract.
    if let Quick::Hit(_) = unsafe { quick::<K, V>(m, |map| map.put_quick(key, val)) } {
        return DHMS_OK;
    }
    // SAFETY: per the contract.
    unsafe { put_num_full::<K, V>(m, key, val) }
}

/// [`fast_put_num`] when the quick attempt did not decide.
///
/// # Safety
/// As [`fast_put_num`].
#[cold]
#[inline(never)]
unsafe fn put_num_full<K: Codec, V: Codec>(m: *mut DhmsMap, key: i64, val: i64) -> c_int {
    // SAFETY: per the contract.
    unsafe { with_typed::<K, V>(m, |map| st(again(map, |map| map.put_num(key, val)))) }
}

/// `fast.remove` for `Map<K, V>`.
///
/// # Safety
/// As [`dhms_remove`]; `m`'s `fast` is `Fast::<K, V>::TABLE`.
unsafe extern "C" fn fast_remove<K: Codec, V: Codec>(m: *mut DhmsMap, k: *const CItem) -> c_int {
    // SAFETY: per the contract.
    unsafe { with_typed::<K, V>(m, |map| st(map.remove(&item(k)?))) }
}

/// `fast.exists` for `Map<K, V>`.
///
/// # Safety
/// As [`dhms_exists`]; `m`'s `fast` is `Fast::<K, V>::TABLE`.
unsafe extern "C" fn fast_exists<K: Codec, V: Codec>(m: *mut DhmsMap, k: *const CItem) -> c_int {
    // SAFETY: per the contract.
    unsafe { with_typed::<K, V>(m, |map| map.exists(&item(k)?).map(yes)) }
}

/// `fast.put` for `Map<K, V>`.
///
/// # Safety
/// As [`dhms_put`]; `m`'s `fast` is `Fast::<K, V>::TABLE`.
unsafe extern "C" fn fast_put<K: Codec, V: Codec>(
    m: *mut DhmsMap,
    k: *const CItem,
    v: *const CItem,
) -> c_int {
    // SAFETY: per the contract.
    unsafe { with_typed::<K, V>(m, |map| st(AnyMap::put(map, &item(k)?, &item(v)?))) }
}

/// `fast.incr_by` for `Map<K, V>`.
///
/// # Safety
/// As [`dhms_incr_by`]; `m`'s `fast` is `Fast::<K, V>::TABLE`.
unsafe extern "C" fn fast_incr_by<K: Codec, V: Codec>(
    m: *mut DhmsMap,
    k: *const CItem,
    delta: i64,
    result: *mut i64,
) -> c_int {
    // SAFETY: per the contract.
    unsafe {
        with_typed::<K, V>(m, |map| {
            st(AnyMap::incr_by(map, &item(k)?, delta, arg_mut(result)?))
        })
    }
}

/// The error of a call that found its map's file truncated under it.
#[cold]
fn truncated_error(map: &dyn AnyMap) -> Error {
    Error::new(format!(
        "{}: the map file was truncated while in use (by another process?); \
         its data is lost: remove the file and create the map again",
        map.display_path()
    ))
}

/// A list of entries handed to C: keys / values / items / to_hash,
/// get_multi (values may be missing), pop / shift / drain.
pub struct DhmsSnapshot(Vec<(Entry, Option<Entry>)>);

impl DhmsSnapshot {
    fn boxed(pairs: Vec<(Entry, Entry)>) -> *mut DhmsSnapshot {
        let all = pairs.into_iter().map(|(k, v)| (k, Some(v))).collect();
        Box::into_raw(Box::new(DhmsSnapshot(all)))
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_error(msg: &str) {
    let c = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// Run `f`, turning errors and panics into `DHMS_ERROR`.
fn guard(f: impl FnOnce() -> Result<c_int>) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            set_error(&e.0);
            if e.is_no_space() {
                DHMS_ENOSPC
            } else {
                DHMS_ERROR
            }
        }
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            set_error(&format!("internal error: {what} (please report it)"));
            DHMS_ERROR
        }
    }
}

fn st(r: Result<Status>) -> Result<c_int> {
    r.map(|s| s as c_int)
}

/// # Safety
/// `p` must be null or point at a valid value for the call.
#[inline(always)]
unsafe fn arg<'a, T>(p: *const T) -> Result<&'a T> {
    // SAFETY: per the contract.
    unsafe { p.as_ref() }.ok_or_else(|| Error::new("null argument"))
}

/// # Safety
/// `p` must be null or point at a valid value for the call.
#[inline(always)]
unsafe fn arg_mut<'a, T>(p: *mut T) -> Result<&'a mut T> {
    // SAFETY: per the contract.
    unsafe { p.as_mut() }.ok_or_else(|| Error::new("null argument"))
}

/// The message of the last `DHMS_ERROR` on this thread.
#[no_mangle]
pub extern "C" fn dhms_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Create or attach a map. See `xs/dhms.h`.
///
/// # Safety
/// `path` is a NUL-terminated string; `params` and `out` are valid pointers.
#[no_mangle]
pub unsafe extern "C" fn dhms_open(
    path: *const c_char,
    variant: u32,
    params: *const CParams,
    out: *mut *mut DhmsMap,
) -> c_int {
    guard(|| {
        if path.is_null() {
            return Err(Error::new("null path"));
        }
        // SAFETY: per the contract.
        let path = unsafe { CStr::from_ptr(path) };
        let v = Variant::from_u32(variant).ok_or_else(|| Error::new("unknown variant"))?;
        // SAFETY: per the contract.
        let p = Params::from(unsafe { arg(params)? });
        // SAFETY: per the contract.
        let out = unsafe { arg_mut(out)? };
        *out = DhmsMap::boxed(open_any(path, v, &p)?);
        Ok(0)
    })
}

/// `enum dhms_source_kind`: the file at `name` (created if absent).
pub const DHMS_SRC_PATH: c_int = 0;
/// A new memfd named `name`.
pub const DHMS_SRC_MEMFD: c_int = 1;
/// An anonymous map, shared with fork children only.
pub const DHMS_SRC_ANON: c_int = 2;
/// The map in descriptor `fd` (dup'ed).
pub const DHMS_SRC_FD: c_int = 3;
/// The frozen map at `name`, mapped read-only.
pub const DHMS_SRC_READONLY: c_int = 4;
/// Files `name.0` .. `name.(shards-1)`.
pub const DHMS_SRC_SHARDED: c_int = 5;

/// Every number of the C ABI by its name in `xs/dhms.h` (checked against
/// the header by `rust/tests/c_abi.rs`).
pub(crate) fn abi_numbers() -> Vec<(String, i128)> {
    let mut v: Vec<(String, i128)> = Vec::new();
    const VARIANTS: [&str; 10] = [
        "DHMS_I16",
        "DHMS_I32",
        "DHMS_II",
        "DHMS_I16S",
        "DHMS_I32S",
        "DHMS_IS",
        "DHMS_SI16",
        "DHMS_SI32",
        "DHMS_SI",
        "DHMS_SS",
    ];
    for (name, var) in VARIANTS.iter().zip(Variant::ALL) {
        v.push((name.to_string(), var as u32 as i128));
    }
    v.push(("DHMS_VARIANTS".into(), Variant::ALL.len() as i128));
    for (name, n) in [
        ("DHMS_OK", DHMS_OK),
        ("DHMS_FALSE", DHMS_FALSE),
        ("DHMS_EFULL", DHMS_EFULL),
        ("DHMS_ERANGE", DHMS_ERANGE),
        ("DHMS_ESMALL", DHMS_ESMALL),
        ("DHMS_ERROR", DHMS_ERROR),
        ("DHMS_ENOSPC", DHMS_ENOSPC),
        ("DHMS_SRC_PATH", DHMS_SRC_PATH),
        ("DHMS_SRC_MEMFD", DHMS_SRC_MEMFD),
        ("DHMS_SRC_ANON", DHMS_SRC_ANON),
        ("DHMS_SRC_FD", DHMS_SRC_FD),
        ("DHMS_SRC_READONLY", DHMS_SRC_READONLY),
        ("DHMS_SRC_SHARDED", DHMS_SRC_SHARDED),
    ] {
        v.push((name.to_string(), n as i128));
    }
    for info in Info::ALL {
        v.push((info.c_name(), *info as i32 as i128));
    }
    v.push(("DHMS_INFO_COUNT".into(), Info::ALL.len() as i128));
    v.push(("DHMS_POS_START".into(), POS_START as i128));
    v
}

/// The size of each C ABI struct, and the offset and size of each of its
/// fields, by their names in `xs/dhms.h` (`sizeof dhms_item`,
/// `dhms_item.len`, `sizeof dhms_item.len`):
/// `rust/tests/c_abi.rs` compiles the same list from the header with the C
/// compiler and compares.
pub(crate) fn abi_layouts() -> Vec<(String, usize)> {
    use std::mem::{offset_of, size_of};
    fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
        size_of::<F>()
    }
    let mut v = Vec::new();
    macro_rules! layout {
        ($c:literal, $t:ty, $($f:ident),*) => {
            v.push((concat!("sizeof ", $c).to_string(), size_of::<$t>()));
            $(
                v.push((concat!($c, ".", stringify!($f)).to_string(), offset_of!($t, $f)));
                v.push((
                    concat!("sizeof ", $c, ".", stringify!($f)).to_string(),
                    field_size(|x: &$t| &x.$f),
                ));
            )*
        };
    }
    layout!("dhms_item", CItem, ptr, len, num, utf8);
    layout!("dhms_out", COut, buf, cap, len, num, utf8);
    layout!(
        "dhms_params",
        CParams,
        max_entries,
        max_size,
        ttl,
        lru_skip,
        arena_cap,
        file_mode
    );
    layout!("dhms_source", SourceDesc, kind, name, fd, shards);
    layout!(
        "dhms_fast",
        DhmsFast,
        get,
        exists,
        put,
        incr_by,
        get_num,
        incr_num,
        put_num,
        remove
    );
    // C reads the handle's first field: `struct dhms_map_head`
    v.push((
        "struct dhms_map_head.fast".into(),
        offset_of!(DhmsMap, fast),
    ));
    v.push((
        "sizeof struct dhms_map_head.fast".into(),
        field_size(|x: &DhmsMap| &x.fast),
    ));
    v
}

/// Where `dhms_open_source` opens a map from (see `xs/dhms.h`).
#[repr(C)]
pub struct SourceDesc {
    kind: c_int,
    name: *const c_char,
    fd: c_int,
    shards: u32,
}

/// Create or attach a map from a path, a memfd, an anonymous mapping, a
/// descriptor, read-only, or as shards. See `xs/dhms.h`.
///
/// # Safety
/// `src`, `params` and `out` are valid; `src->name` is NUL-terminated where
/// the kind needs it.
#[no_mangle]
pub unsafe extern "C" fn dhms_open_source(
    src: *const SourceDesc,
    variant: u32,
    params: *const CParams,
    out: *mut *mut DhmsMap,
) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let (src, p, out) = unsafe { (arg(src)?, arg(params)?, arg_mut(out)?) };
        let p = &Params::from(p);
        let v = Variant::from_u32(variant).ok_or_else(|| Error::new("unknown variant"))?;
        let name = || -> Result<&CStr> {
            if src.name.is_null() {
                return Err(Error::new("null name"));
            }
            // SAFETY: per the contract.
            Ok(unsafe { CStr::from_ptr(src.name) })
        };
        let map: Box<dyn AnyMap> = match src.kind {
            DHMS_SRC_PATH => open_source(&Source::Path(name()?), v, p)?,
            DHMS_SRC_MEMFD => open_source(&Source::Memfd(name()?), v, p)?,
            DHMS_SRC_ANON => open_source(&Source::Anonymous, v, p)?,
            DHMS_SRC_FD => open_source(&Source::Fd(src.fd), v, p)?,
            DHMS_SRC_READONLY => open_source(&Source::ReadOnly(name()?), v, p)?,
            DHMS_SRC_SHARDED => Box::new(crate::sharded::Sharded::open(
                &name()?.to_string_lossy(),
                src.shards,
                v,
                p,
            )?),
            k => return Err(Error::new(format!("unknown source kind {k}"))),
        };
        *out = DhmsMap::boxed(map);
        Ok(0)
    })
}

/// Properties of a handle: which = 0 memfd descriptor (-1 if none),
/// 1 frozen, 2 read-only.
///
/// # Safety
/// `m` is a valid handle.
#[no_mangle]
pub unsafe extern "C" fn dhms_handle_info(m: *const DhmsMap, which: c_int) -> c_int {
    // SAFETY: per the contract.
    let Some(h) = (unsafe { m.as_ref() }) else {
        return -1;
    };
    match which {
        0 => h.map.memfd(),
        1 => h.map.frozen() as c_int,
        2 => h.map.readonly() as c_int,
        _ => -1,
    }
}

/// Detach and free a handle.
///
/// # Safety
/// `m` is null or a handle from `dhms_open`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn dhms_close(m: *mut DhmsMap) {
    if !m.is_null() {
        // SAFETY: per the contract, we own it now.
        let b = unsafe { Box::from_raw(m) };
        let _ = catch_unwind(AssertUnwindSafe(move || drop(b)));
    }
}

/// The handle's path.
///
/// # Safety
/// `m` is a valid handle.
#[no_mangle]
pub unsafe extern "C" fn dhms_path(m: *const DhmsMap) -> *const c_char {
    // SAFETY: per the contract.
    match unsafe { m.as_ref() }.and_then(|h| h.path.as_ref()) {
        Some(p) => p.as_ptr(),
        None => std::ptr::null(),
    }
}

fn unlink_cstr(p: &CStr) -> c_int {
    // SAFETY: p is NUL-terminated.
    if unsafe { libc::unlink(p.as_ptr()) } == 0 {
        0
    } else {
        1
    }
}

/// unlink(2) the handle's file (for a map on a server: delete its keys).
///
/// # Safety
/// `m` is a valid handle used by this thread only.
#[no_mangle]
pub unsafe extern "C" fn dhms_unlink(m: *const DhmsMap) -> c_int {
    // SAFETY: per the contract (the handle is not shared: see xs/dhms.h).
    let Some(h) = (unsafe { (m as *mut DhmsMap).as_mut() }) else {
        return 1;
    };
    catch_unwind(AssertUnwindSafe(|| yes(h.map.unlink_map()))).unwrap_or(1)
}

/// unlink(2) a path.
///
/// # Safety
/// `path` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn dhms_unlink_path(path: *const c_char) -> c_int {
    if path.is_null() {
        return 1;
    }
    // SAFETY: per the contract.
    let p = unsafe { CStr::from_ptr(path) };
    if is_location(p) {
        let loc = p.to_string_lossy();
        return catch_unwind(|| yes(crate::remote::unlink(&loc))).unwrap_or(1);
    }
    unlink_cstr(p)
}

/// Run `f` on the handle's map inside `guard`.
///
/// # Safety
/// `m` is a valid handle used by this thread only.
unsafe fn with(m: *mut DhmsMap, f: impl FnOnce(&mut dyn AnyMap) -> Result<c_int>) -> c_int {
    guard(|| {
        // SAFETY: per the contract.
        let h = unsafe { arg_mut(m)? };
        let r = f(&mut *h.map);
        if h.map.truncated() {
            return Err(truncated_error(&*h.map));
        }
        r
    })
}

macro_rules! export {
    ($(#[$doc:meta])* fn $name:ident($m:ident $(, $a:ident: $t:ty)*) $body:block) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// `m` is a valid handle used by this thread only; pointer arguments
        /// are valid for the call (see `xs/dhms.h`).
        #[no_mangle]
        pub unsafe extern "C" fn $name(m: *mut DhmsMap $(, $a: $t)*) -> c_int {
            let f = |$m: &mut dyn AnyMap| -> Result<c_int> { $body };
            // SAFETY: forwarded contract.
            unsafe { with(m, f) }
        }
    };
}

export!(
    /// Insert or overwrite.
    fn dhms_put(map, k: *const CItem, v: *const CItem) {
        // SAFETY: valid for the call.
        st(map.put(&unsafe { item(k)? }, &unsafe { item(v)? }))
    }
);
export!(
    /// Lock-free lookup.
    fn dhms_get(map, k: *const CItem, out: *mut COut) {
        // SAFETY: valid for the call.
        st(map.get(&unsafe { item(k)? }, &mut *unsafe { out_arg(out)? }))
    }
);
export!(
    /// Lock-free presence test.
    fn dhms_exists(map, k: *const CItem) {
        // SAFETY: valid for the call.
        map.exists(&unsafe { item(k)? }).map(yes)
    }
);
export!(
    /// Remove a key.
    fn dhms_remove(map, k: *const CItem) {
        // SAFETY: valid for the call.
        st(map.remove(&unsafe { item(k)? }))
    }
);
export!(
    /// Remove a key and return its value.
    fn dhms_take(map, k: *const CItem, out: *mut COut) {
        // SAFETY: valid for the call.
        st(map.take(&unsafe { item(k)? }, &mut *unsafe { out_arg(out)? }))
    }
);
export!(
    /// The value, or store and return the default.
    fn dhms_get_or_set(map, k: *const CItem, d: *const CItem, out: *mut COut) {
        // SAFETY: valid for the call.
        st(map.get_or_set(&unsafe { item(k)? }, &unsafe { item(d)? }, &mut *unsafe { out_arg(out)? }))
    }
);
export!(
    /// Add to a counter.
    fn dhms_incr_by(map, k: *const CItem, delta: i64, result: *mut i64) {
        // SAFETY: valid for the call.
        st(map.incr_by(&unsafe { item(k)? }, delta, unsafe { arg_mut(result)? }))
    }
);
export!(
    /// Pre-size the table.
    fn dhms_reserve(map, n: u64) {
        map.reserve(n).map(yes)
    }
);
export!(
    /// Remove everything.
    fn dhms_clear(map) {
        map.clear().map(|_| 0)
    }
);
export!(
    /// The next entry of this handle's walk.
    fn dhms_each(map, k: *mut COut, v: *mut COut) {
        // SAFETY: valid for the call.
        st(map.each(&mut *unsafe { out_arg(k)? }, &mut *unsafe { out_arg(v)? }))
    }
);

fn yes(b: bool) -> c_int {
    if b {
        0
    } else {
        1
    }
}

export!(
    /// Insert or overwrite with this entry's own lifetime.
    fn dhms_put_ttl(map, k: *const CItem, v: *const CItem, secs: u64) {
        // SAFETY: valid for the call.
        st(map.put_ttl(&unsafe { item(k)? }, &unsafe { item(v)? }, secs))
    }
);
export!(
    /// Lock-free lookup with the seconds left.
    fn dhms_get_with_ttl(map, k: *const CItem, out: *mut COut, ttl: *mut i64) {
        // SAFETY: valid for the call.
        st(map.get_with_ttl(&unsafe { item(k)? }, &mut *unsafe { out_arg(out)? }, unsafe { arg_mut(ttl)? }))
    }
);
export!(
    /// Seconds left for a key.
    fn dhms_ttl_remaining(map, k: *const CItem, secs: *mut u64) {
        // SAFETY: valid for the call.
        let r = map.ttl_remaining(&unsafe { item(k)? })?;
        // SAFETY: valid for the call.
        let out = unsafe { arg_mut(secs)? };
        *out = r.unwrap_or(0);
        Ok(yes(r.is_some()))
    }
);
export!(
    /// Reset the lifetime, mark recently used.
    fn dhms_touch(map, k: *const CItem) {
        // SAFETY: valid for the call.
        map.touch(&unsafe { item(k)? }).map(yes)
    }
);
export!(
    /// Change a key's lifetime.
    fn dhms_set_ttl(map, k: *const CItem, secs: u64) {
        // SAFETY: valid for the call.
        map.set_ttl(&unsafe { item(k)? }, secs).map(yes)
    }
);
export!(
    /// Make a key permanent.
    fn dhms_persist(map, k: *const CItem) {
        // SAFETY: valid for the call.
        map.persist(&unsafe { item(k)? }).map(yes)
    }
);
export!(
    /// Remove expired entries, scanning up to `limit` slots (UINT64_MAX:
    /// a whole pass).
    fn dhms_flush_expired(map, limit: u64, removed: *mut u64, done: *mut c_int) {
        let (n, d) = map.flush_expired_partial(limit)?;
        // SAFETY: valid for the call.
        unsafe {
            *arg_mut(removed)? = n;
            *arg_mut(done)? = d as c_int;
        }
        Ok(0)
    }
);

/// The two words of a cursor position (`pos[2]` in `xs/dhms.h`).
///
/// # Safety
/// `p` is null or valid for reads and writes of two words for `'a`.
unsafe fn cursor_pos<'a>(p: *mut u64) -> Result<&'a mut [u64; 2]> {
    // SAFETY: per the contract.
    unsafe { arg_mut(p.cast::<[u64; 2]>()) }
}

/// The C encoding of a walk position: START and END are not hashes (a
/// meta hash has its two low bits clear).
const POS_START: u64 = u64::MAX;
const POS_END: u64 = u64::MAX - 1;

/// Optional lifetime: negative means "the map's default".
fn opt_ttl(ttl: i64) -> Option<u64> {
    (ttl >= 0).then_some(ttl as u64)
}

/// Build a slice from a C array (empty for n == 0).
///
/// # Safety
/// `p` is valid for `n` elements when `n > 0`.
unsafe fn slice<'a, T>(p: *const T, n: usize) -> Result<&'a [T]> {
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Error::new("null argument"));
    }
    // SAFETY: per the contract.
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

export!(
    /// Insert only if absent (ttl < 0: the map's default lifetime).
    fn dhms_add(map, k: *const CItem, v: *const CItem, ttl: i64) {
        // SAFETY: valid for the call.
        st(map.conditional(&unsafe { item(k)? }, &unsafe { item(v)? }, opt_ttl(ttl), false))
    }
);
export!(
    /// Overwrite only if present (ttl < 0: the map's default lifetime).
    fn dhms_update(map, k: *const CItem, v: *const CItem, ttl: i64) {
        // SAFETY: valid for the call.
        st(map.conditional(&unsafe { item(k)? }, &unsafe { item(v)? }, opt_ttl(ttl), true))
    }
);
export!(
    /// Store, returning the previous value.
    fn dhms_swap(map, k: *const CItem, v: *const CItem, out: *mut COut) {
        // SAFETY: valid for the call.
        st(map.swap(&unsafe { item(k)? }, &unsafe { item(v)? }, &mut *unsafe { out_arg(out)? }))
    }
);
export!(
    /// Compare and set.
    fn dhms_cas(map, k: *const CItem, expected: *const CItem, desired: *const CItem) {
        // SAFETY: valid for the call.
        st(map.cas(&unsafe { item(k)? }, &unsafe { item(expected)? }, &unsafe { item(desired)? }))
    }
);
export!(
    /// Compare and remove.
    fn dhms_cas_take(map, k: *const CItem, expected: *const CItem, out: *mut COut) {
        // SAFETY: valid for the call.
        st(map.cas_take(&unsafe { item(k)? }, &unsafe { item(expected)? }, &mut *unsafe { out_arg(out)? }))
    }
);
export!(
    /// max (want_max != 0) or min of the current value and d.
    fn dhms_extreme(map, k: *const CItem, d: i64, want_max: c_int, result: *mut i64) {
        // SAFETY: valid for the call.
        st(map.extreme(&unsafe { item(k)? }, d, want_max != 0, unsafe { arg_mut(result)? }))
    }
);
export!(
    /// Store n pairs (items[2i], items[2i+1]) under one lock.
    fn dhms_set_multi(map, items: *const CItem, n: usize, stored: *mut u64) {
        // SAFETY: valid for the call.
        let flat = unsafe { slice(items, n.checked_mul(2).ok_or_else(|| Error::new("too many items"))?)? };
        let mut pairs = Vec::with_capacity(n);
        for c in flat.chunks_exact(2) {
            // SAFETY: the items are valid for the call.
            pairs.push(unsafe { (c[0].view()?, c[1].view()?) });
        }
        let count = map.set_multi(&pairs)?;
        // SAFETY: valid for the call.
        unsafe { *arg_mut(stored)? = count };
        Ok(0)
    }
);
export!(
    /// Look up n keys under one lock.
    fn dhms_get_multi(map, keys: *const CItem, n: usize, out: *mut *mut DhmsSnapshot) {
        // SAFETY: valid for the call.
        let keys = unsafe { items(keys, n)? };
        let vals = map.get_multi(&keys)?;
        let snap = DhmsSnapshot(vals.into_iter().map(|v| (Entry::Int(0), v)).collect());
        // SAFETY: valid for the call.
        unsafe { *arg_mut(out)? = Box::into_raw(Box::new(snap)) };
        Ok(0)
    }
);
export!(
    /// Remove n keys under one lock.
    fn dhms_remove_multi(map, keys: *const CItem, n: usize, removed: *mut u64) {
        // SAFETY: valid for the call.
        let keys = unsafe { items(keys, n)? };
        let count = map.remove_multi(&keys)?;
        // SAFETY: valid for the call.
        unsafe { *arg_mut(removed)? = count };
        Ok(0)
    }
);
export!(
    /// Remove up to n entries from the oldest (newest != 0: newest) end.
    fn dhms_take_ends(map, n: u64, newest: c_int, out: *mut *mut DhmsSnapshot) {
        let end = if newest != 0 { End::Newest } else { End::Oldest };
        let v = map.take_ends(n, end)?;
        // SAFETY: valid for the call.
        unsafe { *arg_mut(out)? = DhmsSnapshot::boxed(v) };
        Ok(0)
    }
);
export!(
    /// One cursor step from *pos (POS_START at first; POS_END after the
    /// end, where it stays until reset).
    fn dhms_cursor_next(map, pos: *mut u64, k: *mut COut, v: *mut COut) {
        // SAFETY: valid for the call: pos[0] shard, pos[1] position.
        let pos = unsafe { cursor_pos(pos)? };
        if pos[1] == POS_END {
            return Ok(Status::False as c_int);
        }
        let mut p = CursorPos {
            shard: pos[0] as u32,
            after: (pos[1] != POS_START).then_some(pos[1]),
        };
        // SAFETY: valid for the call.
        let s = map.walk(&mut p, &mut *unsafe { out_arg(k)? }, &mut *unsafe { out_arg(v)? })?;
        pos[0] = p.shard as u64;
        pos[1] = match s {
            Status::False => POS_END,
            _ => p.after.unwrap_or(POS_START),
        };
        Ok(s as c_int)
    }
);
export!(
    /// Position *pos so that the next step returns k: DHMS_OK, or
    /// DHMS_FALSE (k missing; *pos unchanged).
    fn dhms_cursor_seek(map, k: *const CItem, pos: *mut u64) {
        // SAFETY: valid for the call.
        match map.seek(&unsafe { item(k)? })? {
            Some(p) => {
                // SAFETY: valid for the call: pos[0] shard, pos[1] position.
                let pos = unsafe { cursor_pos(pos)? };
                pos[0] = p.shard as u64;
                pos[1] = p.after.unwrap_or(POS_START);
                Ok(0)
            }
            None => Ok(1),
        }
    }
);

export!(
    /// Check the whole map: DHMS_OK, or DHMS_ERROR naming the first problem.
    fn dhms_verify(map) {
        map.verify().map(|_| 0)
    }
);

/// A diagnostic value (0 for an unknown key).
///
/// # Safety
/// `m` is a valid handle.
#[no_mangle]
pub unsafe extern "C" fn dhms_info(m: *const DhmsMap, which: c_int) -> u64 {
    // SAFETY: per the contract.
    let Some(h) = (unsafe { m.as_ref() }) else {
        return 0;
    };
    Info::from_i32(which).map_or(0, |w| h.map.info(w))
}

/// A diagnostic value, asking the server for a map on one: DHMS_OK with
/// the value in *out, or DHMS_ERROR (an unknown key gives 0).
///
/// # Safety
/// `m` is a valid handle used by this thread only; `out` a valid pointer.
#[no_mangle]
pub unsafe extern "C" fn dhms_info_try(m: *mut DhmsMap, which: c_int, out: *mut u64) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        with(m, |map| {
            let v = match Info::from_i32(which) {
                Some(w) => map.info_try(w)?,
                None => 0,
            };
            *arg_mut(out)? = v;
            Ok(0)
        })
    }
}

/// Forget what the engine keeps for a cursor position (call before the
/// position is reset or dropped). Never fails.
///
/// # Safety
/// `m` is a valid handle used by this thread only; `pos` points at 2 words.
#[no_mangle]
pub unsafe extern "C" fn dhms_cursor_release(m: *mut DhmsMap, pos: *const u64) {
    // SAFETY: per the contract.
    let (Some(h), false) = (unsafe { m.as_mut() }, pos.is_null()) else {
        return;
    };
    // SAFETY: per the contract: pos[0] shard, pos[1] position.
    let pos = unsafe { std::slice::from_raw_parts(pos, 2) };
    if pos[1] == POS_START || pos[1] == POS_END {
        return;
    }
    let p = CursorPos {
        shard: pos[0] as u32,
        after: Some(pos[1]),
    };
    let _ = catch_unwind(AssertUnwindSafe(|| h.map.cursor_release(p)));
}

/// Restart `each`.
///
/// # Safety
/// `m` is a valid handle.
#[no_mangle]
pub unsafe extern "C" fn dhms_iter_reset(m: *mut DhmsMap) {
    // SAFETY: per the contract.
    if let Some(h) = unsafe { m.as_mut() } {
        h.map.iter_reset();
    }
}

/// Copy every live entry under the writer lock.
///
/// # Safety
/// `m` is a valid handle; `out` a valid pointer.
#[no_mangle]
pub unsafe extern "C" fn dhms_snapshot_take(m: *mut DhmsMap, out: *mut *mut DhmsSnapshot) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        with(m, |map| {
            let v = map.snapshot()?;
            *arg_mut(out)? = DhmsSnapshot::boxed(v);
            Ok(0)
        })
    }
}

/// Number of entries in a snapshot.
///
/// # Safety
/// `s` is a snapshot from `dhms_snapshot_take`.
#[no_mangle]
pub unsafe extern "C" fn dhms_snapshot_len(s: *const DhmsSnapshot) -> usize {
    // SAFETY: per the contract.
    unsafe { s.as_ref() }.map_or(0, |s| s.0.len())
}

fn view(e: &Entry, out: &mut CItem) {
    *out = match e {
        Entry::Int(n) => CItem {
            ptr: std::ptr::null(),
            len: 0,
            num: *n,
            utf8: 0,
        },
        Entry::Bytes(b, u) => CItem {
            ptr: b.as_ptr(),
            len: b.len(),
            num: 0,
            utf8: *u as u32,
        },
    };
}

/// Views of entry `i` of a snapshot: `DHMS_OK`, or `DHMS_FALSE` if its
/// value is missing (get_multi) or `i` is out of range.
///
/// # Safety
/// `s` is a snapshot; `k`, `v` valid pointers.
#[no_mangle]
pub unsafe extern "C" fn dhms_snapshot_entry(
    s: *const DhmsSnapshot,
    i: usize,
    k: *mut CItem,
    v: *mut CItem,
) -> c_int {
    // SAFETY: per the contract.
    let (Some(s), Some(k), Some(v)) = (unsafe { s.as_ref() }, unsafe { k.as_mut() }, unsafe {
        v.as_mut()
    }) else {
        return 1;
    };
    match s.0.get(i) {
        Some((ek, Some(ev))) => {
            view(ek, k);
            view(ev, v);
            0
        }
        Some((ek, None)) => {
            view(ek, k);
            1
        }
        None => 1,
    }
}

/// Free a snapshot.
///
/// # Safety
/// `s` is null or a snapshot not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn dhms_snapshot_free(s: *mut DhmsSnapshot) {
    if !s.is_null() {
        // SAFETY: per the contract, we own it now.
        drop(unsafe { Box::from_raw(s) });
    }
}

export!(
    /// Seal the map (file-backed maps; durable).
    fn dhms_freeze(map) {
        map.freeze().map(|_| 0)
    }
);
export!(
    /// Set the handle's wait timeout in seconds (fractions allowed; above
    /// 0, at most one day).
    fn dhms_set_wait_timeout(map, secs: f64) {
        map.set_wait_timeout(crate::raw::types::wait_timeout_from_secs(secs)?)
            .map(|_| 0)
    }
);

/// The handle's wait timeout in seconds.
///
/// # Safety
/// `m` is a valid handle.
#[no_mangle]
pub unsafe extern "C" fn dhms_wait_timeout(m: *const DhmsMap) -> f64 {
    // SAFETY: per the contract.
    unsafe { m.as_ref() }.map_or(0.0, |h| h.map.wait_timeout().as_secs_f64())
}

export!(
    /// msync the whole map (every shard).
    fn dhms_sync(map) {
        map.sync().map(|_| 0)
    }
);
