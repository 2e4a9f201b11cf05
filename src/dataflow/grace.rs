//! Grace in event time, drift records and corrections; and the ordered output sink.
//!
//! A key's *episode* is a maximal interval of event time during which its sides differ.
//! It is reported (an `open` record) once it has lasted `grace`: at `since + grace`, if
//! it is still open after that time's changes. While reported, every change of its
//! details yields a new `open` record, and healing yields a `resolved` one. Episodes
//! that heal within grace are never reported; how long every episode lasted is the
//! observed sync lag. When time ends (files exhausted), all pending timers fire.
//!
//! Corrections follow open records: an upsert of the source row (missing, mismatch) or
//! a delete (orphan), emitted again only when it would differ from the last one.

use super::sides::DriftUpdate;
use super::stats::add;
use super::timed::Timed;
use super::{Correction, Divergence, DriftKind, DriftRecord, Output, Stats, Status, Time};
use crate::row::CompareRules;
use crate::row::{Key, Row};
use crate::FastMap;
use std::collections::BTreeMap;
use std::sync::Arc;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;

struct Episode {
    since: Time,
    current: Divergence,
    reported: bool,
    corrected: Option<(DriftKind, Option<Row>)>,
}

/// One worker's episodes and timers, and what the current activation produced.
pub struct Episodes {
    rules: Arc<CompareRules>,
    stats: Arc<Stats>,
    grace_ms: u64,
    open: FastMap<Key, Episode>,
    /// Each episode's grace timer, in time order: an episode begins at the time being
    /// processed, which only grows, so a timer goes to the back (a queue, not a map of
    /// a vector per time: that cost an allocation per episode).
    timers: Timed<Key>,
    out: Vec<(Output, Time)>,
    lags: Vec<u64>,
}

/// A worker's grace episodes, shared between the operator and the checkpointing driver.
#[derive(Clone)]
pub struct GraceState(std::rc::Rc<std::cell::RefCell<Episodes>>);

impl GraceState {
    /// Empty state.
    pub fn new(rules: Arc<CompareRules>, stats: Arc<Stats>, grace_ms: u64) -> Self {
        GraceState(std::rc::Rc::new(std::cell::RefCell::new(Episodes {
            rules,
            stats,
            grace_ms,
            open: FastMap::default(),
            timers: Timed::default(),
            out: Vec::new(),
            lags: Vec::new(),
        })))
    }

    /// The open episodes as checkpoint entries.
    pub fn snapshot(&self) -> Vec<crate::checkpoint::state::EpisodeEntry> {
        use crate::checkpoint::Bytes;
        self.0
            .borrow()
            .open
            .iter()
            .map(|(key, ep)| crate::checkpoint::state::EpisodeEntry {
                key: Bytes::from(key.as_bytes()),
                since: ep.since,
                reported: u64::from(ep.reported),
                corrected: ep.corrected.as_ref().map(|(kind, row)| {
                    (
                        *kind as u64,
                        row.as_ref().map(|r| Bytes::from(r.as_bytes())),
                    )
                }),
            })
            .collect()
    }

    /// Restores episodes; each one's divergence is recomputed from the restored sides.
    pub fn restore(
        &self,
        entries: &[crate::checkpoint::state::EpisodeEntry],
        sides: &super::sides::SidesState,
    ) -> anyhow::Result<()> {
        let bad = || anyhow::anyhow!("checkpoint holds a malformed grace episode");
        let mut eps = self.0.borrow_mut();
        for e in entries {
            let key = Key::from_encoded(&e.key.to_vec().ok_or_else(bad)?);
            let current = sides
                .divergence(&key, &eps.rules)
                .ok_or_else(|| anyhow::anyhow!("checkpoint holds an episode for a key in sync"))?;
            let corrected = match &e.corrected {
                None => None,
                Some((kind, row)) => {
                    let kind = *DriftKind::ALL.get(*kind as usize).ok_or_else(bad)?;
                    let row = match row {
                        Some(b) => Some(Row::from_encoded(&b.to_vec().ok_or_else(bad)?)),
                        None => None,
                    };
                    Some((kind, row))
                }
            };
            let reported = e.reported != 0;
            if reported {
                eps.stats.add_open(current.kind, 1);
            } else {
                let at = e.since + eps.grace_ms;
                eps.timers.push(at, key.clone());
            }
            let episode = Episode {
                since: e.since,
                current,
                reported,
                corrected,
            };
            eps.open.insert(key, episode);
        }
        Ok(())
    }
}

/// Turns the drift updates into drift records and corrections.
pub fn grace<'s>(
    drift: Stream<'s, Time, Vec<(DriftUpdate, Time)>>,
    shared: GraceState,
) -> Stream<'s, Time, Vec<(Output, Time)>> {
    drift.unary_frontier(Pipeline, "Grace", move |initial, _| {
        // The sides operator sends its updates in time order: a queue, not a map.
        let mut pending: Timed<DriftUpdate> = Timed::default();
        // The initial capability serves timers restored from a checkpoint; it is
        // dropped at the first activation when there are none.
        let mut held: Option<Capability<Time>> = Some(initial);
        let shared = shared.0;
        move |(input, frontier), output| {
            let mut eps = shared.borrow_mut();
            input.for_each(|cap, data| {
                if let Some(c) = cap.retain_least(0) {
                    if held.as_ref().is_none_or(|h| c.time() < h.time()) {
                        held = Some(c);
                    }
                }
                for (update, time) in data.drain(..) {
                    pending.push(time, update);
                }
            });
            let Some(cap) = held.as_mut() else { return };
            let done = |t: Time| !frontier.less_equal(&t);
            loop {
                let next_data = pending.first().filter(|&t| done(t));
                let next_timer = eps
                    .timers
                    .first()
                    .filter(|&t| done(t) || frontier.is_empty());
                let now = match (next_data, next_timer) {
                    (None, None) => break,
                    (Some(d), Some(t)) => d.min(t),
                    (Some(d), None) => d,
                    (None, Some(t)) => t,
                };
                if next_data == Some(now) {
                    // One update per key and time (the sides operator's contract).
                    while let Some((key, new)) = pending.pop_at(now) {
                        eps.change(key, new, now);
                    }
                }
                if next_timer == Some(now) {
                    while let Some(key) = eps.timers.pop_at(now) {
                        eps.fire(key, now);
                    }
                }
            }
            // Hand the outputs over (moved, not cloned) in one message at the least of
            // their times: each record carries its own, which the sink orders by.
            if let Some(first) = eps.out.iter().map(|(_, t)| *t).min() {
                output
                    .session(&cap.delayed(&first))
                    .give_container(&mut eps.out);
                eps.out.clear();
            }
            eps.stats.record_sync_lag(&eps.lags);
            eps.lags.clear();
            let next = pending.first().into_iter().chain(eps.timers.first()).min();
            match next {
                Some(t) => cap.downgrade(&t.max(*cap.time())),
                None => held = None,
            }
        }
    })
}

impl Episodes {
    /// The key's divergence is now `new` (`None`: back in sync).
    fn change(&mut self, key: Key, new: Option<Divergence>, now: Time) {
        match (self.open.get_mut(&key), new) {
            (None, None) => {}
            (None, Some(current)) => {
                self.timers.push(now + self.grace_ms, key.clone());
                let episode = Episode {
                    since: now,
                    current,
                    reported: false,
                    corrected: None,
                };
                self.open.insert(key, episode);
            }
            (Some(ep), Some(current)) => {
                if ep.current != current {
                    if ep.reported {
                        self.stats.add_open(ep.current.kind, -1);
                        self.stats.add_open(current.kind, 1);
                        ep.current = current;
                        report(&mut self.out, &self.rules, ep, key, now);
                    } else {
                        ep.current = current;
                    }
                }
            }
            (Some(_), None) => {
                let ep = self.open.remove(&key).expect("present");
                self.lags.push(now - ep.since);
                if ep.reported {
                    self.stats.add_open(ep.current.kind, -1);
                    let record = DriftRecord {
                        key,
                        status: Status::Resolved,
                        drift: ep.current.details(&self.rules),
                        since: ep.since,
                        reported: now,
                        resolved: Some(now),
                    };
                    self.out.push((Output::Drift(record), now));
                }
            }
        }
    }

    /// The grace timer set when `key`'s episode began fires at `now`.
    fn fire(&mut self, key: Key, now: Time) {
        if let Some(ep) = self.open.get_mut(&key) {
            if !ep.reported && ep.since + self.grace_ms == now {
                ep.reported = true;
                self.stats.add_open(ep.current.kind, 1);
                report(&mut self.out, &self.rules, ep, key, now);
            }
        }
    }
}

/// An `open` record for a reported episode, after its correction if that changed.
fn report(
    out: &mut Vec<(Output, Time)>,
    rules: &CompareRules,
    ep: &mut Episode,
    key: Key,
    now: Time,
) {
    let fix = match ep.current.kind {
        DriftKind::Orphan => (DriftKind::Orphan, None),
        kind => (kind, ep.current.source.as_ref().map(|s| s.row.clone())),
    };
    // A kind change between missing and mismatch keeps the same upsert: not re-emitted.
    if ep.corrected.as_ref().map(|(_, r)| r) != Some(&fix.1) {
        out.push((
            Output::Correction(Correction {
                key: key.clone(),
                kind: fix.0,
                row: fix.1.as_ref().map(|r| rules.target_names(r)),
            }),
            now,
        ));
        ep.corrected = Some(fix);
    }
    let record = DriftRecord {
        key,
        status: Status::Open,
        drift: ep.current.details(rules),
        since: ep.since,
        reported: now,
        resolved: None,
    };
    out.push((Output::Drift(record), now));
}

/// Delivers outputs to `sink` one completed event time at a time, sorted, so that the
/// same input yields the same output files whatever the number of workers.
pub fn sink<'s>(
    outputs: Stream<'s, Time, Vec<(Output, Time)>>,
    sink: super::SharedSink,
    stats: Arc<Stats>,
    halt: Arc<crate::job::Halt>,
) -> Stream<'s, Time, Vec<()>> {
    outputs.unary_frontier::<timely::container::CapacityContainerBuilder<Vec<()>>, _, _, _>(
        Pipeline,
        "Sink",
        move |_, _| {
            let mut stash: BTreeMap<Time, Vec<Output>> = BTreeMap::new();
            let (mut failed, mut finished) = (false, false);
            move |(input, frontier), _output| {
                input.for_each(|_cap, data| {
                    for (o, t) in data.drain(..) {
                        stash.entry(t).or_default().push(o);
                    }
                });
                while let Some(entry) = stash.first_entry() {
                    if frontier.less_equal(entry.key()) {
                        break;
                    }
                    let (time, mut outputs) = entry.remove_entry();
                    outputs.sort();
                    for o in &outputs {
                        match o {
                            Output::Drift(_) => add(&stats.drift_records, 1),
                            Output::Correction(_) => add(&stats.corrections, 1),
                            Output::DeadLetter(_) => {}
                        }
                    }
                    if let (Some(s), false) = (sink.borrow_mut().as_mut(), failed) {
                        if let Err(e) = s.emit(time, &outputs) {
                            // The sink remembers its error; the job reports it at the end.
                            failed = true;
                            halt.output_failed(format!("{e:#}"));
                        }
                    }
                }
                if frontier.is_empty() && !finished {
                    finished = true;
                    if let (Some(s), false) = (sink.borrow_mut().as_mut(), failed) {
                        if let Err(e) = s.finish() {
                            failed = true;
                            halt.output_failed(format!("{e:#}"));
                        }
                    }
                }
            }
        },
    )
}
