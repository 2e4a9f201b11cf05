//! A queue of items by time: what an operator holds until the frontier passes it.
//!
//! Items come out in time order, those of one time in their order of arrival. An item
//! is either put in its place at once ([`Timed::push`]: timers, which are read in the
//! same activation that sets them) or appended and sorted once before the next read
//! ([`Timed::append`] then [`Timed::settle`]: an operator's inputs, which interleave
//! partitions and sides). One buffer for every time held, where a map of a vector per
//! time allocated a vector or two for nearly every event time.

use super::Time;
use std::collections::VecDeque;

/// Items with their times, in time order once settled.
pub(crate) struct Timed<T> {
    items: VecDeque<(Time, T)>,
    /// Whether an item was appended out of order since the last [`Timed::settle`].
    unsorted: bool,
    /// Where the first of those went: the items before it are in order.
    descent: usize,
}

impl<T> Default for Timed<T> {
    fn default() -> Self {
        Timed {
            items: VecDeque::new(),
            unsorted: false,
            descent: 0,
        }
    }
}

impl<T> Timed<T> {
    /// Puts `item` in its place: after every item at or before `time`.
    pub(crate) fn push(&mut self, time: Time, item: T) {
        debug_assert!(!self.unsorted, "push on an unsettled queue");
        if self.items.back().is_none_or(|(t, _)| *t <= time) {
            self.items.push_back((time, item));
        } else {
            let at = self.items.partition_point(|(t, _)| *t <= time);
            self.items.insert(at, (time, item));
        }
    }

    /// Appends `item`; the queue reads in order again after [`Timed::settle`].
    pub(crate) fn append(&mut self, time: Time, item: T) {
        if !self.unsorted && self.items.back().is_some_and(|(t, _)| *t > time) {
            self.unsorted = true;
            self.descent = self.items.len();
        }
        self.items.push_back((time, item));
    }

    /// Sorts what was appended out of order. The sort is stable (items of one time keep
    /// their order of arrival) and adaptive: a queue made of a few sorted runs (the
    /// held remainder, one run per input partition) sorts in about n·log(runs). The
    /// lead that is in place already (up to the first descent, and at or before every
    /// time after it) is left out: 18% of the sort's instructions at `-w 2`, 2% at `-w 1`
    /// (BENCHMARKS.md, issue 14).
    pub(crate) fn settle(&mut self) {
        if std::mem::take(&mut self.unsorted) {
            let (items, at) = (self.items.make_contiguous(), self.descent);
            // The items before the descent are in order, and so are those of them at or
            // before the least time after it: only the rest is sorted.
            let least = items[at..]
                .iter()
                .map(|(t, _)| *t)
                .min()
                .unwrap_or(Time::MAX);
            let start = items[..at].partition_point(|(t, _)| *t <= least);
            items[start..].sort_by_key(|(t, _)| *t);
        }
    }

    /// The earliest time held.
    pub(crate) fn first(&self) -> Option<Time> {
        debug_assert!(!self.unsorted, "read of an unsettled queue");
        self.items.front().map(|(t, _)| *t)
    }

    /// The next item at `time`, if the earliest is at `time`.
    pub(crate) fn pop_at(&mut self, time: Time) -> Option<T> {
        if self.first() != Some(time) {
            return None;
        }
        self.items.pop_front().map(|(_, item)| item)
    }

    /// How many items lead the queue whose times satisfy `done` (a predicate true up to
    /// some time and false after it, as "the frontier has passed it" is).
    pub(crate) fn count_while(&self, done: impl Fn(Time) -> bool) -> usize {
        debug_assert!(!self.unsorted, "read of an unsettled queue");
        self.items.partition_point(|(t, _)| done(*t))
    }

    /// The earliest item, taken.
    pub(crate) fn pop(&mut self) -> Option<(Time, T)> {
        debug_assert!(!self.unsorted, "read of an unsettled queue");
        self.items.pop_front()
    }

    /// The `i`th item from the front.
    pub(crate) fn get(&self, i: usize) -> Option<&(Time, T)> {
        self.items.get(i)
    }

    /// How many items are held.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::Timed;
    use proptest::prelude::*;

    #[test]
    fn timed_items_come_out_in_time_order_and_by_time() {
        let mut q = Timed::default();
        for (t, x) in [(5, 'a'), (5, 'b'), (9, 'c'), (7, 'd'), (5, 'e'), (1, 'f')] {
            q.push(t, x);
        }
        assert_eq!(q.first(), Some(1));
        assert_eq!(q.pop_at(5), None, "the earliest is at 1");
        assert_eq!(q.pop_at(1), Some('f'));
        // Items of one time keep their order of arrival.
        let at5: Vec<_> = std::iter::from_fn(|| q.pop_at(5)).collect();
        assert_eq!(at5, ['a', 'b', 'e']);
        assert_eq!(
            (q.pop_at(7), q.pop_at(7), q.pop_at(9)),
            (Some('d'), None, Some('c'))
        );
        assert_eq!(q.first(), None);
    }

    proptest! {
        /// Appending in batches, settling and taking what is done comes out as a map
        /// of a vector per time (the structure this replaces) would give it.
        #[test]
        fn appended_items_come_out_as_a_map_of_vectors_would(
            batches in prop::collection::vec(
                (prop::collection::vec(0u64..20, 0..12), 0u64..25), 1..8)
        ) {
            let mut q = Timed::default();
            let mut oracle = std::collections::BTreeMap::<u64, Vec<usize>>::new();
            let (mut got, mut want, mut n) = (Vec::new(), Vec::new(), 0);
            for (times, frontier) in batches {
                for t in times {
                    q.append(t, n);
                    oracle.entry(t).or_default().push(n);
                    n += 1;
                }
                q.settle();
                let done = q.count_while(|t| t < frontier);
                for _ in 0..done {
                    got.push(q.pop().unwrap());
                }
                while let Some(e) = oracle.first_entry().filter(|e| *e.key() < frontier) {
                    let (t, items) = e.remove_entry();
                    want.extend(items.into_iter().map(|i| (t, i)));
                }
                prop_assert_eq!(q.first(), oracle.keys().next().copied());
                prop_assert_eq!(q.len(), oracle.values().map(Vec::len).sum::<usize>());
            }
            prop_assert_eq!(got, want);
        }
    }
}
