//! Sharded maps: `n` ordinary map files `PREFIX.0` .. `PREFIX.{n-1}`, each
//! with its own lock, and keys routed to a shard by a fixed hash of the key
//! (independent of the per-file seeds). Writers to different shards run in
//! parallel. Whole-map operations fan out or add up; iteration chains the
//! shards, so the exactly-once guarantee of each shard's walk carries over.
//! Each file records its shard count and index; attaching with another
//! count is refused.

use crate::dynmap::{AnyMap, CursorPos};
use crate::error::{Error, Result};
use crate::map::End;
use crate::open::open_source;
use crate::os::region::Source;
use crate::raw::core::Core;
use crate::raw::types::{Entry, Info, Item, Out, Params, Status, Variant};
use std::ffi::CString;

/// The seed of the routing hash: part of the sharded format.
const ROUTE_SEED: u64 = 0x5ba2_d0c7_3e11_9f41;

/// A map split over several files.
pub struct Sharded {
    shards: Vec<Box<dyn AnyMap>>,
    key_bytes: bool,
    prefix: String,
    /// `each`: the current shard and position in it.
    iter: CursorPos,
    /// `flush_expired_partial`: the shard being swept by this handle.
    flush_shard: usize,
}

impl Sharded {
    /// Create or attach `prefix.0` .. `prefix.{n-1}`. `p` is for each
    /// shard, as in the C implementation: every shard gets `max_entries`,
    /// `max_size` and `arena_cap`, so the whole map holds `n` times as many
    /// entries (and `info` reports the sums).
    pub fn open(prefix: &str, n: u32, variant: Variant, p: &Params) -> Result<Sharded> {
        if !(1..=1024).contains(&n) {
            return Err(Error::new(format!(
                "num_shards (the number of shards) must be 1..1024 (got {n})"
            )));
        }
        let mut shards = Vec::with_capacity(n as usize);
        for i in 0..n {
            let path = format!("{prefix}.{i}");
            let c = CString::new(path.clone())
                .map_err(|_| Error::new("the prefix contains a NUL byte"))?;
            let mut m = open_source(&Source::Path(&c), variant, p)?;
            m.claim_shard(n, i)?;
            shards.push(m);
        }
        Ok(Sharded {
            shards,
            key_bytes: matches!(
                variant,
                Variant::SI16 | Variant::SI32 | Variant::SI | Variant::SS
            ),
            prefix: prefix.to_string(),
            iter: CursorPos::default(),
            flush_shard: 0,
        })
    }

    /// The shard a key belongs to.
    fn route(&self, k: &Item) -> usize {
        let h = if self.key_bytes {
            crate::format::hash::hash_bytes(ROUTE_SEED, k.as_bytes())
        } else {
            crate::format::hash::hash_int(ROUTE_SEED, k.num)
        };
        ((h >> 32) % self.shards.len() as u64) as usize
    }

    fn shard(&mut self, k: &Item) -> &mut dyn AnyMap {
        let i = self.route(k);
        &mut *self.shards[i]
    }

    /// Indexes of `keys` grouped by shard, order kept within each group.
    fn groups<'a>(&self, keys: impl Iterator<Item = Item<'a>>) -> Vec<Vec<(usize, Item<'a>)>> {
        let mut g = vec![Vec::new(); self.shards.len()];
        for (i, k) in keys.enumerate() {
            g[self.route(&k)].push((i, k));
        }
        g
    }
}

impl AnyMap for Sharded {
    fn put(&mut self, k: &Item, v: &Item) -> Result<Status> {
        self.shard(k).put(k, v)
    }
    fn get(&mut self, k: &Item, out: &mut Out) -> Result<Status> {
        self.shard(k).get(k, out)
    }
    fn exists(&mut self, k: &Item) -> Result<bool> {
        self.shard(k).exists(k)
    }
    fn remove(&mut self, k: &Item) -> Result<Status> {
        self.shard(k).remove(k)
    }
    fn take(&mut self, k: &Item, out: &mut Out) -> Result<Status> {
        self.shard(k).take(k, out)
    }
    fn get_or_set(&mut self, k: &Item, d: &Item, out: &mut Out) -> Result<Status> {
        self.shard(k).get_or_set(k, d, out)
    }
    fn incr_by(&mut self, k: &Item, delta: i64, result: &mut i64) -> Result<Status> {
        self.shard(k).incr_by(k, delta, result)
    }
    fn each(&mut self, k: &mut Out, v: &mut Out) -> Result<Status> {
        let mut pos = self.iter;
        let st = self.walk(&mut pos, k, v)?;
        self.iter = if st == Status::False {
            CursorPos::default()
        } else {
            pos
        };
        Ok(st)
    }
    fn put_ttl(&mut self, k: &Item, v: &Item, secs: u64) -> Result<Status> {
        self.shard(k).put_ttl(k, v, secs)
    }
    fn get_with_ttl(&mut self, k: &Item, out: &mut Out, ttl: &mut i64) -> Result<Status> {
        self.shard(k).get_with_ttl(k, out, ttl)
    }
    fn ttl_remaining(&mut self, k: &Item) -> Result<Option<u64>> {
        self.shard(k).ttl_remaining(k)
    }
    fn touch(&mut self, k: &Item) -> Result<bool> {
        self.shard(k).touch(k)
    }
    fn set_ttl(&mut self, k: &Item, secs: u64) -> Result<bool> {
        self.shard(k).set_ttl(k, secs)
    }
    fn persist(&mut self, k: &Item) -> Result<bool> {
        self.shard(k).persist(k)
    }
    fn flush_expired_partial(&mut self, limit: u64) -> Result<(u64, bool)> {
        if limit == u64::MAX {
            let mut n = 0;
            for s in &mut self.shards {
                n += s.flush_expired_partial(u64::MAX)?.0;
            }
            return Ok((n, true));
        }
        // Sweep one shard at a time; a pass ends after the last shard's.
        let (n, done) = self.shards[self.flush_shard].flush_expired_partial(limit)?;
        if !done {
            return Ok((n, false));
        }
        self.flush_shard = (self.flush_shard + 1) % self.shards.len();
        Ok((n, self.flush_shard == 0))
    }
    fn conditional(
        &mut self,
        k: &Item,
        v: &Item,
        ttl: Option<u64>,
        present: bool,
    ) -> Result<Status> {
        self.shard(k).conditional(k, v, ttl, present)
    }
    fn swap(&mut self, k: &Item, v: &Item, out: &mut Out) -> Result<Status> {
        self.shard(k).swap(k, v, out)
    }
    fn cas(&mut self, k: &Item, expected: &Item, desired: &Item) -> Result<Status> {
        self.shard(k).cas(k, expected, desired)
    }
    fn cas_take(&mut self, k: &Item, expected: &Item, out: &mut Out) -> Result<Status> {
        self.shard(k).cas_take(k, expected, out)
    }
    fn extreme(&mut self, k: &Item, d: i64, want_max: bool, result: &mut i64) -> Result<Status> {
        self.shard(k).extreme(k, d, want_max, result)
    }
    fn set_multi(&mut self, pairs: &[(Item, Item)]) -> Result<u64> {
        let groups = self.groups(pairs.iter().map(|p| p.0));
        let mut n = 0;
        for (s, g) in groups
            .into_iter()
            .enumerate()
            .filter(|(_, g)| !g.is_empty())
        {
            let mine: Vec<(Item, Item)> = g.iter().map(|&(i, _)| pairs[i]).collect();
            n += self.shards[s].set_multi(&mine)?;
        }
        Ok(n)
    }
    fn get_multi(&mut self, keys: &[Item]) -> Result<Vec<Option<Entry>>> {
        let groups = self.groups(keys.iter().copied());
        let mut out = vec![None; keys.len()];
        for (s, g) in groups
            .into_iter()
            .enumerate()
            .filter(|(_, g)| !g.is_empty())
        {
            let mine: Vec<Item> = g.iter().map(|&(_, k)| k).collect();
            for ((i, _), v) in g.iter().zip(self.shards[s].get_multi(&mine)?) {
                out[*i] = v;
            }
        }
        Ok(out)
    }
    fn remove_multi(&mut self, keys: &[Item]) -> Result<u64> {
        let groups = self.groups(keys.iter().copied());
        let mut n = 0;
        for (s, g) in groups
            .into_iter()
            .enumerate()
            .filter(|(_, g)| !g.is_empty())
        {
            let mine: Vec<Item> = g.iter().map(|&(_, k)| k).collect();
            n += self.shards[s].remove_multi(&mine)?;
        }
        Ok(n)
    }
    fn take_ends(&mut self, n: u64, end: End) -> Result<Vec<(Entry, Entry)>> {
        let mut out = Vec::new();
        for s in &mut self.shards {
            if out.len() as u64 >= n {
                break;
            }
            out.extend(s.take_ends(n - out.len() as u64, end)?);
        }
        Ok(out)
    }
    fn walk(&mut self, pos: &mut CursorPos, k: &mut Out, v: &mut Out) -> Result<Status> {
        while (pos.shard as usize) < self.shards.len() {
            let mut inner = CursorPos {
                shard: 0,
                after: pos.after,
            };
            let st = self.shards[pos.shard as usize].walk(&mut inner, k, v)?;
            if st != Status::False {
                pos.after = inner.after;
                return Ok(st);
            }
            pos.shard += 1;
            pos.after = None;
        }
        Ok(Status::False)
    }
    fn seek(&mut self, k: &Item) -> Result<Option<CursorPos>> {
        let s = self.route(k);
        Ok(self.shards[s].seek(k)?.map(|p| CursorPos {
            shard: s as u32,
            after: p.after,
        }))
    }
    fn verify(&mut self) -> Result<()> {
        self.shards.iter_mut().try_for_each(|s| s.verify())
    }
    fn snapshot(&mut self) -> Result<Vec<(Entry, Entry)>> {
        let mut all = Vec::new();
        for s in &mut self.shards {
            all.extend(s.snapshot()?);
        }
        Ok(all)
    }
    fn info(&self, which: Info) -> u64 {
        use Info::*;
        match which {
            Size | MaxEntries | MaxSize | Capacity | Tombstones | MmapSize | ArenaUsed
            | ArenaCap | StatEvictions | StatExpired | StatRecoveries => {
                self.shards.iter().map(|s| s.info(which)).sum()
            }
            Ttl | LruSkip | Variant => self.shards[0].info(which),
        }
    }
    fn info_try(&mut self, which: Info) -> Result<u64> {
        use Info::*;
        match which {
            Ttl | LruSkip | Variant => self.shards[0].info_try(which),
            _ => self.shards.iter_mut().map(|s| s.info_try(which)).sum(),
        }
    }
    fn local_core(&self) -> Option<&Core> {
        self.shards[0].local_core()
    }
    fn local_core_mut(&mut self) -> Option<&mut Core> {
        self.shards[0].local_core_mut()
    }
    fn claim_shard(&mut self, _n: u32, _i: u32) -> Result<()> {
        Err(Error::new("a sharded map cannot be a shard of another"))
    }
    fn cursor_release(&mut self, pos: CursorPos) {
        if let Some(s) = self.shards.get_mut(pos.shard as usize) {
            s.cursor_release(CursorPos {
                shard: 0,
                after: pos.after,
            });
        }
    }
    fn reserve(&mut self, n: u64) -> Result<bool> {
        let per = n.div_ceil(self.shards.len() as u64);
        let mut ok = true;
        for s in &mut self.shards {
            ok &= s.reserve(per)?;
        }
        Ok(ok)
    }
    fn clear(&mut self) -> Result<()> {
        self.shards.iter_mut().try_for_each(|s| s.clear())
    }
    fn iter_reset(&mut self) {
        self.iter = CursorPos::default();
    }
    fn truncated(&self) -> bool {
        self.shards.iter().any(|s| s.truncated())
    }
    fn freeze(&mut self) -> Result<()> {
        self.shards.iter_mut().try_for_each(|s| s.freeze())
    }
    fn sync(&self) -> Result<()> {
        self.shards.iter().try_for_each(|s| s.sync())
    }
    fn set_wait_timeout(&mut self, d: std::time::Duration) -> Result<()> {
        self.shards
            .iter_mut()
            .try_for_each(|s| s.set_wait_timeout(d))
    }
    fn memfd(&self) -> i32 {
        -1
    }
    fn frozen(&self) -> bool {
        self.shards.iter().all(|s| s.frozen())
    }
    fn readonly(&self) -> bool {
        self.frozen()
    }
    fn file_path(&self) -> Option<String> {
        None
    }
    fn display_path(&self) -> String {
        format!(
            "{}.* ({} shards)",
            crate::remote::location::mask(&self.prefix),
            self.shards.len()
        )
    }
}
