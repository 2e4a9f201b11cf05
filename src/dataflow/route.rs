//! Changes sent to the workers that keep their keys, rows bound elsewhere packed in one buffer.

use super::Time;
use crate::cdc::Change;
use crate::row::Row;
use differential_dataflow::hashable::Hashable;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Capability, Exchange};
use timely::dataflow::Stream;

/// A message's changes bound for one worker. Those bound for another keep their rows'
/// bytes in `rows`, one after another, and have their own `row` taken out; those bound
/// for the worker that made them keep their rows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Packed {
    /// The worker they are bound for.
    to: u64,
    /// The changes with their times.
    changes: Vec<(Change, Time)>,
    /// The length of each change's row in `rows` (0: no row); empty when the rows are
    /// the changes' own.
    lengths: Vec<u32>,
    /// The rows' bytes.
    #[serde(with = "serde_bytes")]
    rows: Vec<u8>,
    /// Whether the rows were packed in this process (their flags are then right; bytes
    /// from another process are read as a checkpoint's are).
    #[serde(skip)]
    own: bool,
}

impl Packed {
    /// `changes` as they are, for the worker that has them.
    pub fn local(changes: Vec<(Change, Time)>) -> Packed {
        Packed {
            changes,
            ..Packed::default()
        }
    }

    /// Hands each change, with its row, to `f`, in the order they were packed.
    pub fn unpack(self, mut f: impl FnMut(Change, Time)) {
        if self.lengths.is_empty() {
            return self.changes.into_iter().for_each(|(c, t)| f(c, t));
        }
        let make = if self.own {
            Row::from_own
        } else {
            Row::from_encoded
        };
        let mut at = 0;
        for ((mut change, time), len) in self.changes.into_iter().zip(self.lengths) {
            let end = at + len as usize;
            if len > 0 {
                change.row = self.rows.get(at..end).map(make);
            }
            at = end;
            f(change, time);
        }
    }

    /// None yet, bound for worker `to`; `packing` when that is another worker.
    fn to(to: u64, packing: bool) -> Packed {
        Packed {
            to,
            own: packing,
            ..Packed::default()
        }
    }

    /// Adds a change bound for another worker: its row goes into the buffer.
    fn pack(&mut self, mut change: Change, time: Time) {
        let len = match change.row.take() {
            Some(row) => {
                self.rows.extend_from_slice(row.as_bytes());
                row.as_bytes().len() as u32
            }
            None => 0,
        };
        self.lengths.push(len);
        self.changes.push((change, time));
    }
}

/// Changes packed for the workers that keep their keys, one [`Packed`] per worker.
///
/// The read loop packs each change as it is decoded, while its row is still in the
/// cache: packed later, in an operator of its own, a row bound elsewhere had left the
/// cache and was fetched again to be copied and freed (the atomic release of its count
/// was a third of that operator's samples, BENCHMARKS.md issue 14).
#[derive(Debug)]
pub struct Packer {
    me: u64,
    /// Every change stays on worker `me` when 1 (as for inputs declared co-partitioned).
    peers: u64,
    bins: Vec<Packed>,
    /// The most changes and row bytes a bin took in the last round: the next round's
    /// bins start that large rather than growing to it again.
    sized: (usize, usize),
}

impl Packer {
    /// Packs for `peers` workers on worker `me`.
    pub fn new(me: usize, peers: usize) -> Packer {
        Packer {
            me: me as u64,
            peers: peers.max(1) as u64,
            bins: Vec::new(),
            sized: (0, 0),
        }
    }

    /// Keeps every change on worker `me`, its rows unpacked: for inputs co-partitioned
    /// by key, whose keys are all read on the worker that keeps them (the job checks
    /// that they are, see [`crate::dataflow::claims`]).
    pub fn local(me: usize) -> Packer {
        Packer {
            me: me as u64,
            peers: 1,
            bins: Vec::new(),
            sized: (0, 0),
        }
    }

    /// Adds `change` at `time` to its key's worker's bin (`hash % peers`, as the
    /// checkpoint's restore places keys).
    pub fn push(&mut self, change: Change, time: Time) {
        if self.bins.is_empty() {
            // A quarter more than the last round's largest: bins vary from round to
            // round (a key's worker is its hash), and one that outgrew its buffer
            // copied all its rows to a buffer twice as large (about half the rounds
            // did: 0.8% of a two-worker run's instructions, BENCHMARKS.md issue 14).
            let room = |n: usize| n + n / 4;
            let (me, (changes, rows)) = (self.me, self.sized);
            let (changes, rows) = (room(changes), room(rows));
            let bin = |to| {
                let mut bin = Packed::to(to, to != me);
                bin.changes.reserve(changes);
                if to != me {
                    bin.lengths.reserve(changes);
                    bin.rows.reserve(rows);
                }
                bin
            };
            self.bins = match self.peers {
                1 => vec![bin(me)],
                peers => (0..peers).map(bin).collect(),
            };
        }
        if self.peers == 1 {
            return self.bins[0].changes.push((change, time));
        }
        let to = change.key.hashed() % self.peers;
        let bin = &mut self.bins[to as usize];
        if to == self.me {
            bin.changes.push((change, time));
        } else {
            bin.pack(change, time);
        }
    }

    /// The bins that hold changes, each to be sent to its worker; the packer is empty
    /// after.
    pub fn take(&mut self) -> impl Iterator<Item = Packed> {
        if !self.bins.is_empty() {
            self.sized = self.bins.iter().fold((0, 0), |(c, r), bin| {
                (c.max(bin.changes.len()), r.max(bin.rows.len()))
            });
        }
        std::mem::take(&mut self.bins)
            .into_iter()
            .filter(|b| !b.changes.is_empty())
    }
}

/// Sends changes to the workers that keep their keys.
pub trait ExchangeChanges<'s> {
    /// Each change goes to the worker its key hashes to (`hash % peers`, as the
    /// checkpoint's restore places keys), in messages of [`Packed`] changes: changes
    /// are packed here by a [`Packer`] of this operator's own, and a stream packed
    /// already (the job's inputs, packed as they are read) is sent as it is.
    ///
    /// Why not `exchange` on the changes themselves: a row decoded on one worker and
    /// kept by another was freed, when the next change replaced it, by the keeper, and a
    /// block freed by a thread that did not allocate it takes the allocator's slow path
    /// twice (the free, then the owner's collection of it) and bounces its page's cache
    /// lines between cores: about a tenth of a two-worker run, the most of what a
    /// second worker added (BENCHMARKS.md, issue 14). Packed, a row crosses as bytes in
    /// one buffer per message and is allocated, and later freed, by the worker that
    /// keeps it. The rows of the keys a worker keeps itself are not copied.
    ///
    /// ```
    /// use driftwatch::cdc::{Change, Version};
    /// use driftwatch::dataflow::route::ExchangeChanges;
    /// use differential_dataflow::hashable::Hashable;
    /// use driftwatch::row::{RowBuilder, ValueRef};
    /// use std::sync::{Arc, Mutex};
    /// use timely::dataflow::operators::generic::Operator;
    /// use timely::dataflow::operators::ToStream;
    /// use timely::dataflow::channels::pact::Pipeline;
    ///
    /// let got = Arc::new(Mutex::new(Vec::new()));
    /// let seen = got.clone();
    /// timely::execute(timely::Config::process(3), move |worker| {
    ///     let (index, seen) = (worker.index(), seen.clone());
    ///     worker.dataflow::<u64, _, _>(|scope| {
    ///         // Every worker reads ids 0..30, half of them deletes (no row).
    ///         let changes = (0..30i64).map(move |id| {
    ///             let mut b = RowBuilder::default();
    ///             b.push("id", ValueRef::Int(id)).unwrap();
    ///             let key = b.finish_key();
    ///             b.push("id", ValueRef::Int(id)).unwrap();
    ///             b.push("by", ValueRef::Int(index as i64)).unwrap();
    ///             let row = (id % 2 == 0).then(|| b.finish_row());
    ///             let change = Change { key, version: Some(Version::Num(1)), time_ms: Some(5), row };
    ///             (change, id as u64)
    ///         });
    ///         let changes = changes.to_stream(scope).container::<Vec<(Change, u64)>>();
    ///         changes.exchange_changes().sink(Pipeline, "Check", move |(input, _)| {
    ///             input.for_each(|_, data| {
    ///                 for packed in data.drain(..) {
    ///                     packed.unpack(|change, time| {
    ///                         seen.lock().unwrap().push((index, change, time));
    ///                     });
    ///                 }
    ///             });
    ///         });
    ///     });
    /// })
    /// .unwrap();
    /// let got = got.lock().unwrap();
    /// assert_eq!(got.len(), 90);
    /// for (worker, change, time) in got.iter() {
    ///     // At the key's worker, the row as it was made (its maker's index in it).
    ///     assert_eq!(change.key.hashed() % 3, *worker as u64);
    ///     let id = *time as i64;
    ///     assert_eq!(change.key.fields().next().unwrap().1, ValueRef::Int(id));
    ///     match &change.row {
    ///         Some(row) => assert_eq!(row.get("id"), Some(ValueRef::Int(id))),
    ///         None => assert_eq!(id % 2, 1),
    ///     }
    /// }
    /// // Each worker's rows arrived, from every worker.
    /// for by in 0..3 {
    ///     let rows = got.iter().filter(|(_, c, _)| c.row.as_ref().and_then(|r| r.get("by")) == Some(ValueRef::Int(by)));
    ///     assert_eq!(rows.count(), 15);
    /// }
    /// ```
    fn exchange_changes(self) -> Stream<'s, Time, Vec<Packed>>;
}

impl<'s> ExchangeChanges<'s> for Stream<'s, Time, Vec<(Change, Time)>> {
    fn exchange_changes(self) -> Stream<'s, Time, Vec<Packed>> {
        let mut packer = Packer::new(self.scope().index(), self.scope().peers());
        let packed: Stream<'s, Time, Vec<Packed>> = self.unary(Pipeline, "Pack", move |_, _| {
            move |input, output| {
                // An activation's messages (a read round's) go out as one per worker, at
                // the least of their times (each change keeps its own): a few messages
                // of about a hundred changes each made as many bins, and their
                // allocations cost more than the packing.
                let mut least: Option<Capability<Time>> = None;
                input.for_each(|cap, data| {
                    if let Some(c) = cap.retain_least(0) {
                        if least.as_ref().is_none_or(|l| c.time() < l.time()) {
                            least = Some(c);
                        }
                    }
                    data.drain(..).for_each(|(c, t)| packer.push(c, t));
                });
                if let Some(cap) = least {
                    output.session(&cap).give_iterator(packer.take());
                }
            }
        });
        packed.exchange_changes()
    }
}

impl<'s> ExchangeChanges<'s> for Stream<'s, Time, Vec<Packed>> {
    fn exchange_changes(self) -> Stream<'s, Time, Vec<Packed>> {
        self.exchange(|p: &Packed| p.to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdc::Version;
    use crate::row::{RowBuilder, ValueRef};
    use proptest::prelude::*;

    fn change(id: i64, note: Option<&str>) -> Change {
        let mut b = RowBuilder::default();
        b.push("id", ValueRef::Int(id)).unwrap();
        let key = b.finish_key();
        let row = note.map(|note| {
            b.push("id", ValueRef::Int(id)).unwrap();
            b.push("note", ValueRef::Str(note)).unwrap();
            b.finish_row()
        });
        Change {
            key,
            version: Some(Version::Num(id as u64)),
            time_ms: Some(1),
            row,
        }
    }

    proptest! {
        /// Round after round, each bin unpacks to the changes pushed for its worker, in
        /// the order pushed, rows and all, whatever sizes the earlier rounds left; a
        /// local packer's one bin, to its own worker, holds them all.
        #[test]
        fn bins_unpack_to_the_changes_pushed_for_their_worker(
            (peers, me) in (1usize..4).prop_flat_map(|p| (Just(p), 0..p)),
            local in any::<bool>(),
            rounds in prop::collection::vec(
                prop::collection::vec((0i64..50, prop::option::of("[a-z]{0,40}")), 0..30),
                1..5),
        ) {
            let mut packer = match local {
                true => Packer::local(me),
                false => Packer::new(me, peers),
            };
            let worker = |c: &Change| match local {
                true => me,
                false => (c.key.hashed() % peers as u64) as usize,
            };
            for (round, pushes) in rounds.into_iter().enumerate() {
                let mut want = vec![Vec::new(); peers];
                for (id, note) in &pushes {
                    let c = change(*id, note.as_deref());
                    want[worker(&c)].push((c.clone(), round as Time));
                    packer.push(c, round as Time);
                }
                let mut got = vec![Vec::new(); peers];
                for bin in packer.take() {
                    let to = bin.to as usize;
                    prop_assert!(got[to].is_empty(), "one bin per worker");
                    bin.unpack(|c, t| got[to].push((c, t)));
                }
                prop_assert_eq!(got, want);
            }
        }
    }
}
