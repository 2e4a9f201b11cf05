//! The report as a view over the drift changelog, maintained by differential dataflow.
//!
//! The drift topics are changelogs: the latest record per key is the truth. Differential's
//! upsert arrangement turns that stream of `(key, latest record or tombstone)` into the
//! collection of current records, retracting each key's previous record itself; the
//! report consumes that collection's changes, so every aggregate (open drift by entity
//! and kind, resolved keys, fields that differ, the oldest open records) is updated by
//! the change alone, never recomputed from the whole log, however long `--follow` runs.

use crate::dataflow::DriftKind;
use crate::io::record::DriftMessage;
use differential_dataflow::operators::arrange::upsert::arrange_from_upsert;
use differential_dataflow::trace::implementations::{ValBuilder, ValSpine};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::InputHandleVec;
use timely::worker::Worker;

/// What the view keeps of a record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct Entry {
    open: bool,
    since_ms: u64,
    entity: String,
    kind: DriftKind,
    fields: Vec<String>,
    /// The record as JSON text, for the listing.
    json: String,
}

impl Entry {
    pub(crate) fn of(r: &DriftMessage) -> Entry {
        Entry {
            open: r.status == crate::dataflow::Status::Open,
            since_ms: r.since_ms,
            entity: r.entity.clone(),
            kind: r.kind,
            fields: r.fields.iter().map(|f| f.field.clone()).collect(),
            json: serde_json::to_string(r).unwrap_or_default(),
        }
    }
}

/// The aggregates, kept up to date from the view's changes.
#[derive(Debug, Default)]
pub(crate) struct Aggregates {
    /// Open records by (entity, kind).
    pub(crate) open: BTreeMap<(String, DriftKind), i64>,
    /// Keys whose latest record is resolved.
    pub(crate) resolved: i64,
    /// Open records that list each (entity, field).
    pub(crate) fields: BTreeMap<(String, String), i64>,
    /// The open records by (since, key, record): the oldest first. (A key's old and new
    /// record may share since and key, and their changes come in either order.)
    pub(crate) oldest: BTreeMap<(u64, String, String), i64>,
    /// Whether anything changed since the flag was last cleared.
    pub(crate) changed: bool,
}

/// Adds `diff` to `key`'s count, forgetting keys whose count is back to zero.
fn add<K: Ord>(map: &mut BTreeMap<K, i64>, key: K, diff: i64) {
    match map.entry(key) {
        std::collections::btree_map::Entry::Occupied(mut e) => {
            *e.get_mut() += diff;
            if *e.get() == 0 {
                e.remove();
            }
        }
        std::collections::btree_map::Entry::Vacant(e) => {
            e.insert(diff);
        }
    }
}

/// The changelog's view: a timely worker of its own, stepped as records arrive.
pub(crate) struct View {
    worker: Worker,
    input: InputHandleVec<u64, (String, Option<Entry>, u64)>,
    probe: ProbeHandle<u64>,
    time: u64,
    pub(crate) state: Rc<RefCell<Aggregates>>,
}

impl View {
    pub(crate) fn new() -> View {
        let alloc = timely::communication::Allocator::Thread(Default::default());
        let mut worker = Worker::new(Default::default(), alloc, Some(std::time::Instant::now()));
        let mut input = InputHandleVec::new();
        let probe = ProbeHandle::new();
        let state = Rc::new(RefCell::new(Aggregates::default()));
        let s = state.clone();
        worker.dataflow::<u64, _, _>(|scope| {
            let latest = arrange_from_upsert::<
                ValBuilder<String, Entry, u64, isize>,
                ValSpine<String, Entry, u64, isize>,
                String,
                Entry,
            >(input.to_stream(scope), "Changelog");
            latest
                .as_collection(|k: &String, v: &Entry| (k.clone(), v.clone()))
                .inspect(move |((key, e), _time, diff)| {
                    let diff = *diff as i64;
                    let mut s = s.borrow_mut();
                    s.changed = true;
                    if !e.open {
                        s.resolved += diff;
                        return;
                    }
                    add(&mut s.open, (e.entity.clone(), e.kind), diff);
                    for f in &e.fields {
                        add(&mut s.fields, (e.entity.clone(), f.clone()), diff);
                    }
                    add(
                        &mut s.oldest,
                        (e.since_ms, key.clone(), e.json.clone()),
                        diff,
                    );
                })
                .probe_with(&probe);
        });
        View {
            worker,
            input,
            probe,
            time: 0,
            state,
        }
    }

    /// Records the latest record of `key` (`None`: a tombstone, the key is forgotten).
    /// Each record takes a time of its own: the upsert arrangement resolves records of one
    /// key at one time by value, not by arrival.
    pub(crate) fn upsert(&mut self, key: String, record: Option<Entry>) {
        self.input.send((key, record, self.time));
        self.time += 1;
    }

    /// Brings the aggregates up to date with everything upserted; whether they changed.
    pub(crate) fn settle(&mut self) -> bool {
        self.time += 1;
        self.input.advance_to(self.time);
        while self.probe.less_than(self.input.time()) {
            self.worker.step();
        }
        std::mem::take(&mut self.state.borrow_mut().changed)
    }
}
