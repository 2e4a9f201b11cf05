//! Both sides' keyed state behind the version gate, and the drift of each key it implies.
//!
//! Per key it keeps each side's current row (or a remembered delete) and its version. A
//! change whose version is not greater is a duplicate or a stale redelivery: counted,
//! ignored. Deletes are remembered so an older insert cannot resurrect a row. State is
//! one entry per key ever seen, whatever the length of the history.
//!
//! Changes are applied in event-time order, one completed time at a time (when both
//! inputs' frontiers have passed it), so the drift at every time is that of the two
//! sides' rows at that time, whatever order the partitions were read in. After each
//! time, every key it touched is compared, and its grace episode (`grace`: held in the
//! key's state) begins, goes on or heals; a grace timer due fires once its time's changes
//! are applied, before the next time's. What comes out is drift records and
//! corrections, each at its event time.
//!
//! Why not `arrange_by_key` + `reduce`: that was the first version. On the file-mode
//! benchmark it spent over half its time replaying per-key histories, copying keys and
//! merging batches, and it held every row twice (gate and arrangement); one hash map
//! lookup per change does the same work (BENCHMARKS.md), and its state is what a
//! checkpoint has to write.

mod table;

use super::grace::{Episode, Grace, KeyAt};
use super::route::Packed;
use super::stats::add;
use super::timed::Timed;
use super::{Output, SideRowRef, Stats, Time};
use crate::cdc::{Change, SideId, Version};
use crate::row::{CompareRules, Key};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use table::Table;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::{Operator, OutputBuilderSession};
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::Concat;
use timely::dataflow::Stream;

/// One side's state for a key: the last applied version and its row (`None`: deleted),
/// with the row's event time. The version is held once (a [`super::SideRow`] is made
/// only for a drift), and rows and versions are thin pointers: a key's state is 88
/// bytes with its grace episode (120 with fat pointers), and most of its cost is the
/// cache misses of reaching it.
struct SideEntry {
    version: Version,
    /// The event time of the row's change, in ms (as read, before rounding).
    ts_ms: u64,
    row: Option<crate::row::Row>,
}

impl SideEntry {
    /// The side's row, if it has one.
    fn current(&self, side: SideId) -> Option<SideRowRef<'_>> {
        Some(SideRowRef {
            side,
            version: &self.version,
            ts_ms: self.ts_ms,
            row: self.row.as_ref()?,
        })
    }
}

/// How many changes ahead a key's state is fetched (its rows, half as far; its index
/// entry, twice as far).
const AHEAD: usize = 8;

/// The most records sent in one message.
const OUT_CHUNK: usize = 1024;

/// Sends `out`'s records (if any) in one message at the least of their times (the
/// first: they are in time order, as changes are applied and timers fire).
fn give(
    output: &mut OutputBuilderSession<'_, Time, CapacityContainerBuilder<Vec<(Output, Time)>>>,
    cap: &Capability<Time>,
    out: &mut Vec<(Output, Time)>,
) {
    if let Some(&(_, first)) = out.first() {
        output.session(&cap.delayed(&first)).give_container(out);
        out.clear();
    }
}

impl KeyState {
    /// Asks for each side's row to be fetched into the cache.
    fn prefetch_rows(&self) {
        for row in self.sides.iter().flatten().filter_map(|e| e.row.as_ref()) {
            row.prefetch();
        }
    }
}

/// Each side's row, if it has one.
fn rows(sides: &[Option<SideEntry>; 2]) -> [Option<SideRowRef<'_>>; 2] {
    SideId::BOTH.map(|s| sides[s as usize].as_ref()?.current(s))
}

/// The key in `slot` as grace reads it.
fn key_at(state: &mut Table<KeyState>, slot: usize) -> KeyAt<'_> {
    let (key, KeyState { sides, episode, .. }) = state.entry(slot);
    KeyAt {
        key,
        slot,
        episode,
        rows: rows(sides),
    }
}

#[derive(Default)]
struct KeyState {
    sides: [Option<SideEntry>; 2],
    /// Its grace episode: whether its sides differ, and since when.
    episode: Episode,
    /// Whether the key is in this time's list of touched keys.
    touched: bool,
}

/// Fires the timers due at times that `due` takes, in time order, each on its key's
/// state (fetched a few timers ahead: most timers are of episodes healed long since,
/// and their states are out of the cache).
fn fire(
    state: &mut Table<KeyState>,
    grace: &mut Grace,
    due: impl Fn(Time) -> bool,
    out: &mut Vec<(Output, Time)>,
) {
    while let Some(now) = grace.next_timer().filter(|&t| due(t)) {
        while let Some(slot) = grace.pop_timer(now) {
            if let Some(ahead) = grace.timer_slot(AHEAD) {
                state.prefetch_slot(ahead);
            }
            grace.fire(key_at(state, slot), now, out);
        }
    }
}

/// Compares a source's changes with a target's, key by key, with grace.
pub trait Sides<'s> {
    /// Applies both sides' changes by key (`self`: the source's, `target`: the
    /// target's, each `(change, event time)`, routed to their key's worker by
    /// [`ExchangeChanges`](super::route::ExchangeChanges);
    /// `truncates`: each side's truncates, which reach every worker), keeps each key's
    /// grace episode in `shared`, and emits the drift records and corrections, each at
    /// its event time. `sizes` reports the state's size.
    ///
    /// Why one operator for both sides and their grace: a change is compared with the
    /// other side's row for its key at its time, and a difference's episode begins, goes
    /// on or heals there too: one look-up of the key does all of it, where collections
    /// arranged apart and joined held every row twice and replayed each key's history
    /// (BENCHMARKS.md).
    ///
    /// ```
    /// use driftwatch::cdc::{Change, Version};
    /// use driftwatch::dataflow::route::ExchangeChanges;
    /// use driftwatch::dataflow::sides::{Sides, SidesState, SizeProbe};
    /// use driftwatch::dataflow::{DriftKind, Output, Time};
    /// use driftwatch::row::{Key, Row, RowBuilder, ValueRef};
    /// use std::sync::Arc;
    /// use timely::dataflow::operators::capture::{Capture, Extract};
    /// use timely::dataflow::operators::ToStream;
    ///
    /// fn key(id: i64) -> Key {
    ///     let mut b = RowBuilder::default();
    ///     b.push("id", ValueRef::Int(id)).unwrap();
    ///     b.finish_key()
    /// }
    /// fn row(id: i64, status: &str) -> Row {
    ///     let mut b = RowBuilder::default();
    ///     b.push("id", ValueRef::Int(id)).unwrap();
    ///     b.push("status", ValueRef::Str(status)).unwrap();
    ///     b.finish_row()
    /// }
    /// /// Order `id` is `status` at `ms` (event time), its version `version`.
    /// fn change(id: i64, version: u64, ms: Time, status: &str) -> (Change, Time) {
    ///     let change = Change {
    ///         key: key(id),
    ///         version: Some(Version::Num(version)),
    ///         time_ms: Some(ms),
    ///         row: Some(row(id, status)),
    ///     };
    ///     (change, ms)
    /// }
    /// let (send, recv) = std::sync::mpsc::channel();
    /// timely::example(move |scope| {
    ///     // Grace 5 ms: the target copies order 1 in 2 ms and never gets order 2.
    ///     let source = vec![change(1, 1, 10, "new"), change(2, 2, 10, "new")];
    ///     let target = vec![change(1, 7, 12, "new")];
    ///     let none = || Vec::<(Change, Time)>::new().to_stream(scope);
    ///     let shared = SidesState::new(Arc::default(), Arc::default(), 5);
    ///     // Each side's changes go to their keys' workers, packed.
    ///     let routed = |changes: Vec<(Change, Time)>| {
    ///         changes.to_stream(scope).container::<Vec<_>>().exchange_changes()
    ///     };
    ///     routed(source)
    ///         .sides(
    ///             routed(target),
    ///             [none(), none()],
    ///             SizeProbe::default(),
    ///             shared,
    ///         )
    ///         .capture_into(send);
    /// });
    /// // Each time's outputs, sorted: drift records before corrections.
    /// let drift: Vec<(Time, Option<DriftKind>)> = recv
    ///     .extract()
    ///     .into_iter()
    ///     .flat_map(|(_, outputs)| outputs)
    ///     .map(|(output, time)| match output {
    ///         Output::Drift(record) => (time, Some(record.drift.kind)),
    ///         _ => (time, None), // its correction: the source row, to upsert
    ///     })
    ///     .collect();
    /// // Order 2 is reported missing after grace, with its correction; order 1's
    /// // difference healed within grace and is not reported.
    /// assert_eq!(drift, [(15, Some(DriftKind::Missing)), (15, None)]);
    /// ```
    fn sides(
        self,
        target: Stream<'s, Time, Vec<Packed>>,
        truncates: [Stream<'s, Time, Vec<(Change, Time)>>; 2],
        sizes: SizeProbe,
        shared: SidesState,
    ) -> Stream<'s, Time, Vec<(Output, Time)>>;
}

impl<'s> Sides<'s> for Stream<'s, Time, Vec<Packed>> {
    fn sides(
        self,
        target: Stream<'s, Time, Vec<Packed>>,
        truncates: [Stream<'s, Time, Vec<(Change, Time)>>; 2],
        sizes: SizeProbe,
        shared: SidesState,
    ) -> Stream<'s, Time, Vec<(Output, Time)>> {
        let source = self;
        let [source_truncates, target_truncates] = truncates;
        let everywhere = |t: Stream<'s, Time, Vec<(Change, Time)>>| {
            t.broadcast().unary(Pipeline, "Truncates", |_, _| {
                |input, output| {
                    input.for_each(|cap, data| {
                        output
                            .session(&cap)
                            .give(Packed::local(std::mem::take(data)))
                    })
                }
            })
        };
        let source = source.concat(everywhere(source_truncates));
        let target = target.concat(everywhere(target_truncates));
        source.binary_frontier(target, Pipeline, Pipeline, "Sides", move |initial, _| {
            // Every change not yet complete, in time order once settled.
            let mut pending: Timed<(SideId, Change)> = Timed::default();
            let shared = shared.0;
            // The initial capability serves grace timers restored from a checkpoint; it is
            // dropped at the first activation when there are none.
            let mut held: Option<Capability<Time>> = Some(initial);
            // The slots of the keys an event time's changes applied to.
            let mut touched: Vec<usize> = Vec::new();
            // An activation's records, each with its time, go out in messages of up to
            // `OUT_CHUNK` at the least of their times.
            let mut out: Vec<(Output, Time)> = Vec::new();
            // The slots guessed for the completed changes ahead.
            let mut guesses: VecDeque<Option<usize>> = VecDeque::new();
            move |(source, source_frontier), (target, target_frontier), output| {
                for (side, input) in [(SideId::Source, source), (SideId::Target, target)] {
                    input.for_each(|cap, data| {
                        if let Some(c) = cap.retain_least(0) {
                            if held.as_ref().is_none_or(|h| c.time() < h.time()) {
                                held = Some(c);
                            }
                        }
                        for packed in data.drain(..) {
                            packed.unpack(|change, time| pending.append(time, (side, change)));
                        }
                    });
                }
                let Some(cap) = held.as_mut() else { return };
                let done =
                    |t: Time| !source_frontier.less_equal(&t) && !target_frontier.less_equal(&t);
                let mut counts = [[0u64; 3]; 2];
                let mut keyed = shared.borrow_mut();
                pending.settle();
                let mut ready = pending.count_while(done);
                // The changes of every completed time, in order: the first `ready` of
                // `pending`. A key's state and rows are cache misses (a table of 100k keys
                // is far larger than the cache), so they are fetched a few changes ahead:
                // the misses of several changes overlap instead of stalling one after
                // another.
                let Keyed {
                    keys: state,
                    floors,
                    grace,
                    claims,
                } = &mut *keyed;
                // A change's own row waited in `pending` since it was decoded and is out of
                // the cache too: it is fetched with its key's state.
                let fetch = |state: &Table<KeyState>, c: &Change| {
                    if let Some(row) = &c.row {
                        row.prefetch();
                    }
                    state.prefetch(&c.key)
                };
                guesses.clear();
                for (_, (_, c)) in (0..ready.min(AHEAD)).filter_map(|i| pending.get(i)) {
                    guesses.push_back(fetch(state, c));
                }
                // The index's entries are fetched twice as far ahead: a state's fetch
                // starts from its slot, which the entry holds.
                for (_, (_, c)) in (AHEAD..ready.min(2 * AHEAD)).filter_map(|i| pending.get(i)) {
                    state.prefetch_index(&c.key);
                }
                // The time whose changes are being applied: the timers before it have fired.
                let mut applying = None;
                while ready > 0 {
                    let Some((time, (side, change))) = pending.pop() else {
                        break;
                    };
                    ready -= 1;
                    if applying != Some(time) {
                        applying = Some(time);
                        fire(state, grace, |t| t < time, &mut out);
                    }
                    guesses.pop_front();
                    if let Some((_, (_, c))) = pending.get(AHEAD - 1).filter(|_| ready >= AHEAD) {
                        guesses.push_back(fetch(state, c));
                    }
                    if let Some((_, (_, c))) =
                        pending.get(2 * AHEAD - 1).filter(|_| ready >= 2 * AHEAD)
                    {
                        state.prefetch_index(&c.key);
                    }
                    if let Some(&Some(slot)) = guesses.get(AHEAD / 2) {
                        state.peek(slot).prefetch_rows();
                    }
                    if change.is_truncate() {
                        let version = change.version.as_ref();
                        truncate(
                            state,
                            side,
                            version,
                            &mut floors[side as usize],
                            &mut touched,
                        );
                    } else {
                        let Change {
                            key,
                            version,
                            time_ms,
                            row,
                        } = change;
                        let known = state.len();
                        let slot = state.slot(&key);
                        if let Some(claims) = claims.as_ref().filter(|_| state.len() > known) {
                            claims.claim(&key);
                        }
                        let ks = state.at(slot);
                        let outcome = apply(
                            &mut ks.sides[side as usize],
                            floors[side as usize].as_ref(),
                            version,
                            time_ms,
                            time,
                            row,
                        );
                        counts[side as usize][outcome as usize] += 1;
                        if outcome == Outcome::Applied && !ks.touched {
                            ks.touched = true;
                            touched.push(slot);
                        }
                    }
                    // After a time's last change, its touched keys are compared, and then
                    // its timers fire.
                    if ready > 0 && pending.first() == Some(time) {
                        continue;
                    }
                    for slot in touched.drain(..) {
                        state.at(slot).touched = false;
                        grace.compared(key_at(state, slot), time, &mut out);
                    }
                    fire(state, grace, |t| t <= time, &mut out);
                    if out.len() >= OUT_CHUNK {
                        give(output, cap, &mut out);
                    }
                }
                // Timers of completed times without changes (every timer, once time ends).
                fire(state, grace, done, &mut out);
                give(output, cap, &mut out);
                grace.record_lags();
                for side in SideId::BOTH {
                    let [applied, duplicate, stale] = counts[side as usize];
                    let c = grace.stats.side(side);
                    add(&c.applied, applied);
                    add(&c.duplicate, duplicate);
                    add(&c.stale, stale);
                }
                match pending.first().into_iter().chain(grace.next_timer()).min() {
                    Some(t) => cap.downgrade(&t.max(*cap.time())),
                    None => held = None,
                }
                let mut s = sizes.inner.borrow_mut();
                s.keys = keyed.keys.len();
                drop(keyed);
                s.pending = pending.len();
            }
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Applied = 0,
    Duplicate = 1,
    Stale = 2,
}

/// Empties `side` at a truncate of `version` (`None`: unversioned, every row goes):
/// every row older than it is deleted, and the deletes are remembered at its version.
fn truncate(
    state: &mut Table<KeyState>,
    side: SideId,
    version: Option<&Version>,
    floor: &mut Option<Version>,
    touched: &mut Vec<usize>,
) {
    if let Some(v) = version {
        if floor.as_ref().is_none_or(|f| f < v) {
            *floor = Some(v.clone());
        }
    }
    state.for_each_mut(|_, slot, ks| {
        let Some(entry) = ks.sides[side as usize].as_mut() else {
            return;
        };
        match version {
            Some(v) if entry.version >= *v => return,
            Some(v) => entry.version = v.clone(),
            None => {}
        }
        if entry.row.take().is_some() && !ks.touched {
            ks.touched = true;
            touched.push(slot);
        }
    });
}

/// The version gate for one side of one key (`floor`: the side's last truncate).
fn apply(
    entry: &mut Option<SideEntry>,
    floor: Option<&Version>,
    version: Option<Version>,
    time_ms: Option<u64>,
    time: Time,
    row: Option<crate::row::Row>,
) -> Outcome {
    let version = match (entry.as_ref(), version) {
        (None, Some(v)) if floor.is_some_and(|f| v <= *f) => return Outcome::Stale,
        (None, v) => v.unwrap_or(Version::Num(0)),
        (Some(old), Some(v)) => match v.cmp(&old.version) {
            std::cmp::Ordering::Greater => v,
            std::cmp::Ordering::Equal => return Outcome::Duplicate,
            std::cmp::Ordering::Less => return Outcome::Stale,
        },
        // No version (an upsert delete): applies after whatever the key holds.
        (Some(old), None) if row.is_none() && old.row.is_none() => return Outcome::Duplicate,
        (Some(old), None) => old.version.clone(),
    };
    // A value the capture did not send (a TOAST placeholder the decoder recognised, on
    // a side whose capture sends them) did not change: the previous value stands.
    let row = row.map(|r| {
        let previous = entry.as_ref().and_then(|e| e.row.as_ref());
        crate::row::fill_unavailable(&r, previous).unwrap_or(r)
    });
    *entry = Some(SideEntry {
        version,
        ts_ms: time_ms.unwrap_or(time),
        row,
    });
    Outcome::Applied
}

#[derive(Default)]
struct SizeInner {
    keys: usize,
    pending: usize,
}

/// Sizes of a worker's state, for the state-stays-flat test and metrics.
#[derive(Clone, Default)]
pub struct SizeProbe {
    inner: Rc<RefCell<SizeInner>>,
}

/// A snapshot of a worker's state sizes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sizes {
    /// Keys held (seen on either side, deletes included).
    pub keys: usize,
    /// Changes received but not yet applied (their time is not complete).
    pub pending: usize,
}

impl SizeProbe {
    /// Current sizes.
    pub fn sizes(&self) -> Sizes {
        let inner = self.inner.borrow();
        Sizes {
            keys: inner.keys,
            pending: inner.pending,
        }
    }
}

/// A worker's keyed state, shared between the operator and the checkpointing driver.
#[derive(Clone)]
pub struct SidesState(Rc<RefCell<Keyed>>);

/// Every key's state, each side's last truncate, and the grace timers.
struct Keyed {
    keys: Table<KeyState>,
    /// Per side, the version of its last truncate: a change at or below it predates the
    /// truncate and is stale, even for a key this worker has never seen.
    floors: [Option<Version>; 2],
    grace: Grace,
    /// Where the keys new to this worker are claimed (inputs declared co-partitioned).
    claims: Option<super::claims::Claims>,
}

impl SidesState {
    /// No keys: rows compared under `rules`, a difference reported once it has lasted
    /// `grace_ms`, counted in `stats`.
    pub fn new(rules: Arc<CompareRules>, stats: Arc<Stats>, grace_ms: u64) -> Self {
        SidesState(Rc::new(RefCell::new(Keyed {
            keys: Table::default(),
            floors: [None, None],
            grace: Grace::new(rules, stats, grace_ms),
            claims: None,
        })))
    }

    /// Claims every key added to the state from now on in `claims`.
    pub fn claim_into(&self, claims: super::claims::Claims) {
        self.0.borrow_mut().claims = Some(claims);
    }

    /// The state as checkpoint entries.
    pub fn snapshot(&self) -> Vec<crate::checkpoint::state::KeyEntry> {
        use crate::checkpoint::{state, Bytes};
        let side = |e: &Option<SideEntry>| {
            e.as_ref().map(|e| state::SideEntry {
                version: Bytes::from(&*e.version.encoded()),
                row_ts_ms: if e.row.is_some() { e.ts_ms } else { 0 },
                row: e.row.as_ref().map(|r| Bytes::from(r.as_bytes())),
            })
        };
        self.0
            .borrow()
            .keys
            .iter()
            .map(|(k, s)| state::KeyEntry {
                key: Bytes::from(k.as_bytes()),
                source: side(&s.sides[0]),
                target: side(&s.sides[1]),
                drifting: u64::from(s.episode.open),
            })
            .collect()
    }

    /// The open grace episodes as checkpoint entries.
    pub fn episodes(&self) -> Vec<crate::checkpoint::state::EpisodeEntry> {
        let keyed = self.0.borrow();
        let mut entries = Vec::new();
        keyed.keys.for_each(|key, slot, s| {
            if s.episode.open {
                entries.push(keyed.grace.entry(key, slot, &s.episode));
            }
        });
        entries
    }

    /// Each side's last truncate version, encoded (for checkpoints).
    pub fn floors(&self) -> [Option<Vec<u8>>; 2] {
        let keyed = self.0.borrow();
        keyed
            .floors
            .each_ref()
            .map(|f| f.as_ref().map(|v| v.encoded().into_owned()))
    }

    /// Raises each side's last truncate version to a restored one.
    pub fn restore_floors(&self, floors: [Option<Vec<u8>>; 2]) {
        let mut keyed = self.0.borrow_mut();
        for (floor, restored) in keyed.floors.iter_mut().zip(floors) {
            let Some(v) = restored.map(|b| Version::from_encoded(&b)) else {
                continue;
            };
            if floor.as_ref().is_none_or(|f| *f < v) {
                *floor = Some(v);
            }
        }
    }

    /// Adds restored entries; a malformed entry is an error.
    pub fn restore(&self, entries: &[crate::checkpoint::state::KeyEntry]) -> anyhow::Result<()> {
        let bad = || anyhow::anyhow!("checkpoint holds a malformed key entry");
        let side = |e: &Option<crate::checkpoint::state::SideEntry>| {
            e.as_ref()
                .map(|e| {
                    let row = match &e.row {
                        Some(b) => {
                            Some(crate::row::Row::from_encoded(&b.to_vec().ok_or_else(bad)?))
                        }
                        None => None,
                    };
                    Ok::<_, anyhow::Error>(SideEntry {
                        version: Version::from_encoded(&e.version.to_vec().ok_or_else(bad)?),
                        ts_ms: e.row_ts_ms,
                        row,
                    })
                })
                .transpose()
        };
        let keyed = &mut *self.0.borrow_mut();
        let map = &mut keyed.keys;
        for e in entries {
            let key = Key::from_encoded(&e.key.to_vec().ok_or_else(bad)?);
            // Claimed as a key the state adds (inputs declared co-partitioned).
            if let Some(claims) = &keyed.claims {
                claims.claim(&key);
            }
            // Its episode, if open, is restored by `restore_episodes`.
            let state = KeyState {
                sides: [side(&e.source)?, side(&e.target)?],
                episode: Episode::default(),
                touched: false,
            };
            map.insert(key, state);
        }
        Ok(())
    }

    /// Restores grace episodes, each of a key restored before (by [`SidesState::restore`])
    /// whose sides differ; anything else is an error.
    pub fn restore_episodes(
        &self,
        entries: &[crate::checkpoint::state::EpisodeEntry],
    ) -> anyhow::Result<()> {
        let bad = || anyhow::anyhow!("checkpoint holds a malformed grace episode");
        let Keyed { keys, grace, .. } = &mut *self.0.borrow_mut();
        for e in entries {
            let key = Key::from_encoded(&e.key.to_vec().ok_or_else(bad)?);
            let slot = keys
                .slot_of(&key)
                .ok_or_else(|| anyhow::anyhow!("checkpoint holds an episode for a key in sync"))?;
            grace.restore(e, key_at(keys, slot))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::{RowBuilder, ValueRef};

    /// The key `{"id": id}`.
    pub(super) fn key(id: i64) -> Key {
        let mut b = RowBuilder::default();
        b.push("id", ValueRef::Int(id)).unwrap();
        b.finish_key()
    }

    fn mysql(pos: i64, row: i64) -> Version {
        use crate::cdc::version::tests_support::parts;
        parts(&format!("mysql-bin.000003:{pos}:{row}"))
    }

    /// A key's state is most of the keyed state's memory beside the rows: thin rows and
    /// versions keep it at 88 bytes with its grace episode (120 with fat pointers).
    #[test]
    fn a_key_state_is_small() {
        assert_eq!(std::mem::size_of::<Version>(), 16);
        assert_eq!(std::mem::size_of::<Option<SideEntry>>(), 32);
        assert_eq!(std::mem::size_of::<KeyState>(), 88);
    }

    #[test]
    fn the_gate_and_checkpoints_keep_composite_versions_and_truncates() {
        let mut b = RowBuilder::default();
        b.push("id", ValueRef::Int(1)).unwrap();
        let row = b.finish_row();
        let mut entry = None;
        let go = |e: &mut Option<SideEntry>, floor: Option<&Version>, v: Version, r| {
            apply(e, floor, Some(v), Some(5), 5, r)
        };
        assert_eq!(
            go(&mut entry, None, mysql(154, 1), Some(row.clone())),
            Outcome::Applied
        );
        assert_eq!(
            go(&mut entry, None, mysql(154, 1), Some(row.clone())),
            Outcome::Duplicate
        );
        assert_eq!(go(&mut entry, None, mysql(154, 0), None), Outcome::Stale);
        assert_eq!(go(&mut entry, None, mysql(1540, 0), None), Outcome::Applied);
        // A delete is remembered: an older insert does not bring the row back.
        assert_eq!(
            go(&mut entry, None, mysql(200, 0), Some(row.clone())),
            Outcome::Stale
        );
        // A key never seen is stale below the side's last truncate.
        let floor = mysql(900, 0);
        assert_eq!(
            go(&mut None, Some(&floor), mysql(800, 0), Some(row.clone())),
            Outcome::Stale
        );
        assert_eq!(
            go(&mut None, Some(&floor), mysql(901, 0), Some(row)),
            Outcome::Applied
        );

        let state = SidesState::new(Arc::default(), Arc::default(), 0);
        state.0.borrow_mut().keys.insert(
            key(1),
            KeyState {
                sides: [None, entry],
                episode: Episode::default(),
                touched: false,
            },
        );
        state.0.borrow_mut().floors[1] = Some(floor.clone());
        let restored = SidesState::new(Arc::default(), Arc::default(), 0);
        restored.restore(&state.snapshot()).unwrap();
        restored.restore_floors(state.floors());
        let keyed = restored.0.borrow();
        let side = keyed.keys.get(&key(1)).unwrap().sides[1].as_ref().unwrap();
        assert_eq!(
            (side.version.clone(), side.row.is_none()),
            (mysql(1540, 0), true)
        );
        assert_eq!(keyed.floors[1], Some(floor));
    }
}
