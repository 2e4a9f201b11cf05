//! The drift dataflow (timely + differential), from decoded changes to output records.
//!
//! ```text
//! source changes ─exchange(key)→ gate ─┐
//!                                      ├─ concat → arrange_by_key → reduce (drift per key) → grace → outputs
//! target changes ─exchange(key)→ gate ─┘
//! ```
//!
//! - [`gate`]: per side, the version-gated upsert state (O(keys)), emitting row changes;
//! - [`drift`]: per key, the outer comparison of both sides: missing, orphan, mismatch;
//! - [`grace`]: event-time timers: a difference is reported once it lasted `grace`,
//!   resolved when it heals, and each open record yields its correction.
//!
//! Timestamps are event times in ms (rounded to the spec's resolution). Because the gate
//! state is per key and the arrangements are compacted as the frontier advances, memory
//! is proportional to keys, not to history.

pub mod drift;
pub mod gate;
pub mod grace;
pub mod stats;

use crate::cdc::{Change, Origin, SideId};
use crate::row::{CompareRules, FieldDiff, Key, Row};
use crate::spec::Spec;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use timely::dataflow::operators::{Concat, Exchange, Probe};
use timely::dataflow::{InputHandleVec, ProbeHandle};

pub use stats::Stats;

/// Logical time: event time in milliseconds since the epoch.
pub type Time = u64;

/// One side's current row for a key, as held in the side's collection.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SideRow {
    /// Which side.
    pub side: SideId,
    /// The version of the change that produced the row.
    pub version: u64,
    /// The event time of that change, in ms (as read, before rounding).
    pub ts_ms: u64,
    /// The row.
    pub row: Row,
}

/// Kinds of drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftKind {
    /// In the source, not in the target.
    Missing,
    /// In the target, not in the source.
    Orphan,
    /// In both, rows differ.
    Mismatch,
}

impl DriftKind {
    /// All kinds, for summaries.
    pub const ALL: [DriftKind; 3] = [DriftKind::Missing, DriftKind::Orphan, DriftKind::Mismatch];

    /// The kind's name as in records.
    pub fn name(self) -> &'static str {
        match self {
            DriftKind::Missing => "missing",
            DriftKind::Orphan => "orphan",
            DriftKind::Mismatch => "mismatch",
        }
    }
}

/// Where a side's row came from: its version and event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Meta {
    /// The row's version.
    pub version: u64,
    /// The row's event time in ms.
    pub ts_ms: u64,
}

/// The difference for one key at one time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DriftState {
    /// What kind of difference.
    pub kind: DriftKind,
    /// For `mismatch`, the differing columns.
    pub fields: Vec<FieldDiff>,
    /// The source row's position, if the source has the key.
    pub source: Option<Meta>,
    /// The target row's position, if the target has the key.
    pub target: Option<Meta>,
    /// The source row (the correction's upsert), if the source has the key.
    pub source_row: Option<Row>,
}

/// Whether a drift record opens (or updates) a difference or resolves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The difference is present.
    Open,
    /// The difference healed.
    Resolved,
}

/// A drift changelog record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DriftRecord {
    /// The entity key.
    pub key: Key,
    /// Open or resolved.
    pub status: Status,
    /// The difference (for resolved records, the last one reported).
    pub drift: DriftState,
    /// Event time at which the key went out of sync.
    pub since: Time,
    /// Event time at which this record was produced.
    pub reported: Time,
    /// Event time at which the difference healed (resolved records).
    pub resolved: Option<Time>,
}

/// A correction: make the target's row for `key` equal the source's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Correction {
    /// The entity key.
    pub key: Key,
    /// The drift kind that caused it.
    pub kind: DriftKind,
    /// The source row to upsert, or `None` to delete.
    pub row: Option<Row>,
}

/// A message that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The side whose input carried it.
    pub side: SideId,
    /// Where it came from.
    pub origin: Origin,
    /// Why it was rejected.
    pub reason: String,
    /// The message key, if any.
    pub key: Option<Vec<u8>>,
    /// The message value, if any (cut at `max_message_bytes`).
    pub value: Option<Vec<u8>>,
    /// Whether the value was cut.
    pub truncated: bool,
}

/// Everything the dataflow emits, in event-time order per output.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Output {
    /// A drift changelog record.
    Drift(DriftRecord),
    /// A correction.
    Correction(Correction),
    /// A dead letter.
    DeadLetter(DeadLetter),
}

/// Receives outputs on worker 0, one completed event time at a time, sorted.
pub trait Sink: 'static {
    /// All outputs at event time `time`, in a deterministic order.
    fn emit(&mut self, time: Time, outputs: &[Output]) -> anyhow::Result<()>;
}

/// The inputs and progress handles of one worker's dataflow.
pub struct Handles {
    /// Source changes, each with its effective (rounded, clamped) event time.
    pub source: InputHandleVec<Time, (Change, Time)>,
    /// Target changes, likewise.
    pub target: InputHandleVec<Time, (Change, Time)>,
    /// Dead letters found while decoding, with their partition's event time.
    pub dead: InputHandleVec<Time, (Output, Time)>,
    /// Progress of the whole dataflow, outputs included.
    pub probe: ProbeHandle<Time>,
    /// Size of the per-side state and arrangements (for tests and metrics).
    pub sizes: gate::SizeProbe,
}

/// Builds the dataflow on a worker. `sink` receives every output, on worker 0 only.
pub fn build(
    worker: &mut timely::worker::Worker,
    spec: &Spec,
    stats: Arc<Stats>,
    sink: Option<Box<dyn Sink>>,
) -> Handles {
    let rules = Arc::new(CompareRules::new(spec));
    let grace_ms = spec.grace.as_millis();
    let mut source = InputHandleVec::new();
    let mut target = InputHandleVec::new();
    let mut dead = InputHandleVec::new();
    let probe = ProbeHandle::new();
    let sizes = gate::SizeProbe::default();
    worker.dataflow::<Time, _, _>(|scope| {
        let src = gate::gate(
            source.to_stream(scope),
            SideId::Source,
            stats.clone(),
            sizes.clone(),
        );
        let tgt = gate::gate(
            target.to_stream(scope),
            SideId::Target,
            stats.clone(),
            sizes.clone(),
        );
        let arranged = src.concat(tgt).arrange_by_key_named("SideRows");
        sizes.watch(arranged.trace.clone());
        let drift = drift::drift(arranged, rules);
        let outputs = grace::grace(drift.inner, grace_ms, stats.clone());
        let all = outputs.concat(dead.to_stream(scope)).exchange(|_| 0);
        grace::sink(all, sink, stats).probe_with(&probe);
    });
    Handles {
        source,
        target,
        dead,
        probe,
        sizes,
    }
}
