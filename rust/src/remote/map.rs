//! `Remote`: one map on a Redis or Valkey server (see `DESIGN.md`, "More
//! than one host"). Four keys share the hash tag `{MAP}`, so that every
//! script touches one Cluster slot:
//!
//! * `dhms:{MAP}:meta` — hash: magic, format, variant, max_entries, ttl,
//!   the `expired` counter, the shard claim;
//! * `dhms:{MAP}:data` — hash: key -> value (integers as decimal strings;
//!   byte strings behind one flag byte, `'1'` when the UTF-8 flag is on);
//! * `dhms:{MAP}:exp`  — sorted set: key -> deadline in milliseconds of
//!   the server's clock (TTL maps; permanent entries are absent);
//! * `dhms:{MAP}:utf8` — hash: the string keys whose UTF-8 flag is on.
//!
//! The connection is made lazily and remembered with the process id: a
//! forked child never uses its parent's socket, it opens its own.

use super::location::Location;
use crate::dynmap::{AnyMap, CursorPos};
use crate::error::{Error, Result};
use crate::map::End;
use crate::raw::codec::{Codec, I16, I32};
use crate::raw::types::{Entry, Info, Item, Out, Params, Status, Variant};
use redis::{Cmd, Connection, RedisError, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::OnceLock;

/// The server-side format version (meta field `format`).
const FORMAT: &str = "1";
/// Entries asked of one HSCAN step.
const SCAN_COUNT: &str = "512";

macro_rules! scripts {
    ($($id:ident = $file:literal),* $(,)?) => {
        #[derive(Clone, Copy)]
        #[allow(clippy::upper_case_acronyms)]
        enum S { $($id),* }
        const SOURCES: &[(&str, &str)] = &[
            $(($file, concat!(include_str!("scripts/prelude.lua"),
                              include_str!(concat!("scripts/", $file, ".lua"))))),*
        ];
    };
}

scripts!(
    Store = "store",
    Get = "get",
    Remove = "remove",
    GetOrSet = "get_or_set",
    Counter = "counter",
    Swap = "swap",
    Cas = "cas",
    Ttl = "ttl",
    Flush = "flush",
    Size = "size",
    SetMulti = "set_multi",
    GetMulti = "get_multi",
    RemoveMulti = "remove_multi",
    TakeEnds = "take_ends",
    Scan = "scan",
    Snapshot = "snapshot",
    Open = "open",
    Shard = "shard",
    Verify = "verify",
);

/// The SHA1 of each script (what EVALSHA names).
fn shas() -> &'static [String] {
    static SHAS: OnceLock<Vec<String>> = OnceLock::new();
    SHAS.get_or_init(|| {
        SOURCES
            .iter()
            .map(|(_, src)| redis::Script::new(src).get_hash().to_string())
            .collect()
    })
}

/// One entry read from the server: key bytes, key UTF-8 flag, raw value.
type Raw = (Vec<u8>, bool, Vec<u8>);

/// A walk over the map (each, cursors): HSCAN steps, de-duplicated.
#[derive(Default)]
struct Walk {
    /// The HSCAN cursor of the next step ("0" at first).
    scan: Vec<u8>,
    started: bool,
    done: bool,
    buf: VecDeque<Raw>,
    /// Keys already returned: HSCAN may return an entry more than once.
    seen: HashSet<Vec<u8>>,
}

/// A result that did not fit the caller's buffer: kept for the retry with
/// a bigger one (the operation has happened; it must not run twice).
struct Pending {
    op: u8,
    key: Vec<u8>,
    status: Status,
    raw: Vec<u8>,
    ttl: i64,
}

/// A map on a server.
pub struct Remote {
    loc: Location,
    client: redis::Client,
    con: Option<Connection>,
    pid: u32,
    /// The metadata was read once: a reconnect checks it again (and
    /// re-creates it after a server restart that lost the data).
    attached: bool,
    variant: Variant,
    kb: bool,
    vb: bool,
    /// Value range of a 16- or 32-bit variant (None: int64 or bytes).
    vrange: Option<(i64, i64)>,
    max: u64,
    ttl: u64,
    keys: [String; 4],
    each: Option<Walk>,
    cursors: HashMap<u64, Walk>,
    next_cursor: u64,
    pending: Option<Pending>,
    /// The location as given (what `path` returns).
    raw_path: String,
}

fn is_bytes_key(v: Variant) -> bool {
    matches!(v, Variant::SI16 | Variant::SI32 | Variant::SI | Variant::SS)
}
fn is_bytes_val(v: Variant) -> bool {
    matches!(v, Variant::I16S | Variant::I32S | Variant::IS | Variant::SS)
}
fn val_range(v: Variant) -> Option<(i64, i64)> {
    match v {
        Variant::I16 | Variant::SI16 => Some((I16::min(), I16::max())),
        Variant::I32 | Variant::SI32 => Some((I32::min(), I32::max())),
        _ => None,
    }
}
fn key_bits(v: Variant) -> Option<(i64, i64, &'static str)> {
    match v {
        Variant::I16 | Variant::I16S => Some((I16::min(), I16::max(), I16::NAME)),
        Variant::I32 | Variant::I32S => Some((I32::min(), I32::max(), I32::NAME)),
        _ => None,
    }
}
fn val_name(v: Variant) -> &'static str {
    match val_range(v) {
        Some((_, m)) if m == I16::max() => I16::NAME,
        Some(_) => I32::NAME,
        None => "int64",
    }
}

fn bulk(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        Value::Okay => Some(b"OK".to_vec()),
        Value::Int(n) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}

fn array(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        _ => Vec::new(),
    }
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

/// `out` <- bytes; `Status::Small` (with the size needed) if they do not fit.
fn emit_bytes(out: &mut Out, b: &[u8], utf8: bool) -> Status {
    out.write(b, utf8)
}

fn worse(a: Status, b: Status) -> Status {
    if a == Status::Small || b == Status::Small {
        Status::Small
    } else {
        Status::Ok
    }
}

const OP_GET: u8 = 1;
const OP_TAKE: u8 = 2;
const OP_GET_OR_SET: u8 = 3;
const OP_SWAP: u8 = 4;
const OP_CAS_TAKE: u8 = 5;
const OP_GET_TTL: u8 = 6;

impl Remote {
    /// Connect to `loc` and create or attach the map.
    pub fn open(loc: &str, variant: Variant, p: &Params) -> Result<Remote> {
        let l = Location::parse(loc)?;
        if l.tls {
            return Err(Error::new(format!(
                "{}: TLS support not built: this build's Redis client has no TLS (rediss://); \
                 use redis:// on a trusted network or through a TLS tunnel",
                l.shown
            )));
        }
        if p.max_size > 0 {
            return Err(Error::new(format!(
                "{}: max_size (LRU eviction per map) cannot be held on a server, where \
                 eviction is server-wide: give entries a TTL (the 4th argument of new) or \
                 set the server's maxmemory-policy, and pass max_size 0",
                l.shown
            )));
        }
        if p.arena_cap > 0 {
            return Err(Error::new(format!(
                "{}: arena_cap cannot be held on a server: limit the server's memory with \
                 its maxmemory setting, and pass arena_cap 0",
                l.shown
            )));
        }
        let client = redis::Client::open(l.url.as_str()).map_err(|e| {
            Error::new(format!(
                "{}: not a usable location: {}",
                l.shown,
                l.scrub(&e.to_string())
            ))
        })?;
        let tag = format!("dhms:{{{}}}", l.map);
        let mut m = Remote {
            keys: [
                format!("{tag}:meta"),
                format!("{tag}:data"),
                format!("{tag}:exp"),
                format!("{tag}:utf8"),
            ],
            loc: l,
            client,
            con: None,
            pid: std::process::id(),
            attached: false,
            variant,
            kb: is_bytes_key(variant),
            vb: is_bytes_val(variant),
            vrange: val_range(variant),
            max: p.max_entries,
            ttl: p.ttl,
            each: None,
            cursors: HashMap::new(),
            next_cursor: 1,
            pending: None,
            raw_path: loc.to_string(),
        };
        m.attach()?;
        Ok(m)
    }

    /// Create the metadata, or read and check it.
    fn attach(&mut self) -> Result<()> {
        let (max, ttl) = (self.max.to_string(), self.ttl.to_string());
        let args: [&[u8]; 4] = [
            self.variant.name().as_bytes(),
            max.as_bytes(),
            ttl.as_bytes(),
            FORMAT.as_bytes(),
        ];
        let r = self.eval(S::Open, &args)?;
        let f: Vec<Option<Vec<u8>>> = array(r).into_iter().map(bulk).collect();
        let text = |i: usize| {
            f.get(i)
                .cloned()
                .flatten()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        if f.len() != 5 {
            return Err(Error::new(format!(
                "{}: not a Data::HashMap::Shared map (the key {} holds something else)",
                self.loc.shown, self.keys[0]
            )));
        }
        if text(1) != FORMAT {
            return Err(Error::new(format!(
                "{}: unsupported format version {} on the server (this module reads {FORMAT})",
                self.loc.shown,
                text(1)
            )));
        }
        if text(2) != self.variant.name() {
            return Err(Error::new(format!(
                "{}: variant mismatch: map is {}, opened as {}",
                self.loc.shown,
                text(2),
                self.variant.name()
            )));
        }
        let (max, ttl) = (text(3).parse::<u64>(), text(4).parse::<u64>());
        match (max, ttl) {
            (Ok(max), Ok(ttl)) if (1..=u32::MAX as u64).contains(&max) => {
                self.max = max;
                self.ttl = ttl;
            }
            _ => {
                return Err(Error::new(format!(
                    "{}: corrupt metadata on the server (max_entries '{}', ttl '{}')",
                    self.loc.shown,
                    text(3),
                    text(4)
                )))
            }
        }
        self.attached = true;
        Ok(())
    }

    // ---- the connection -------------------------------------------------

    /// A connection of this process: a forked child opens its own.
    /// Returns true if the connection was already open.
    fn ensure(&mut self) -> Result<bool> {
        let pid = std::process::id();
        if self.pid != pid {
            // the parent's socket: never written to from here
            self.con = None;
            self.pid = pid;
            self.each = None;
        }
        if self.con.is_some() {
            return Ok(true);
        }
        let c = self
            .client
            .get_connection_with_timeout(self.loc.connect_timeout)
            .map_err(|e| self.fail("cannot connect", &e))?;
        c.set_read_timeout(Some(self.loc.timeout))
            .and_then(|_| c.set_write_timeout(Some(self.loc.timeout)))
            .map_err(|e| self.fail("cannot set the timeouts", &e))?;
        self.con = Some(c);
        if self.attached {
            // after a restart the server may have lost the metadata
            self.attached = false;
            if let Err(e) = self.attach() {
                self.con = None;
                return Err(e);
            }
        }
        Ok(false)
    }

    /// The error for a failed request, naming the location, never the password.
    fn fail(&self, what: &str, e: &RedisError) -> Error {
        let why = if e.is_timeout() {
            format!(
                "no reply within the timeout ({}s; set it with ?timeout=SECONDS in the location): {e}",
                self.loc.timeout.as_secs_f64()
            )
        } else if e.is_connection_refusal() {
            format!("server unreachable: {e}")
        } else if e.is_connection_dropped() || e.is_io_error() {
            format!("connection lost (server down or restarted?): {e}")
        } else {
            e.to_string()
        };
        Error::new(format!(
            "{}: {what}: {}",
            self.loc.shown,
            self.loc.scrub(&why)
        ))
    }

    /// Send one command. `idempotent`: a read, which is sent again once if
    /// a connection that had been idle turns out to be broken.
    fn exec(&mut self, cmd: &Cmd, idempotent: bool) -> Result<Value> {
        self.exec_with(idempotent, |con| cmd.query::<Value>(con))
    }

    /// Send a request (one command or a pipeline) as [`Remote::exec`] does.
    fn exec_with(
        &mut self,
        idempotent: bool,
        send: impl Fn(&mut Connection) -> redis::RedisResult<Value>,
    ) -> Result<Value> {
        self.pending = None;
        let mut retried = false;
        loop {
            let reused = self.ensure()?;
            let con = self.con.as_mut().expect("connected");
            match send(con) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let server_said = e.code().is_some();
                    if !server_said {
                        // the stream may hold a late reply: never reuse it
                        self.con = None;
                    }
                    if idempotent && reused && !retried && e.is_connection_dropped() {
                        retried = true;
                        continue;
                    }
                    if e.code() == Some("NOSCRIPT") {
                        return Err(Error::new("NOSCRIPT".to_string()));
                    }
                    return Err(self.fail("request failed", &e));
                }
            }
        }
    }

    /// Run a script (loading it first if the server does not have it).
    fn eval(&mut self, s: S, args: &[&[u8]]) -> Result<Value> {
        let idempotent = matches!(
            s,
            S::Get | S::Size | S::GetMulti | S::Scan | S::Snapshot | S::Verify
        );
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&shas()[s as usize]).arg(4);
        for k in &self.keys {
            cmd.arg(k.as_bytes());
        }
        cmd.arg(self.ttl)
            .arg(self.max)
            .arg(if self.kb { "1" } else { "0" })
            .arg(if self.vb { "1" } else { "0" });
        for a in args {
            cmd.arg(*a);
        }
        match self.exec(&cmd, idempotent) {
            Err(e) if e.0 == "NOSCRIPT" => {
                // not run: load it and send again
                let mut load = redis::cmd("SCRIPT");
                load.arg("LOAD").arg(SOURCES[s as usize].1);
                self.exec(&load, true)?;
                match self.exec(&cmd, idempotent) {
                    Err(e) if e.0 == "NOSCRIPT" => Err(Error::new(format!(
                        "{}: the server refuses to keep the script '{}' (NOSCRIPT after SCRIPT LOAD)",
                        self.loc.shown, SOURCES[s as usize].0
                    ))),
                    r => r,
                }
            }
            r => r,
        }
    }

    fn corrupt(&self, what: &str) -> Error {
        Error::new(format!(
            "{}: unexpected data on the server: {what}",
            self.loc.shown
        ))
    }

    // ---- encoding -----------------------------------------------------------

    fn key(&self, k: &Item) -> Result<Vec<u8>> {
        if self.kb {
            return Ok(k.as_bytes().to_vec());
        }
        if let Some((lo, hi, name)) = key_bits(self.variant) {
            if k.num < lo || k.num > hi {
                return Err(Error::new(format!("{} does not fit {name}", k.num)));
            }
        }
        Ok(k.num.to_string().into_bytes())
    }

    fn kflag(&self, k: &Item) -> &'static [u8] {
        if self.kb && k.utf8 != 0 {
            b"1"
        } else {
            b"0"
        }
    }

    fn val(&self, v: &Item) -> Result<Vec<u8>> {
        if self.vb {
            let b = v.as_bytes();
            let mut out = Vec::with_capacity(b.len() + 1);
            out.push(if v.utf8 != 0 { b'1' } else { b'0' });
            out.extend_from_slice(b);
            return Ok(out);
        }
        self.num_ok(v.num)?;
        Ok(v.num.to_string().into_bytes())
    }

    fn num_ok(&self, n: i64) -> Result<()> {
        match self.vrange {
            Some((lo, hi)) if n < lo || n > hi => Err(Error::new(format!(
                "{n} does not fit {}",
                val_name(self.variant)
            ))),
            _ => Ok(()),
        }
    }

    /// The compared form of an expected value: bytes without the flag, or
    /// the number.
    fn expected(&self, v: &Item) -> Vec<u8> {
        if self.vb {
            v.as_bytes().to_vec()
        } else {
            v.num.to_string().into_bytes()
        }
    }

    fn parse_num(&self, raw: &[u8]) -> Result<i64> {
        std::str::from_utf8(raw)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| self.corrupt("an integer value is not a number"))
    }

    fn emit_val(&self, raw: &[u8], out: &mut Out) -> Result<Status> {
        if self.vb {
            let (f, b) = raw
                .split_first()
                .ok_or_else(|| self.corrupt("a string value without its flag byte"))?;
            Ok(emit_bytes(out, b, *f == b'1'))
        } else {
            out.num = self.parse_num(raw)?;
            Ok(Status::Ok)
        }
    }

    fn emit_key(&self, raw: &[u8], utf8: bool, out: &mut Out) -> Result<Status> {
        if self.kb {
            Ok(emit_bytes(out, raw, utf8))
        } else {
            out.num = self.parse_num(raw)?;
            Ok(Status::Ok)
        }
    }

    fn entry_key(&self, raw: Vec<u8>, utf8: bool) -> Result<Entry> {
        if self.kb {
            Ok(Entry::Bytes(raw, utf8))
        } else {
            Ok(Entry::Int(self.parse_num(&raw)?))
        }
    }

    fn entry_val(&self, mut raw: Vec<u8>) -> Result<Entry> {
        if self.vb {
            if raw.is_empty() {
                return Err(self.corrupt("a string value without its flag byte"));
            }
            let f = raw.remove(0) == b'1';
            Ok(Entry::Bytes(raw, f))
        } else {
            Ok(Entry::Int(self.parse_num(&raw)?))
        }
    }

    /// Deliver a value read from the server into `out`; if it does not
    /// fit, keep it for the caller's retry (see [`Pending`]).
    fn deliver(
        &mut self,
        op: u8,
        key: &[u8],
        raw: Vec<u8>,
        out: &mut Out,
        ttl: i64,
    ) -> Result<Status> {
        let st = self.emit_val(&raw, out)?;
        if st == Status::Small {
            self.pending = Some(Pending {
                op,
                key: key.to_vec(),
                status: Status::Ok,
                raw,
                ttl,
            });
        }
        Ok(st)
    }

    /// The kept result of the call being retried with a bigger buffer.
    fn retry(
        &mut self,
        op: u8,
        key: &[u8],
        out: &mut Out,
        ttl: Option<&mut i64>,
    ) -> Result<Option<Status>> {
        match &self.pending {
            Some(p) if p.op == op && p.key == key => {}
            _ => return Ok(None),
        }
        let p = self.pending.take().expect("checked");
        if let Some(t) = ttl {
            *t = p.ttl;
        }
        let st = self.deliver(op, key, p.raw, out, p.ttl)?;
        Ok(Some(if st == Status::Ok { p.status } else { st }))
    }

    fn need_ttl(&self, op: &str) -> Result<()> {
        if self.ttl > 0 {
            Ok(())
        } else {
            Err(Error::new(format!(
                "{op} needs a map created with a TTL (the 4th argument of new, in seconds); \
                 this map has none: use put, or create the map with a default TTL"
            )))
        }
    }

    fn status(&self, v: &Value) -> Result<Status> {
        match as_int(v) {
            Some(0) => Ok(Status::Ok),
            Some(1) => Ok(Status::False),
            Some(2) => Ok(Status::Full),
            Some(3) => Ok(Status::Range),
            _ => Err(self.corrupt("a script returned an unexpected reply")),
        }
    }

    fn store(&mut self, k: &Item, v: &Item, own: Option<u64>, mode: &str) -> Result<Status> {
        let (key, val) = (self.key(k)?, self.val(v)?);
        let own = own.map(|s| s.to_string()).unwrap_or_default();
        let r = self.eval(
            S::Store,
            &[&key, &val, self.kflag(k), own.as_bytes(), mode.as_bytes()],
        )?;
        self.status(&r)
    }

    /// Read a key's raw value (and seconds left when `with_ttl`).
    fn read(&mut self, key: &[u8], with_ttl: bool) -> Result<Option<(Vec<u8>, i64)>> {
        if self.ttl == 0 {
            let mut c = redis::cmd("HGET");
            c.arg(&self.keys[1]).arg(key);
            let v = self.exec(&c, true)?;
            return Ok(bulk(v).map(|b| (b, if with_ttl { -1 } else { 0 })));
        }
        let r = self.eval(S::Get, &[key, if with_ttl { b"1" } else { b"0" }])?;
        if with_ttl {
            let mut a = array(r).into_iter();
            match (a.next().and_then(bulk), a.next().and_then(|v| as_int(&v))) {
                (Some(v), Some(t)) => Ok(Some((v, t))),
                _ => Ok(None),
            }
        } else {
            Ok(bulk(r).map(|b| (b, 0)))
        }
    }

    fn counter(&mut self, k: &Item, d: i64, op: &str, result: &mut i64) -> Result<Status> {
        let key = self.key(k)?;
        if op != "incr" {
            self.num_ok(d)?;
        }
        let (lo, hi) = match self.vrange {
            Some((lo, hi)) => (lo.to_string(), hi.to_string()),
            None => (String::new(), String::new()),
        };
        let r = self.eval(
            S::Counter,
            &[
                &key,
                d.to_string().as_bytes(),
                self.kflag(k),
                op.as_bytes(),
                lo.as_bytes(),
                hi.as_bytes(),
            ],
        )?;
        let a = array(r);
        let st = self.status(a.first().unwrap_or(&Value::Nil))?;
        if st == Status::Ok {
            let v = a
                .into_iter()
                .nth(1)
                .and_then(bulk)
                .ok_or_else(|| self.corrupt("a counter without its value"))?;
            *result = self.parse_num(&v)?;
        }
        Ok(st)
    }

    /// get_or_set and swap: a script that stores `v` and replies
    /// `{status, value}`; the value goes to `out` when the status is Ok.
    fn write_returning(
        &mut self,
        op: u8,
        s: S,
        k: &Item,
        v: &Item,
        out: &mut Out,
    ) -> Result<Status> {
        let key = self.key(k)?;
        if let Some(st) = self.retry(op, &key, out, None)? {
            return Ok(st);
        }
        let val = self.val(v)?;
        let r = self.eval(s, &[&key, &val, self.kflag(k)])?;
        let mut a = array(r).into_iter();
        let st = self.status(&a.next().unwrap_or(Value::Nil))?;
        if st != Status::Ok {
            return Ok(st);
        }
        let raw = a
            .next()
            .and_then(bulk)
            .ok_or_else(|| self.corrupt("a write without the value it returns"))?;
        self.deliver(op, &key, raw, out, 0)
    }

    /// touch / set_ttl / persist: false if missing or the map has no TTL.
    fn lifetime(&mut self, k: &Item, op: &str, secs: u64) -> Result<bool> {
        let key = self.key(k)?;
        if self.ttl == 0 {
            return Ok(false);
        }
        let secs = secs.to_string();
        let r = self.eval(S::Ttl, &[&key, op.as_bytes(), secs.as_bytes()])?;
        Ok(self.status(&r)? == Status::Ok)
    }

    fn triples(&self, r: Value) -> Result<Vec<Raw>> {
        let a = array(r);
        let mut out = Vec::with_capacity(a.len() / 3);
        let mut it = a.into_iter();
        while let (Some(k), Some(f), Some(v)) = (it.next(), it.next(), it.next()) {
            let (Some(k), Some(f), Some(v)) = (bulk(k), bulk(f), bulk(v)) else {
                return Err(self.corrupt("a malformed entry list"));
            };
            out.push((k, f == b"1", v));
        }
        Ok(out)
    }

    fn entries(&self, raws: Vec<Raw>) -> Result<Vec<(Entry, Entry)>> {
        raws.into_iter()
            .map(|(k, f, v)| Ok((self.entry_key(k, f)?, self.entry_val(v)?)))
            .collect()
    }

    /// One step of a walk.
    fn step(&mut self, w: &mut Walk, k: &mut Out, v: &mut Out) -> Result<Status> {
        loop {
            if let Some((key, f, raw)) = w.buf.front() {
                if w.seen.contains(key) {
                    w.buf.pop_front();
                    continue;
                }
                let a = self.emit_key(key, *f, k)?;
                let b = self.emit_val(raw, v)?;
                let st = worse(a, b);
                if st == Status::Small {
                    return Ok(st);
                }
                let (key, _, _) = w.buf.pop_front().expect("checked");
                w.seen.insert(key);
                return Ok(Status::Ok);
            }
            if w.done {
                return Ok(Status::False);
            }
            if !w.started {
                w.scan = b"0".to_vec();
                w.started = true;
            }
            let scan = w.scan.clone();
            let r = self.eval(S::Scan, &[&scan, SCAN_COUNT.as_bytes()])?;
            let mut a = array(r);
            if a.is_empty() {
                return Err(self.corrupt("a malformed HSCAN reply"));
            }
            let next = bulk(a.remove(0)).ok_or_else(|| self.corrupt("a malformed HSCAN cursor"))?;
            w.done = next == b"0";
            w.scan = next;
            w.buf.extend(self.triples(Value::Array(a))?);
        }
    }

    fn info_now(&mut self, which: Info) -> Result<u64> {
        Ok(match which {
            Info::Size => {
                if self.ttl == 0 {
                    let mut c = redis::cmd("HLEN");
                    c.arg(&self.keys[1]);
                    let v = self.exec(&c, true)?;
                    as_int(&v).unwrap_or(0) as u64
                } else {
                    let v = self.eval(S::Size, &[])?;
                    as_int(&v).unwrap_or(0).max(0) as u64
                }
            }
            Info::StatExpired => {
                let mut c = redis::cmd("HGET");
                c.arg(&self.keys[0]).arg("expired");
                let v = self.exec(&c, true)?;
                as_int(&v).unwrap_or(0).max(0) as u64
            }
            Info::MmapSize => {
                // what the map's keys take on the server
                let mut p = redis::pipe();
                for k in &self.keys {
                    p.cmd("MEMORY").arg("USAGE").arg(k);
                }
                let v = self.exec_with(true, |con| p.query::<Value>(con))?;
                array(v)
                    .iter()
                    .filter_map(as_int)
                    .map(|n| n.max(0) as u64)
                    .sum()
            }
            w => self.info(w),
        })
    }
}

impl AnyMap for Remote {
    fn put(&mut self, k: &Item, v: &Item) -> Result<Status> {
        self.store(k, v, None, "put")
    }
    fn get(&mut self, k: &Item, out: &mut Out) -> Result<Status> {
        let key = self.key(k)?;
        if let Some(st) = self.retry(OP_GET, &key, out, None)? {
            return Ok(st);
        }
        match self.read(&key, false)? {
            Some((raw, _)) => self.deliver(OP_GET, &key, raw, out, 0),
            None => Ok(Status::False),
        }
    }
    fn exists(&mut self, k: &Item) -> Result<bool> {
        let key = self.key(k)?;
        if self.ttl == 0 {
            let mut c = redis::cmd("HEXISTS");
            c.arg(&self.keys[1]).arg(&key);
            let v = self.exec(&c, true)?;
            return Ok(as_int(&v) == Some(1));
        }
        Ok(self.read(&key, false)?.is_some())
    }
    fn remove(&mut self, k: &Item) -> Result<Status> {
        let key = self.key(k)?;
        let r = self.eval(S::Remove, &[&key, b"0", b""])?;
        Ok(if bulk(r).is_some() {
            Status::Ok
        } else {
            Status::False
        })
    }
    fn take(&mut self, k: &Item, out: &mut Out) -> Result<Status> {
        let key = self.key(k)?;
        if let Some(st) = self.retry(OP_TAKE, &key, out, None)? {
            return Ok(st);
        }
        match bulk(self.eval(S::Remove, &[&key, b"0", b""])?) {
            Some(raw) => self.deliver(OP_TAKE, &key, raw, out, 0),
            None => Ok(Status::False),
        }
    }
    fn get_or_set(&mut self, k: &Item, d: &Item, out: &mut Out) -> Result<Status> {
        self.write_returning(OP_GET_OR_SET, S::GetOrSet, k, d, out)
    }
    fn incr_by(&mut self, k: &Item, delta: i64, result: &mut i64) -> Result<Status> {
        if self.vb {
            return Err(Error::new(
                "counters need an integer-value variant; this map's values are strings",
            ));
        }
        self.counter(k, delta, "incr", result)
    }
    fn each(&mut self, k: &mut Out, v: &mut Out) -> Result<Status> {
        if self.pid != std::process::id() {
            self.each = None;
        }
        let mut w = self.each.take().unwrap_or_default();
        let r = self.step(&mut w, k, v);
        match r {
            Ok(Status::False) => {}
            Ok(_) => self.each = Some(w),
            Err(e) => {
                self.each = Some(w);
                return Err(e);
            }
        }
        r
    }
    fn put_ttl(&mut self, k: &Item, v: &Item, secs: u64) -> Result<Status> {
        self.need_ttl("put_ttl")?;
        self.store(k, v, Some(secs), "put")
    }
    fn get_with_ttl(&mut self, k: &Item, out: &mut Out, ttl: &mut i64) -> Result<Status> {
        let key = self.key(k)?;
        if let Some(st) = self.retry(OP_GET_TTL, &key, out, Some(ttl))? {
            return Ok(st);
        }
        match self.read(&key, true)? {
            Some((raw, t)) => {
                *ttl = t;
                self.deliver(OP_GET_TTL, &key, raw, out, t)
            }
            None => Ok(Status::False),
        }
    }
    fn ttl_remaining(&mut self, k: &Item) -> Result<Option<u64>> {
        if self.ttl == 0 {
            return Ok(None);
        }
        let key = self.key(k)?;
        Ok(self.read(&key, true)?.map(|(_, t)| t.max(0) as u64))
    }
    fn touch(&mut self, k: &Item) -> Result<bool> {
        self.lifetime(k, "touch", 0)
    }
    fn set_ttl(&mut self, k: &Item, secs: u64) -> Result<bool> {
        self.lifetime(k, "set", secs)
    }
    fn persist(&mut self, k: &Item) -> Result<bool> {
        self.lifetime(k, "persist", 0)
    }
    fn flush_expired_partial(&mut self, limit: u64) -> Result<(u64, bool)> {
        if self.ttl == 0 {
            return Ok((0, true));
        }
        let limit = limit.clamp(1, 1 << 40);
        let r = self.eval(S::Flush, &[limit.to_string().as_bytes()])?;
        let a = array(r);
        match (a.first().and_then(as_int), a.get(1).and_then(as_int)) {
            (Some(n), Some(d)) => Ok((n.max(0) as u64, d == 1)),
            _ => Err(self.corrupt("a malformed flush reply")),
        }
    }
    fn conditional(
        &mut self,
        k: &Item,
        v: &Item,
        ttl: Option<u64>,
        present: bool,
    ) -> Result<Status> {
        let mode = if present { "update" } else { "add" };
        if ttl.is_some() {
            self.need_ttl(if present { "update_ttl" } else { "add_ttl" })?;
        }
        self.store(k, v, ttl, mode)
    }
    fn swap(&mut self, k: &Item, v: &Item, out: &mut Out) -> Result<Status> {
        self.write_returning(OP_SWAP, S::Swap, k, v, out)
    }
    fn cas(&mut self, k: &Item, expected: &Item, desired: &Item) -> Result<Status> {
        let key = self.key(k)?;
        let (e, d) = (self.expected(expected), self.val(desired)?);
        let r = self.eval(S::Cas, &[&key, &e, &d])?;
        self.status(&r)
    }
    fn cas_take(&mut self, k: &Item, expected: &Item, out: &mut Out) -> Result<Status> {
        let key = self.key(k)?;
        if let Some(st) = self.retry(OP_CAS_TAKE, &key, out, None)? {
            return Ok(st);
        }
        let e = self.expected(expected);
        match bulk(self.eval(S::Remove, &[&key, b"1", &e])?) {
            Some(raw) => self.deliver(OP_CAS_TAKE, &key, raw, out, 0),
            None => Ok(Status::False),
        }
    }
    fn extreme(&mut self, k: &Item, d: i64, want_max: bool, result: &mut i64) -> Result<Status> {
        if self.vb {
            return Err(Error::new(
                "max and min need an integer-value variant; this map's values are strings",
            ));
        }
        self.counter(k, d, if want_max { "max" } else { "min" }, result)
    }
    fn set_multi(&mut self, pairs: &[(Item, Item)]) -> Result<u64> {
        if pairs.is_empty() {
            return Ok(0);
        }
        let mut owned = Vec::with_capacity(pairs.len() * 3);
        for (k, v) in pairs {
            owned.push(self.key(k)?);
            owned.push(self.val(v)?);
            owned.push(self.kflag(k).to_vec());
        }
        let args: Vec<&[u8]> = owned.iter().map(|a| a.as_slice()).collect();
        let r = self.eval(S::SetMulti, &args)?;
        Ok(as_int(&r).unwrap_or(0).max(0) as u64)
    }
    fn get_multi(&mut self, keys: &[Item]) -> Result<Vec<Option<Entry>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let owned = keys
            .iter()
            .map(|k| self.key(k))
            .collect::<Result<Vec<_>>>()?;
        let r = if self.ttl == 0 {
            let mut c = redis::cmd("HMGET");
            c.arg(&self.keys[1]);
            for k in &owned {
                c.arg(k);
            }
            self.exec(&c, true)?
        } else {
            let args: Vec<&[u8]> = owned.iter().map(|a| a.as_slice()).collect();
            self.eval(S::GetMulti, &args)?
        };
        array(r)
            .into_iter()
            .map(|v| bulk(v).map(|b| self.entry_val(b)).transpose())
            .collect()
    }
    fn remove_multi(&mut self, keys: &[Item]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let owned = keys
            .iter()
            .map(|k| self.key(k))
            .collect::<Result<Vec<_>>>()?;
        let args: Vec<&[u8]> = owned.iter().map(|a| a.as_slice()).collect();
        let r = self.eval(S::RemoveMulti, &args)?;
        Ok(as_int(&r).unwrap_or(0).max(0) as u64)
    }
    fn take_ends(&mut self, n: u64, _end: End) -> Result<Vec<(Entry, Entry)>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let r = self.eval(S::TakeEnds, &[n.to_string().as_bytes()])?;
        let raws = self.triples(r)?;
        self.entries(raws)
    }
    fn walk(&mut self, pos: &mut CursorPos, k: &mut Out, v: &mut Out) -> Result<Status> {
        let id = match pos.after {
            Some(id) => id,
            None => {
                let id = self.next_cursor;
                self.next_cursor += 1;
                self.cursors.insert(id, Walk::default());
                pos.after = Some(id);
                id
            }
        };
        let mut w = self.cursors.remove(&id).unwrap_or_else(|| Walk {
            // a position this handle does not know (another process's
            // cursor state is not shared): the walk is over
            started: true,
            done: true,
            ..Walk::default()
        });
        let r = self.step(&mut w, k, v);
        if !matches!(r, Ok(Status::False)) {
            self.cursors.insert(id, w);
        }
        r
    }
    fn seek(&mut self, k: &Item) -> Result<Option<CursorPos>> {
        let key = self.key(k)?;
        let Some((raw, _)) = self.read(&key, false)? else {
            return Ok(None);
        };
        let id = self.next_cursor;
        self.next_cursor += 1;
        let mut w = Walk::default();
        w.buf.push_back((key, self.kb && k.utf8 != 0, raw));
        self.cursors.insert(id, w);
        Ok(Some(CursorPos {
            shard: 0,
            after: Some(id),
        }))
    }
    fn cursor_release(&mut self, pos: CursorPos) {
        if let Some(id) = pos.after {
            self.cursors.remove(&id);
        }
    }
    fn verify(&mut self) -> Result<()> {
        let r = self.eval(S::Verify, &[])?;
        match bulk(r) {
            Some(b) if b == b"ok" => Ok(()),
            Some(b) => Err(Error::new(format!(
                "{}: verify: {}",
                self.loc.shown,
                String::from_utf8_lossy(&b)
            ))),
            None => Err(self.corrupt("a malformed verify reply")),
        }
    }
    fn snapshot(&mut self) -> Result<Vec<(Entry, Entry)>> {
        let r = self.eval(S::Snapshot, &[])?;
        let raws = self.triples(r)?;
        self.entries(raws)
    }
    fn info(&self, which: Info) -> u64 {
        match which {
            Info::MaxEntries | Info::Capacity => self.max,
            Info::Ttl => self.ttl,
            Info::Variant => self.variant as u64,
            _ => 0,
        }
    }
    fn info_try(&mut self, which: Info) -> Result<u64> {
        self.info_now(which)
    }
    fn reserve(&mut self, n: u64) -> Result<bool> {
        Ok(n <= self.max)
    }
    fn clear(&mut self) -> Result<()> {
        let mut c = redis::cmd("DEL");
        c.arg(&self.keys[1]).arg(&self.keys[2]).arg(&self.keys[3]);
        self.exec(&c, false).map(|_| ())
    }
    fn iter_reset(&mut self) {
        self.each = None;
    }
    fn truncated(&self) -> bool {
        false
    }
    fn freeze(&mut self) -> Result<()> {
        Err(Error::new(format!(
            "{}: freeze is not available for a map on a server (other clients could still \
             write to its keys); protect it with the server's ACLs instead",
            self.loc.shown
        )))
    }
    fn sync(&self) -> Result<()> {
        Ok(())
    }
    fn memfd(&self) -> i32 {
        -1
    }
    fn frozen(&self) -> bool {
        false
    }
    fn readonly(&self) -> bool {
        false
    }
    fn file_path(&self) -> Option<String> {
        Some(self.raw_path.clone())
    }
    fn display_path(&self) -> String {
        self.loc.shown.clone()
    }
    fn unlink_map(&mut self) -> bool {
        let mut c = redis::cmd("DEL");
        for k in &self.keys {
            c.arg(k);
        }
        matches!(self.exec(&c, false), Ok(v) if as_int(&v).unwrap_or(0) > 0)
    }
    fn claim_shard(&mut self, n: u32, i: u32) -> Result<()> {
        let want = format!("{i}/{n}");
        let r = self.eval(S::Shard, &[want.as_bytes()])?;
        let have = bulk(r).unwrap_or_default();
        if have == want.as_bytes() {
            return Ok(());
        }
        let have = String::from_utf8_lossy(&have).into_owned();
        let (hi, hn) = have.split_once('/').unwrap_or(("?", "?"));
        Err(Error::new(format!(
            "{}: shard count mismatch: this map is shard {hi} of {hn}, opened as shard {i} of {n}",
            self.loc.shown
        )))
    }
}

/// `Class->unlink(LOCATION)`.
pub fn unlink_location(loc: &str) -> bool {
    let Ok(l) = Location::parse(loc) else {
        return false;
    };
    let Ok(client) = redis::Client::open(l.url.as_str()) else {
        return false;
    };
    let Ok(mut con) = client.get_connection_with_timeout(l.connect_timeout) else {
        return false;
    };
    let _ = con.set_read_timeout(Some(l.timeout));
    let tag = format!("dhms:{{{}}}", l.map);
    let mut c = redis::cmd("DEL");
    for s in ["meta", "data", "exp", "utf8"] {
        c.arg(format!("{tag}:{s}"));
    }
    matches!(c.query::<i64>(&mut con), Ok(n) if n > 0)
}
