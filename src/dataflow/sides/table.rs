//! Every key's state in slots, found by key once per change.
//!
//! A hash map from key to state was looked up twice per applied change: once to apply
//! it, once to compare the key after its time. And its buckets held the states, so a
//! probe walked over 120-byte entries. Here the map holds only the key and a slot
//! number (24 bytes a bucket), the states sit in a vector, and the key's slot travels
//! with it to the comparison: one hash look-up per change, over a table a fifth the
//! size. Keys are never removed (a delete is remembered), so slots never free.

use crate::row::Key;
use crate::FastMap;

/// Keys' slots and the states in them.
pub(super) struct Table<S> {
    slots: FastMap<Key, usize>,
    states: Vec<S>,
}

impl<S> Default for Table<S> {
    fn default() -> Self {
        Table {
            slots: FastMap::default(),
            states: Vec::new(),
        }
    }
}

impl<S: Default> Table<S> {
    /// The slot of `key`, given a default state if the key is new.
    pub(super) fn slot(&mut self, key: &Key) -> usize {
        if let Some(&slot) = self.slots.get(key) {
            return slot;
        }
        let slot = self.states.len();
        self.states.push(S::default());
        self.slots.insert(key.clone(), slot);
        slot
    }
}

impl<S> Table<S> {
    /// The state in `slot` (as [`Table::slot`] gave it).
    pub(super) fn at(&mut self, slot: usize) -> &mut S {
        &mut self.states[slot]
    }

    /// The state of `key`, if it has one.
    pub(super) fn get(&self, key: &Key) -> Option<&S> {
        self.slots.get(key).map(|&slot| &self.states[slot])
    }

    /// Sets `key`'s state.
    pub(super) fn insert(&mut self, key: Key, state: S) {
        match self.slots.get(&key) {
            Some(&slot) => self.states[slot] = state,
            None => {
                self.slots.insert(key, self.states.len());
                self.states.push(state);
            }
        }
    }

    /// How many keys have a state.
    pub(super) fn len(&self) -> usize {
        self.states.len()
    }

    /// Calls `f` on every key with its slot and state.
    pub(super) fn for_each_mut(&mut self, mut f: impl FnMut(&Key, usize, &mut S)) {
        for (k, &slot) in &self.slots {
            f(k, slot, &mut self.states[slot]);
        }
    }

    /// Every key with its state.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&Key, &S)> {
        self.slots.iter().map(|(k, &slot)| (k, &self.states[slot]))
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
