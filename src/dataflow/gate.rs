//! The version gate: one side's keyed state, applying only changes newer than the key's.
//!
//! Per key it keeps the current row (or a remembered delete) and its version. A change
//! whose version is not greater is a duplicate or a stale redelivery: counted, ignored.
//! An applied change retracts the old row and inserts the new one, so downstream sees
//! the side as a differential collection at event time. State is one entry per key ever
//! seen (deletes are remembered so an older insert cannot resurrect a row).

use super::stats::add;
use super::{SideRow, Stats, Time};
use crate::cdc::{Change, SideId};
use crate::row::Key;
use differential_dataflow::hashable::Hashable;
use differential_dataflow::operators::arrange::TraceAgent;
use differential_dataflow::trace::implementations::spine_fueled::SpineBatch;
use differential_dataflow::trace::implementations::ValSpine;
use differential_dataflow::trace::TraceReader;
use differential_dataflow::{AsCollection, VecCollection};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;
use timely::progress::frontier::AntichainRef;

struct Entry {
    version: u64,
    /// Event time of the last applied change: a later change never takes effect before it.
    time: Time,
    current: Option<SideRow>,
}

/// Applies one side's changes in arrival order (per key: its partition's order).
pub fn gate<'s>(
    input: Stream<'s, Time, Vec<(Change, Time)>>,
    side: SideId,
    stats: Arc<Stats>,
    sizes: SizeProbe,
) -> VecCollection<'s, Time, (Key, SideRow), isize> {
    let pact = Exchange::new(|(c, _): &(Change, Time)| c.key.hashed());
    input
        .unary(pact, "Gate", move |_, _| {
            let mut state: HashMap<Key, Entry> = HashMap::new();
            move |input, output| {
                let (mut applied, mut duplicate, mut stale) = (0, 0, 0);
                input.for_each(|cap, data| {
                    let mut session = output.session(&cap);
                    for (change, time) in data.drain(..) {
                        let Change {
                            key,
                            version,
                            time_ms,
                            row,
                        } = change;
                        let entry = state.entry(key.clone());
                        let (old, version) = match entry {
                            std::collections::hash_map::Entry::Vacant(v) => {
                                let version = version.unwrap_or(0);
                                let current = row.map(|row| SideRow {
                                    side,
                                    version,
                                    ts_ms: time_ms.unwrap_or(time),
                                    row,
                                });
                                if let Some(cur) = &current {
                                    session.give(((key, cur.clone()), time, 1));
                                }
                                v.insert(Entry {
                                    version,
                                    time,
                                    current,
                                });
                                applied += 1;
                                continue;
                            }
                            std::collections::hash_map::Entry::Occupied(o) => {
                                (o.into_mut(), version)
                            }
                        };
                        let version = match version {
                            Some(v) if v > old.version => v,
                            Some(v) => {
                                if v == old.version {
                                    duplicate += 1;
                                } else {
                                    stale += 1;
                                }
                                continue;
                            }
                            // No version (an upsert delete): applies after whatever the key holds.
                            None if row.is_none() && old.current.is_none() => {
                                duplicate += 1;
                                continue;
                            }
                            None => old.version,
                        };
                        applied += 1;
                        let time = time.max(old.time);
                        old.time = time;
                        if let Some(prev) = old.current.take() {
                            session.give(((key.clone(), prev), time, -1));
                        }
                        old.version = version;
                        old.current = row.map(|row| SideRow {
                            side,
                            version,
                            ts_ms: time_ms.unwrap_or(time),
                            row,
                        });
                        if let Some(cur) = &old.current {
                            session.give(((key, cur.clone()), time, 1));
                        }
                    }
                });
                let c = stats.side(side);
                add(&c.applied, applied);
                add(&c.duplicate, duplicate);
                add(&c.stale, stale);
                sizes.inner.borrow_mut().gate_keys[side as usize] = state.len();
            }
        })
        .as_collection()
}

/// The arrangement of both sides' rows, keyed.
pub type SideTrace = TraceAgent<ValSpine<Key, SideRow, Time, isize>>;

#[derive(Default)]
struct SizeInner {
    gate_keys: [usize; 2],
    traces: Vec<SideTrace>,
}

/// Sizes of a worker's state, for the state-stays-flat test and metrics.
#[derive(Clone, Default)]
pub struct SizeProbe {
    inner: Rc<RefCell<SizeInner>>,
}

/// A snapshot of a worker's state sizes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sizes {
    /// Keys held by the source and target gates.
    pub gate_keys: [usize; 2],
    /// Updates held in the side-row arrangement's batches.
    pub arranged_updates: usize,
}

impl SizeProbe {
    /// Keeps a handle on an arrangement so its size can be read.
    pub fn watch(&self, trace: SideTrace) {
        self.inner.borrow_mut().traces.push(trace);
    }

    /// Lets the watched arrangements compact up to `frontier` (call as time advances,
    /// or the watch would hold compaction back).
    pub fn advance(&self, frontier: AntichainRef<'_, Time>) {
        for t in self.inner.borrow_mut().traces.iter_mut() {
            t.set_logical_compaction(frontier);
            t.set_physical_compaction(frontier);
        }
    }

    /// Current sizes.
    pub fn sizes(&self) -> Sizes {
        let mut inner = self.inner.borrow_mut();
        let mut arranged_updates = 0;
        for t in inner.traces.iter_mut() {
            t.map_spans(|s| arranged_updates += s.inner.as_ref().map_or(0, |b| b.len()));
        }
        Sizes {
            gate_keys: inner.gate_keys,
            arranged_updates,
        }
    }
}
