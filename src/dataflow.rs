//! The drift dataflow (timely), from decoded changes to output records.
//!
//! ```text
//! source changes ─exchange(key)─┐  (truncates: broadcast)
//!                               ├─ sides (both sides' keyed state, drift and grace per key) → sink
//! target changes ─exchange(key)─┘
//! ```
//!
//! - [`sides`]: per key, both sides' version-gated rows (O(keys)), compared after every
//!   event time that touched the key: missing, orphan, mismatch; and the key's grace
//!   episode;
//! - [`grace`]: the episodes' event-time timers: a difference is reported once it lasted
//!   `grace`, resolved when it heals, and each open record yields its correction;
//! - [`render`]: outputs rendered as bytes on the workers that make them, for a sink
//!   that writes bytes;
//! - [`sink`]: outputs in event-time order on worker 0.
//!
//! Timestamps are event times in ms (rounded to the spec's resolution). State is one
//! entry per key and changes not yet complete (bounded by `max_read_ahead`), so memory
//! is proportional to keys, not to history.

pub mod claims;
pub mod grace;
pub mod render;
pub mod route;
pub mod sides;
pub mod sink;
pub mod stats;
mod timed;

use crate::cdc::{Change, Origin, SideId, Version};
use crate::row::{CompareRules, FieldDiff, Key, Row};
use crate::spec::Spec;
use render::RenderOutputs;
use route::{ExchangeChanges, Packed};
use serde::{Deserialize, Serialize};
use sides::Sides;
use sink::Deliver;
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
    pub version: Version,
    /// The event time of that change, in ms (as read, before rounding).
    pub ts_ms: u64,
    /// The row.
    pub row: Row,
}

/// A side's row as the keyed state holds it, borrowed: what a key's sides are compared
/// by, made a [`SideRow`] only for a divergence that is reported.
#[derive(Debug, Clone, Copy)]
pub struct SideRowRef<'a> {
    /// Which side.
    pub side: SideId,
    /// The version of the change that produced the row.
    pub version: &'a Version,
    /// The event time of that change, in ms (as read, before rounding).
    pub ts_ms: u64,
    /// The row.
    pub row: &'a Row,
}

impl SideRowRef<'_> {
    fn to_owned(self) -> SideRow {
        SideRow {
            side: self.side,
            version: self.version.clone(),
            ts_ms: self.ts_ms,
            row: self.row.clone(),
        }
    }
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

    /// The kind named `name` as in records.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

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
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Meta {
    /// The row's version.
    pub version: Version,
    /// The row's event time in ms.
    pub ts_ms: u64,
}

/// What the sides operator emits for a key whose sides differ: the kind and the rows.
///
/// It is cheap to make and to compare (the rows are shared, not copied) because most
/// differences are replication lag that heals within grace; the field-level details are
/// worked out only for the ones that get reported ([`Divergence::details`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// What kind of difference.
    pub kind: DriftKind,
    /// The source's row, if the source has the key.
    pub source: Option<SideRow>,
    /// The target's row, if the target has the key.
    pub target: Option<SideRow>,
}

impl Divergence {
    /// The kind of difference between two sides' rows, if any, without making the
    /// divergence: most differences heal within grace, and their rows are never needed.
    pub(crate) fn kind_between(
        rules: &CompareRules,
        source: Option<SideRowRef<'_>>,
        target: Option<SideRowRef<'_>>,
    ) -> Option<DriftKind> {
        match (source, target) {
            (None, None) => None,
            (Some(_), None) => Some(DriftKind::Missing),
            (None, Some(_)) => Some(DriftKind::Orphan),
            (Some(s), Some(t)) if rules.equal(s.row, t.row) => None,
            (Some(_), Some(_)) => Some(DriftKind::Mismatch),
        }
    }

    /// The divergence of `kind` (as [`Divergence::kind_between`] found it) between two
    /// sides' rows.
    pub(crate) fn of_kind(
        kind: DriftKind,
        source: Option<SideRowRef<'_>>,
        target: Option<SideRowRef<'_>>,
    ) -> Divergence {
        Divergence {
            kind,
            source: source.map(SideRowRef::to_owned),
            target: target.map(SideRowRef::to_owned),
        }
    }

    /// The record's details: differing fields, where each side's row came from, and the
    /// source row (the correction's upsert).
    pub fn details(&self, rules: &CompareRules) -> DriftState {
        let meta = |r: &SideRow| Meta {
            version: r.version.clone(),
            ts_ms: r.ts_ms,
        };
        let fields = match (&self.source, &self.target) {
            (Some(s), Some(t)) => rules.diff(&s.row, &t.row),
            _ => Vec::new(),
        };
        DriftState {
            kind: self.kind,
            fields,
            source: self.source.as_ref().map(meta),
            target: self.target.as_ref().map(meta),
            source_row: self.source.as_ref().map(|s| s.row.clone()),
        }
    }
}

/// The difference for one key at one time, as drift records carry it.
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

impl Output {
    /// Which of the outputs it is.
    pub fn lane(&self) -> Lane {
        match self {
            Output::Drift(_) => Lane::Drift,
            Output::Correction(_) => Lane::Correction,
            Output::DeadLetter(_) => Lane::DeadLetter,
        }
    }
}

/// The three outputs, in the order a time's outputs are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Lane {
    /// Drift records.
    Drift,
    /// Corrections.
    Correction,
    /// Dead letters.
    DeadLetter,
}

/// An output rendered, on the worker that made it, as the bytes its sink writes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Rendered {
    /// Which output it was.
    pub lane: Lane,
    /// Its bytes (for the file sink, its JSON line).
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

/// Renders outputs as bytes, on every worker: for a sink that writes bytes, the workers
/// that make the outputs render them, and worker 0's sink only writes them.
pub trait Render: Send + Sync + 'static {
    /// Appends `output`'s bytes to `bytes`.
    fn render(&self, output: &Output, bytes: &mut Vec<u8>) -> anyhow::Result<()>;
}

/// Receives outputs on worker 0, one completed event time at a time, sorted.
pub trait Sink: 'static {
    /// All outputs at event time `time`, in a deterministic order.
    fn emit(&mut self, time: Time, outputs: &[Output]) -> anyhow::Result<()>;
    /// All outputs at event time `time`, rendered by the entity's [`Render`], sorted
    /// (by lane, then by bytes). Only an entity with a renderer calls it.
    fn emit_rendered(&mut self, time: Time, rendered: &[Rendered]) -> anyhow::Result<()> {
        let _ = (time, rendered);
        anyhow::bail!("this sink takes outputs, not rendered outputs")
    }
    /// Time has ended (every input closed): deliver whatever is still buffered.
    fn finish(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
    /// Deliver everything emitted so far, now (before a checkpoint is written).
    fn flush(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// The sink, shared by the sink operator and the driver (which flushes it before a
/// checkpoint). `None` on workers other than 0.
pub type SharedSink = std::rc::Rc<std::cell::RefCell<Option<Box<dyn Sink>>>>;

/// The inputs and progress handles of one worker's dataflow.
pub struct Handles {
    /// Source changes, each with its effective (rounded, clamped) event time, packed
    /// for the workers that keep their keys by a [`route::Packer`].
    pub source: InputHandleVec<Time, Packed>,
    /// Target changes, likewise.
    pub target: InputHandleVec<Time, Packed>,
    /// Truncates ([`Change::truncate`]) of the source, then of the target: sent to every
    /// worker, since every worker holds some of the side's rows.
    pub truncates: [InputHandleVec<Time, (Change, Time)>; 2],
    /// Dead letters found while decoding, with their partition's event time.
    pub dead: InputHandleVec<Time, (Output, Time)>,
    /// Progress of the whole dataflow, outputs included.
    pub probe: ProbeHandle<Time>,
    /// Size of the keyed state (for tests and metrics).
    pub sizes: sides::SizeProbe,
    /// The operators' state, for checkpoints.
    pub state: State,
    /// The sink (worker 0).
    pub sink: SharedSink,
}

/// A worker's operator state, as checkpoints write and restore it.
#[derive(Clone)]
pub struct State {
    /// Both sides' keyed state, with its grace episodes and timers.
    pub sides: sides::SidesState,
}

/// Where a worker watches its dataflows' progress. Several entities' dataflows in one
/// worker share them: each frontier is then the least of theirs.
#[derive(Clone, Default)]
pub struct Probes {
    /// The whole dataflow, outputs included: a time it has passed is complete, delivered
    /// and safe to checkpoint.
    pub outputs: ProbeHandle<Time>,
    /// The sides operator's inputs: every worker's inputs have passed its frontier, so
    /// what the operator buffers is what has been read beyond it. The read loop's
    /// allowance (`max_read_ahead`) is measured from here, not from the outputs, which
    /// trail by the time the operators take: measured from the outputs, two workers
    /// waited for each other at every batch (a 1,024-message batch moves a partition
    /// about as far as the allowance).
    pub inputs: ProbeHandle<Time>,
}

/// Builds the dataflow on a worker. `sink` receives every output, on worker 0 only.
pub fn build(
    worker: &mut timely::worker::Worker,
    spec: &Spec,
    stats: Arc<Stats>,
    sink: Option<Box<dyn Sink>>,
) -> Handles {
    build_probed(
        worker,
        spec,
        stats,
        sink,
        None,
        &Probes::default(),
        Arc::default(),
    )
}

/// [`build`], reporting progress to `probes`, and an output's failure to `halt`. With
/// `render` (on every worker), each worker renders the outputs it makes, and the sink
/// is given them rendered ([`Sink::emit_rendered`]).
pub fn build_probed(
    worker: &mut timely::worker::Worker,
    spec: &Spec,
    stats: Arc<Stats>,
    sink: Option<Box<dyn Sink>>,
    render: Option<Arc<dyn Render>>,
    probes: &Probes,
    halt: Arc<crate::job::Halt>,
) -> Handles {
    let probe = probes.outputs.clone();
    let rules = Arc::new(CompareRules::new(spec));
    let grace_ms = spec.grace.as_millis();
    let mut source = InputHandleVec::new();
    let mut target = InputHandleVec::new();
    let mut truncates = [InputHandleVec::new(), InputHandleVec::new()];
    let mut dead = InputHandleVec::new();
    let sizes = sides::SizeProbe::default();
    let shared_sink: SharedSink = std::rc::Rc::new(std::cell::RefCell::new(sink));
    let state = State {
        sides: sides::SidesState::new(rules, stats.clone(), grace_ms),
    };
    worker.dataflow::<Time, _, _>(|scope| {
        let read = &probes.inputs;
        let changes = |i: &mut InputHandleVec<Time, Packed>| {
            i.to_stream(scope).probe_with(read).exchange_changes()
        };
        let outputs = changes(&mut source).sides(
            changes(&mut target),
            truncates
                .each_mut()
                .map(|i| i.to_stream(scope).probe_with(read)),
            sizes.clone(),
            state.sides.clone(),
        );
        if spec.co_partitioned {
            let claims = claims::Claims::default();
            state.sides.claim_into(claims.clone());
            use claims::CheckClaims;
            let checked = outputs
                .clone()
                .check_claims(claims, &spec.entity, halt.clone());
            checked.probe_with(&probe);
        }
        let all = outputs.concat(dead.to_stream(scope));
        let delivered = match render {
            Some(render) => all.render(render, halt.clone()).exchange(|_| 0).deliver(
                shared_sink.clone(),
                stats,
                halt,
            ),
            None => all
                .exchange(|_| 0)
                .deliver(shared_sink.clone(), stats, halt),
        };
        delivered.probe_with(&probe);
    });
    Handles {
        source,
        target,
        truncates,
        dead,
        probe,
        sizes,
        state,
        sink: shared_sink,
    }
}
