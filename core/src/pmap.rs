//! A persistent hash map for the binding table's snapshots: cloning it is one reference
//! count, and a write copies only the path to the entry it changes, so every snapshot a
//! reader holds stays valid and unchanged.
//!
//! The layout is flat on purpose. A key's hash picks one of 64 middle arrays, then one of
//! their 64 leaves; a leaf is a contiguous array of entries sorted by hash. A read is three
//! pointer loads and a short walk in the leaf from where the hash's share of the leaf's hash
//! range says it is (at 100,000 keys a leaf holds about 25 entries); a write copies the top
//! array and one middle array (64 pointers each) and rebuilds one leaf. Leaves are sized
//! exactly, so the map costs little more than its entries. Up to a few million keys leaves
//! stay small enough that rebuilding one is cheap.
//!
//! Measured against `imbl::HashMap` (a HAMT with 32-slot nodes) with the same hasher
//! (FxHash), both holding device → `Binding` (`bench/src/bin/infrastructure.rs`,
//! `bench/src/bin/table-memory.rs`; figures and method in
//! `docs/benchmarks-infrastructure.md`), 2 shared cores, CPU time per operation, median of
//! 21 interleaved rounds:
//!
//! | 100,000 bindings | `PMap` | `imbl::HashMap` |
//! |---|---|---|
//! | heap | 8.5 MB (89 bytes a binding) | 39.7 MB (416 bytes a binding) |
//! | heap a commit adds (one insert into a clone) | 3,960 bytes | 9,976 bytes |
//! | `get`, 1 thread | 345 ns | 673 ns |
//! | `get`, 2 threads, a writer committing back to back | 392 ns | 827 ns |
//! | commit (clone, insert or remove one) | 4.1 µs | 8.2 µs |
//!
//! At 10,000 bindings: 1.0 MB against 1.6 MB, `get` 114 ns against 168 ns, a commit 2.1 µs
//! against 3.0 µs. The reads are random over the whole map, so they are mostly cache misses
//! (on a quiet machine every figure is lower; the ratios are what the comparison shows).
//! With a binary search in the leaf instead of the walk, reads were on par with imbl's.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use rustc_hash::FxBuildHasher;

const FAN: usize = 64;

#[derive(Clone, Debug)]
struct Entry<K, V> {
    hash: u64,
    key: K,
    value: V,
}

type Leaf<K, V> = Option<Arc<[Entry<K, V>]>>;
type Mid<K, V> = Option<Arc<[Leaf<K, V>; FAN]>>;

/// The map. `K` and `V` are cloned when a write rebuilds the leaf they are in, so both should
/// be cheap to clone (inline strings, `Arc`s).
#[derive(Clone, Debug)]
pub struct PMap<K, V> {
    top: Arc<[Mid<K, V>; FAN]>,
    len: usize,
}

impl<K, V> Default for PMap<K, V> {
    fn default() -> Self {
        PMap {
            top: Arc::new(std::array::from_fn(|_| None)),
            len: 0,
        }
    }
}

/// FxHash, then a multiplication so that the top bits (which pick the arrays) depend on
/// every input byte.
fn hash_of<Q: Hash + ?Sized>(key: &Q) -> u64 {
    let h = FxBuildHasher.hash_one(key);
    (h ^ (h >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn slots(hash: u64) -> (usize, usize) {
    ((hash >> 58) as usize, ((hash >> 52) & 63) as usize)
}

/// Where `key` is in `leaf`: `Ok(index)`, or `Err(index)` to insert it at.
///
/// Every hash in a leaf has the same top 12 bits (they chose the leaf) and the bits below
/// are spread evenly, so `hash` sits close to its share of that range: the search starts
/// there and walks to the first entry not below it, touching a few neighbouring entries
/// where a binary search would touch log2(n) scattered ones.
fn position<K, V, Q>(leaf: &[Entry<K, V>], hash: u64, key: &Q) -> Result<usize, usize>
where
    K: Borrow<Q>,
    Q: Eq + ?Sized,
{
    let n = leaf.len();
    let mut start = ((u128::from(hash << 12) * n as u128) >> 64) as usize;
    while start > 0 && leaf[start - 1].hash >= hash {
        start -= 1;
    }
    while start < n && leaf[start].hash < hash {
        start += 1;
    }
    leaf[start..]
        .iter()
        .take_while(|e| e.hash == hash)
        .position(|e| e.key.borrow() == key)
        .map(|i| start + i)
        .ok_or(start)
}

impl<K: Clone + Hash + Eq, V: Clone> PMap<K, V> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn leaf(&self, hash: u64) -> &[Entry<K, V>] {
        let (t, m) = slots(hash);
        match &self.top[t] {
            Some(mid) => mid[m].as_deref().unwrap_or(&[]),
            None => &[],
        }
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = hash_of(key);
        let leaf = self.leaf(hash);
        position(leaf, hash, key).ok().map(|i| &leaf[i].value)
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    /// The leaf slot for `hash`, with the path above it made this map's own.
    fn leaf_mut(&mut self, hash: u64) -> &mut Leaf<K, V> {
        let (t, m) = slots(hash);
        let top = Arc::make_mut(&mut self.top);
        let mid = top[t].get_or_insert_with(|| Arc::new(std::array::from_fn(|_| None)));
        &mut Arc::make_mut(mid)[m]
    }

    /// Inserts or replaces; returns the value replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let hash = hash_of(&key);
        let at = position(self.leaf(hash), hash, &key);
        let slot = self.leaf_mut(hash);
        match at {
            Ok(i) => {
                let entries = own(slot);
                Some(std::mem::replace(&mut entries[i].value, value))
            }
            Err(i) => {
                let old = slot.as_deref().unwrap_or(&[]);
                let mut next = Vec::with_capacity(old.len() + 1);
                next.extend_from_slice(&old[..i]);
                next.push(Entry { hash, key, value });
                next.extend_from_slice(&old[i..]);
                *slot = Some(Arc::from(next));
                self.len += 1;
                None
            }
        }
    }

    /// The leaf slot holding `key` (its path made this map's own) and the key's index in it;
    /// `None`, changing nothing, if the key is absent.
    fn find_mut<Q>(&mut self, key: &Q) -> Option<(&mut Leaf<K, V>, usize)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = hash_of(key);
        let i = position(self.leaf(hash), hash, key).ok()?;
        Some((self.leaf_mut(hash), i))
    }

    /// Removes a key; returns its value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (slot, i) = self.find_mut(key)?;
        let old = slot.as_deref().unwrap_or(&[]);
        let value = old[i].value.clone();
        *slot = (old.len() > 1).then(|| {
            old[..i]
                .iter()
                .chain(&old[i + 1..])
                .cloned()
                .collect::<Arc<[_]>>()
        });
        self.len -= 1;
        Some(value)
    }

    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (slot, i) = self.find_mut(key)?;
        Some(&mut own(slot)[i].value)
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.top
            .iter()
            .flatten()
            .flat_map(|mid| mid.iter().flatten())
            .flat_map(|leaf| leaf.iter())
            .map(|e| (&e.key, &e.value))
    }

    /// Every value, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }
}

/// The leaf's entries, copied first if another map or snapshot shares them.
fn own<K: Clone, V: Clone>(slot: &mut Leaf<K, V>) -> &mut [Entry<K, V>] {
    let leaf = slot.get_or_insert_with(|| Arc::from(Vec::new()));
    if Arc::get_mut(leaf).is_none() {
        *leaf = leaf.iter().cloned().collect();
    }
    Arc::get_mut(leaf).unwrap_or(&mut [])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u16, u32),
        Remove(u16),
        Bump(u16),
        Snapshot,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u16..600, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            (0u16..600).prop_map(Op::Remove),
            (0u16..600).prop_map(Op::Bump),
            Just(Op::Snapshot),
        ]
    }

    proptest! {
        /// Any sequence of writes gives the same contents as a HashMap, and every snapshot
        /// taken along the way still holds what it held when taken.
        #[test]
        fn behaves_like_a_hash_map_and_snapshots_never_change(ops in proptest::collection::vec(op(), 0..400)) {
            let mut map: PMap<String, u32> = PMap::default();
            let mut model: HashMap<String, u32> = HashMap::new();
            let mut snapshots: Vec<(PMap<String, u32>, HashMap<String, u32>)> = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        prop_assert_eq!(map.insert(k.to_string(), v), model.insert(k.to_string(), v));
                    }
                    Op::Remove(k) => {
                        prop_assert_eq!(map.remove(k.to_string().as_str()), model.remove(&k.to_string()));
                    }
                    Op::Bump(k) => {
                        let got = map.get_mut(k.to_string().as_str()).map(|v| { *v = v.wrapping_add(1); *v });
                        let want = model.get_mut(&k.to_string()).map(|v| { *v = v.wrapping_add(1); *v });
                        prop_assert_eq!(got, want);
                    }
                    Op::Snapshot => snapshots.push((map.clone(), model.clone())),
                }
                prop_assert_eq!(map.len(), model.len());
            }
            snapshots.push((map, model));
            for (snap, want) in &snapshots {
                let got: HashMap<String, u32> = snap.iter().map(|(k, v)| (k.clone(), *v)).collect();
                prop_assert_eq!(&got, want);
                prop_assert_eq!(snap.len(), want.len());
                for (k, v) in want {
                    prop_assert_eq!(snap.get(k.as_str()), Some(v));
                }
            }
        }
    }

    proptest! {
        /// The search that starts at the hash's share of the leaf finds what a binary search
        /// finds, however the hashes are spread (clustered, equal, at the ends).
        #[test]
        fn position_agrees_with_a_binary_search(
            top in 0u64..4096,
            mut lows in proptest::collection::vec(prop_oneof![0u64..8, any::<u64>(), (1u64 << 52) - 8..1u64 << 52], 0..80),
            probe_low in prop_oneof![0u64..8, any::<u64>()],
        ) {
            let with_top = |low: u64| (top << 52) | (low & ((1 << 52) - 1));
            lows.sort_by_key(|&l| with_top(l));
            let leaf: Vec<Entry<u32, ()>> = lows
                .iter()
                .enumerate()
                .map(|(i, &l)| Entry { hash: with_top(l), key: i as u32, value: () })
                .collect();
            let probe = with_top(probe_low);
            let start = leaf.partition_point(|e| e.hash < probe);
            let want = leaf[start..].iter().take_while(|e| e.hash == probe).map(|e| e.key).next();
            match (position(&leaf, probe, &want.unwrap_or(u32::MAX)), want) {
                (Ok(i), Some(k)) => prop_assert_eq!(leaf[i].key, k),
                (Err(i), None) => prop_assert_eq!(i, start),
                (got, want) => prop_assert!(false, "got {:?}, want {:?}", got, want),
            }
            for (i, e) in leaf.iter().enumerate() {
                prop_assert_eq!(position(&leaf, e.hash, &e.key), Ok(i));
            }
        }
    }

    #[test]
    fn a_large_map_finds_every_key_and_nothing_else() {
        let mut m: PMap<String, usize> = PMap::default();
        for i in 0..100_000 {
            assert_eq!(m.insert(format!("d{i}"), i), None);
        }
        assert_eq!(m.len(), 100_000);
        for i in 0..100_000 {
            assert_eq!(m.get(format!("d{i}").as_str()), Some(&i));
        }
        assert_eq!(m.get("d100000"), None);
        assert_eq!(m.iter().count(), 100_000);
        for i in (0..100_000).step_by(2) {
            assert_eq!(m.remove(format!("d{i}").as_str()), Some(i));
        }
        assert_eq!(m.len(), 50_000);
        assert!(m.get("d0").is_none() && m.get("d1") == Some(&1));
    }
}
