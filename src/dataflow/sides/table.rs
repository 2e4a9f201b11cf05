//! Every key's state in slots, found by key once per change.
//!
//! A hash map from key to state was looked up twice per applied change: once to apply
//! it, once to compare the key after its time. And its buckets held the states, so a
//! probe walked over 120-byte entries. Here the hash table holds only slot numbers (4
//! bytes a bucket: a table of 100,000 keys fits a core's L2 cache), each slot holds
//! its key beside its state, and the key's slot travels with it to the comparison: one
//! look-up per change, whose one cache miss is the state's line, which the change needs
//! anyway. Keys are never removed (a delete is remembered), so slots never free.

use crate::row::Key;
use hashbrown::HashTable;
use std::hash::BuildHasher;

/// Keys' slots and the states in them.
pub(super) struct Table<S> {
    slots: HashTable<u32>,
    states: Vec<(Key, S)>,
    hasher: foldhash::fast::RandomState,
}

impl<S> Default for Table<S> {
    fn default() -> Self {
        Table {
            slots: HashTable::new(),
            states: Vec::new(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

impl<S: Default> Table<S> {
    /// The slot of `key`, given a default state if the key is new.
    pub(super) fn slot(&mut self, key: &Key) -> usize {
        let hash = self.hasher.hash_one(key);
        if let Some(&slot) = self.find(hash, key) {
            return slot as usize;
        }
        self.add(hash, key.clone(), S::default())
    }
}

impl<S> Table<S> {
    fn find(&self, hash: u64, key: &Key) -> Option<&u32> {
        let states = &self.states;
        self.slots.find(hash, |&i| states[i as usize].0 == *key)
    }

    /// A new key's slot.
    fn add(&mut self, hash: u64, key: Key, state: S) -> usize {
        let slot = self.states.len();
        let number = u32::try_from(slot).expect("over 4 billion keys on one worker");
        self.states.push((key, state));
        let (states, hasher) = (&self.states, &self.hasher);
        self.slots
            .insert_unique(hash, number, |&i| hasher.hash_one(&states[i as usize].0));
        slot
    }

    /// The slot `key` probably has (its hash's first match, the key unchecked, so no
    /// state is read), with its state asked to be fetched into the cache.
    pub(super) fn prefetch(&self, key: &Key) -> Option<usize> {
        let slot = *self.slots.find(self.hasher.hash_one(key), |_| true)? as usize;
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
        Some(*self.find(self.hasher.hash_one(key), key)? as usize)
    }

    /// The state of `key`, if it has one.
    #[cfg(test)]
    pub(super) fn get(&self, key: &Key) -> Option<&S> {
        let slot = *self.find(self.hasher.hash_one(key), key)?;
        Some(&self.states[slot as usize].1)
    }

    /// Sets `key`'s state.
    pub(super) fn insert(&mut self, key: Key, state: S) {
        let hash = self.hasher.hash_one(&key);
        match self.find(hash, &key) {
            Some(&slot) => self.states[slot as usize].1 = state,
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
        }
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
