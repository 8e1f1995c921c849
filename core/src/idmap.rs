//! The configured devices or users: one array sorted by id, and a hash index of positions.
//!
//! A config is built once per load or reload and then only read, so it needs no tree: the
//! items sit in one allocation (no per-entry node or key copy), listed in id order, and are
//! found by id through a table of 4-byte positions. With 100,000 users and 100,000 devices
//! that is two large allocations instead of millions of small ones.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

/// Something listed by its id.
pub trait Identified {
    fn id(&self) -> &str;
}

pub struct IdMap<T> {
    items: Box<[T]>,
    index: HashTable<u32>,
}

fn hash(id: &str) -> u64 {
    FxBuildHasher.hash_one(id)
}

impl<T: Identified> IdMap<T> {
    /// From items with distinct ids (the config parser rejects duplicates; a later duplicate
    /// would be unreachable by id).
    pub fn new(mut items: Vec<T>) -> Self {
        items.sort_by(|a, b| a.id().cmp(b.id()));
        let items = items.into_boxed_slice();
        let mut index = HashTable::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let pos = i as u32;
            index.insert_unique(hash(item.id()), pos, |&p| hash(items[p as usize].id()));
        }
        IdMap { items, index }
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.index
            .find(hash(id), |&p| self.items[p as usize].id() == id)
            .map(|&p| p as usize)
    }

    pub fn get(&self, id: &str) -> Option<&T> {
        self.position(id).map(|p| &self.items[p])
    }

    pub fn contains_key(&self, id: &str) -> bool {
        self.position(id).is_some()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// In id order.
    pub fn values(&self) -> std::slice::Iter<'_, T> {
        self.items.iter()
    }

    /// Ids in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.items.iter().map(T::id)
    }

    /// (id, item) in id order.
    pub fn iter(&self) -> Iter<'_, T> {
        self.items.iter().map(with_id)
    }

    /// Changes an item in place; its id must stay the same (for edits of a config under test).
    #[cfg(test)]
    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut T> {
        let p = self.position(id)?;
        Some(&mut self.items[p])
    }

    /// Removes an item (rebuilds the index: for edits of a config under test).
    #[cfg(test)]
    pub(crate) fn remove(&mut self, id: &str) -> Option<T> {
        let p = self.position(id)?;
        let mut items = std::mem::take(&mut self.items).into_vec();
        let removed = items.remove(p);
        *self = IdMap::new(items);
        Some(removed)
    }

    /// The item at a position of [`values`](Self::values), for indexes built over them.
    pub fn at(&self, position: usize) -> Option<&T> {
        self.items.get(position)
    }
}

impl<T: Identified> Default for IdMap<T> {
    fn default() -> Self {
        IdMap::new(Vec::new())
    }
}

impl<T: Identified + Clone> Clone for IdMap<T> {
    fn clone(&self) -> Self {
        IdMap {
            items: self.items.clone(),
            index: self.index.clone(),
        }
    }
}

impl<T: Identified + std::fmt::Debug> std::fmt::Debug for IdMap<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<T: Identified + PartialEq> PartialEq for IdMap<T> {
    fn eq(&self, other: &Self) -> bool {
        self.items == other.items
    }
}

impl<T: Identified + Eq> Eq for IdMap<T> {}

/// The iterator of [`IdMap::iter`].
pub type Iter<'a, T> = std::iter::Map<std::slice::Iter<'a, T>, fn(&'a T) -> (&'a str, &'a T)>;

fn with_id<T: Identified>(item: &T) -> (&str, &T) {
    (item.id(), item)
}

impl<'a, T: Identified> IntoIterator for &'a IdMap<T> {
    type Item = (&'a str, &'a T);
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Eq)]
    struct Item(String, u32);
    impl Identified for Item {
        fn id(&self) -> &str {
            &self.0
        }
    }

    #[test]
    fn finds_by_id_lists_in_order_and_removes() {
        let items: Vec<Item> = (0..1000).rev().map(|i| Item(format!("u{i}"), i)).collect();
        let mut m = IdMap::new(items);
        assert_eq!(m.len(), 1000);
        for i in 0..1000 {
            assert_eq!(m.get(&format!("u{i}")).map(|x| x.1), Some(i));
        }
        assert!(m.get("u1000").is_none() && !m.contains_key(""));
        let keys: Vec<&str> = m.keys().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        m.get_mut("u7").unwrap().1 = 70;
        assert_eq!(m.get("u7").unwrap().1, 70);
        assert_eq!(m.remove("u7").map(|x| x.1), Some(70));
        assert!(m.get("u7").is_none());
        assert_eq!(m.get("u8").map(|x| x.1), Some(8));
        assert_eq!(m.len(), 999);
    }
}
