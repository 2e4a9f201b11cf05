//! Every key's state in slots, found by key once per change.
//!
//! A hash map from key to state was looked up twice per applied change: once to apply
//! it, once to compare the key after its time. And its buckets held the states, so a
//! probe walked over 120-byte entries. Here an index holds only slot numbers, each slot
//! holds its key beside its state, and the key's slot travels with it to the
//! comparison: one look-up per change, whose one cache miss is the state's line, which
//! the change needs anyway. Keys are never removed (a delete is remembered), so slots
//! never free.
//!
//! The index is open addressing with linear probing over 8-byte entries, each a key's
//! hash tag and its slot: a look-up's first read finds the slot (where a table of
//! control bytes and a table of slots took two dependent misses), and that line can be
//! fetched ahead of the look-up ([`Table::prefetch_index`]), so that the state's fetch
//! starts without waiting for it.

use crate::row::Key;
use std::hash::BuildHasher;

/// Keys' slots and the states in them.
pub(super) struct Table<S> {
    /// Each entry `tag << 32 | slot + 1` (0: empty), at the position of its key's hash,
    /// or after it (linear probing); at most half full.
    index: Vec<u64>,
    states: Vec<(Key, S)>,
    hasher: foldhash::fast::RandomState,
}

impl<S> Default for Table<S> {
    fn default() -> Self {
        Table {
            index: Vec::new(),
            states: Vec::new(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

/// The part of a hash an entry keeps to tell keys apart without reading them.
fn tag(hash: u64) -> u64 {
    hash >> 32
}

impl<S: Default> Table<S> {
    /// The slot of `key`, given a default state if the key is new.
    pub(super) fn slot(&mut self, key: &Key) -> usize {
        let hash = self.hasher.hash_one(key);
        if let Some(slot) = self.find(hash, key) {
            return slot;
        }
        self.add(hash, key.clone(), S::default())
    }
}

impl<S> Table<S> {
    /// Where `hash`'s probe starts.
    fn home(&self, hash: u64) -> usize {
        hash as usize & self.index.len().wrapping_sub(1)
    }

    /// The slots whose tags are `hash`'s, in probe order.
    fn candidates(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let mask = self.index.len().wrapping_sub(1);
        let start = self.home(hash);
        (0..self.index.len())
            .map(move |i| self.index[(start + i) & mask])
            .take_while(|&e| e != 0)
            .filter(move |&e| e >> 32 == tag(hash))
            .map(|e| (e as u32 - 1) as usize)
    }

    fn find(&self, hash: u64, key: &Key) -> Option<usize> {
        self.candidates(hash)
            .find(|&slot| self.states[slot].0 == *key)
    }

    /// Puts the entry of `slot` at its place in the index (which has room).
    fn place(&mut self, hash: u64, slot: usize) {
        let mask = self.index.len() - 1;
        let mut i = self.home(hash);
        while self.index[i] != 0 {
            i = (i + 1) & mask;
        }
        self.index[i] = tag(hash) << 32 | (slot as u64 + 1);
    }

    /// A new key's slot.
    fn add(&mut self, hash: u64, key: Key, state: S) -> usize {
        let slot = self.states.len();
        assert!(
            slot < u32::MAX as usize,
            "over 4 billion keys on one worker"
        );
        if (slot + 1) * 2 > self.index.len() {
            // Twice as large, every entry placed again.
            self.index = vec![0; (self.index.len() * 2).max(16)];
            for i in 0..self.states.len() {
                let h = self.hasher.hash_one(&self.states[i].0);
                self.place(h, i);
            }
        }
        self.states.push((key, state));
        self.place(hash, slot);
        slot
    }

    /// Asks for the index's entry of `key` to be fetched into the cache, for a
    /// [`Table::prefetch`] of it a few changes later.
    pub(super) fn prefetch_index(&self, key: &Key) {
        if !self.index.is_empty() {
            let at = &self.index[self.home(self.hasher.hash_one(key))];
            crate::row::prefetch((at as *const u64).cast());
        }
    }

    /// The slot `key` probably has (the first with its hash's tag, the key unchecked,
    /// so no state is read), with its state asked to be fetched into the cache.
    pub(super) fn prefetch(&self, key: &Key) -> Option<usize> {
        let slot = self.candidates(self.hasher.hash_one(key)).next()?;
        self.prefetch_slot(slot);
        Some(slot)
    }

    /// Asks for the state in `slot` to be fetched into the cache.
    pub(super) fn prefetch_slot(&self, slot: usize) {
        if let Some(at) = self.states.get(slot) {
            let at: *const (Key, S) = at;
            // A key and its state are over 64 bytes: they may straddle two cache lines.
            crate::row::prefetch(at.cast());
            crate::row::prefetch(at.cast::<u8>().wrapping_add(64));
        }
    }

    /// The state in `slot`, to read.
    pub(super) fn peek(&self, slot: usize) -> &S {
        &self.states[slot].1
    }

    /// The state in `slot` (as [`Table::slot`] gave it).
    pub(super) fn at(&mut self, slot: usize) -> &mut S {
        &mut self.states[slot].1
    }

    /// The key in `slot` and its state.
    pub(super) fn entry(&mut self, slot: usize) -> (&Key, &mut S) {
        let (key, state) = &mut self.states[slot];
        (key, state)
    }

    /// The slot of `key`, if it has one.
    pub(super) fn slot_of(&self, key: &Key) -> Option<usize> {
        self.find(self.hasher.hash_one(key), key)
    }

    /// The state of `key`, if it has one.
    #[cfg(test)]
    pub(super) fn get(&self, key: &Key) -> Option<&S> {
        let slot = self.find(self.hasher.hash_one(key), key)?;
        Some(&self.states[slot].1)
    }

    /// Sets `key`'s state.
    pub(super) fn insert(&mut self, key: Key, state: S) {
        let hash = self.hasher.hash_one(&key);
        match self.find(hash, &key) {
            Some(slot) => self.states[slot].1 = state,
            None => {
                self.add(hash, key, state);
            }
        }
    }

    /// How many keys have a state.
    pub(super) fn len(&self) -> usize {
        self.states.len()
    }

    /// Calls `f` on every key with its slot and state.
    pub(super) fn for_each_mut(&mut self, mut f: impl FnMut(&Key, usize, &mut S)) {
        for (slot, (k, s)) in self.states.iter_mut().enumerate() {
            f(k, slot, s);
        }
    }

    /// Calls `f` on every key with its slot and state, to read.
    pub(super) fn for_each(&self, mut f: impl FnMut(&Key, usize, &S)) {
        for (slot, (k, s)) in self.states.iter().enumerate() {
            f(k, slot, s);
        }
    }

    /// Every key with its state.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&Key, &S)> {
        self.states.iter().map(|(k, s)| (k, s))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::key;
    use super::*;

    #[test]
    fn a_key_keeps_its_slot_and_state_against_a_map() {
        let mut table: Table<u64> = Table::default();
        let mut oracle = std::collections::HashMap::new();
        for i in 0..5000u64 {
            let k = key((i * 7919 % 613) as i64);
            let slot = table.slot(&k);
            *table.at(slot) += i;
            *oracle.entry(k.clone()).or_insert(0) += i;
            if i % 997 == 0 {
                table.insert(k.clone(), 1);
                oracle.insert(k, 1);
            }
        }
        assert_eq!(table.len(), oracle.len());
        for (k, v) in &oracle {
            assert_eq!(table.get(k), Some(v));
            // The probable slot is the key's (another key's 32-bit tag, matched first,
            // would be a chance of about one in a million over this test).
            assert_eq!(table.prefetch(k), table.slot_of(k));
        }
        assert_eq!(table.slot_of(&key(-1)), None);
        let mut seen = std::collections::HashSet::new();
        table.for_each_mut(|k, slot, v| {
            assert_eq!(Some(&*v), oracle.get(k));
            assert!(seen.insert(slot), "slot {slot} twice");
            *v += 1;
        });
        assert_eq!(seen.len(), oracle.len());
        for (k, v) in table.iter() {
            assert_eq!(*v, oracle[k] + 1);
        }
    }
}
