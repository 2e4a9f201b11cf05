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

use super::stats::add;
use super::{Correction, DriftKind, DriftRecord, DriftState, Output, Sink, Stats, Status, Time};
use crate::row::{Key, Row};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;

struct Episode {
    since: Time,
    current: DriftState,
    reported: bool,
    corrected: Option<(DriftKind, Option<Row>)>,
}

type Update = ((Key, DriftState), Time, isize);

/// Turns the drift collection's updates into drift records and corrections.
pub fn grace<'s>(
    drift: Stream<'s, Time, Vec<Update>>,
    grace_ms: u64,
    stats: Arc<Stats>,
) -> Stream<'s, Time, Vec<(Output, Time)>> {
    drift.unary_frontier(Pipeline, "Grace", move |_, _| {
        let mut pending: BTreeMap<Time, Vec<(Key, DriftState, isize)>> = BTreeMap::new();
        let mut timers: BTreeMap<Time, Vec<Key>> = BTreeMap::new();
        let mut episodes: HashMap<Key, Episode> = HashMap::new();
        let mut held: Option<Capability<Time>> = None;
        let mut lags = Vec::new();
        move |(input, frontier), output| {
            input.for_each(|cap, data| {
                if let Some(c) = cap.retain_least(0) {
                    if held.as_ref().is_none_or(|h| c.time() < h.time()) {
                        held = Some(c);
                    }
                }
                for ((key, state), time, diff) in data.drain(..) {
                    pending.entry(time).or_default().push((key, state, diff));
                }
            });
            let Some(cap) = held.as_mut() else { return };
            let done = |t: Time| !frontier.less_equal(&t);
            let mut out: Vec<(Output, Time)> = Vec::new();
            loop {
                let next_data = pending.keys().next().copied().filter(|&t| done(t));
                let next_timer = timers
                    .keys()
                    .next()
                    .copied()
                    .filter(|&t| done(t) || frontier.is_empty());
                let now = match (next_data, next_timer) {
                    (None, None) => break,
                    (Some(d), Some(t)) => d.min(t),
                    (Some(d), None) => d,
                    (None, Some(t)) => t,
                };
                if next_data == Some(now) {
                    let mut updates = pending.remove(&now).unwrap_or_default();
                    updates.sort();
                    let mut i = 0;
                    while i < updates.len() {
                        let key = updates[i].0.clone();
                        let mut new_state = None;
                        while i < updates.len() && updates[i].0 == key {
                            let (_, state, diff) = &updates[i];
                            if *diff > 0 {
                                new_state = Some(state.clone());
                            }
                            i += 1;
                        }
                        change(
                            &mut episodes,
                            &mut timers,
                            &mut out,
                            &stats,
                            &mut lags,
                            key,
                            new_state,
                            now,
                            grace_ms,
                        );
                    }
                }
                if next_timer == Some(now) {
                    for key in timers.remove(&now).unwrap_or_default() {
                        if let Some(ep) = episodes.get_mut(&key) {
                            if !ep.reported && ep.since + grace_ms == now {
                                ep.reported = true;
                                stats.add_open(ep.current.kind, 1);
                                open(&mut out, ep, key, now);
                            }
                        }
                    }
                }
            }
            out.sort_by_key(|(_, t)| *t);
            for chunk in out.chunk_by(|a, b| a.1 == b.1) {
                let c = cap.delayed(&chunk[0].1);
                output.session(&c).give_iterator(chunk.iter().cloned());
            }
            stats.record_sync_lag(&lags);
            lags.clear();
            let next = pending
                .keys()
                .next()
                .into_iter()
                .chain(timers.keys().next())
                .min()
                .copied();
            match next {
                Some(t) => cap.downgrade(&t.max(*cap.time())),
                None => held = None,
            }
        }
    })
}

#[allow(clippy::too_many_arguments)]
fn change(
    episodes: &mut HashMap<Key, Episode>,
    timers: &mut BTreeMap<Time, Vec<Key>>,
    out: &mut Vec<(Output, Time)>,
    stats: &Stats,
    lags: &mut Vec<u64>,
    key: Key,
    new_state: Option<DriftState>,
    now: Time,
    grace_ms: u64,
) {
    match (episodes.get_mut(&key), new_state) {
        (None, None) => {}
        (None, Some(state)) => {
            timers.entry(now + grace_ms).or_default().push(key.clone());
            episodes.insert(
                key,
                Episode {
                    since: now,
                    current: state,
                    reported: false,
                    corrected: None,
                },
            );
        }
        (Some(ep), Some(state)) => {
            if ep.current != state {
                if ep.reported {
                    stats.add_open(ep.current.kind, -1);
                    stats.add_open(state.kind, 1);
                    ep.current = state;
                    open(out, ep, key, now);
                } else {
                    ep.current = state;
                }
            }
        }
        (Some(_), None) => {
            let ep = episodes.remove(&key).expect("present");
            lags.push(now - ep.since);
            if ep.reported {
                stats.add_open(ep.current.kind, -1);
                let record = DriftRecord {
                    key,
                    status: Status::Resolved,
                    drift: ep.current,
                    since: ep.since,
                    reported: now,
                    resolved: Some(now),
                };
                out.push((Output::Drift(record), now));
            }
        }
    }
}

fn open(out: &mut Vec<(Output, Time)>, ep: &mut Episode, key: Key, now: Time) {
    let fix = match ep.current.kind {
        DriftKind::Orphan => (DriftKind::Orphan, None),
        kind => (kind, ep.current.source_row.clone()),
    };
    // A kind change between missing and mismatch keeps the same upsert: not re-emitted.
    if ep.corrected.as_ref().map(|(_, r)| r) != Some(&fix.1) {
        out.push((
            Output::Correction(Correction {
                key: key.clone(),
                kind: fix.0,
                row: fix.1.clone(),
            }),
            now,
        ));
        ep.corrected = Some(fix);
    }
    let record = DriftRecord {
        key,
        status: Status::Open,
        drift: ep.current.clone(),
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
    mut sink: Option<Box<dyn Sink>>,
    stats: Arc<Stats>,
) -> Stream<'s, Time, Vec<()>> {
    outputs.unary_frontier::<timely::container::CapacityContainerBuilder<Vec<()>>, _, _, _>(
        Pipeline,
        "Sink",
        move |_, _| {
            let mut stash: BTreeMap<Time, Vec<Output>> = BTreeMap::new();
            let mut failed = false;
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
                    if let (Some(s), false) = (sink.as_mut(), failed) {
                        if let Err(e) = s.emit(time, &outputs) {
                            // The sink remembers its error; the job reports it at the end.
                            failed = true;
                            stats.set_sink_error(format!("{e:#}"));
                        }
                    }
                }
            }
        },
    )
}
