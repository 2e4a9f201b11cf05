//! What the harness measures: detection latency against the ground truth, found / missed /
//! false drift, and the input rate over time.

use crate::dataflow::{DriftKind, Output, Sink, Status, Time};
use crate::io::now_ms;
use crate::row::JsonKey;
use hdrhistogram::Histogram;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// The ground truth: every episode of difference that outlasts the grace period, as
/// (order id, event time it began). Each must be reported, and nothing else.
pub type Truth = BTreeSet<(i64, u64)>;

/// Detections, shared between the sink (worker 0) and the harness.
#[derive(Default)]
pub struct Detections {
    /// Episodes of the truth reported, and when (wall ms).
    pub found: BTreeMap<(i64, u64), u64>,
    /// Open records that match no episode of the truth: (id, kind, since).
    pub unexpected: Vec<(i64, DriftKind, u64)>,
}

/// Scores drift records against the truth as they arrive: the in-process sink and the
/// Kafka mode's drift-topic consumer share it.
#[derive(Clone)]
pub struct Scorer {
    truth: Arc<Truth>,
    grace_ms: u64,
    /// What was found, and what was not in the truth.
    pub detections: Arc<Mutex<Detections>>,
    /// Detection latencies beyond grace (ms) of the episodes due while input flowed.
    pub latency: Arc<Mutex<Histogram<u64>>>,
    /// The same for episodes due after the last message: with no input left, a job
    /// over Kafka moves its clock only with the wall clock less its clock-skew
    /// allowance, so these measure that allowance, not the detector.
    pub tail_latency: Arc<Mutex<Histogram<u64>>>,
    /// The event time of the last message of the load.
    last_ms: u64,
}

impl Scorer {
    /// Scores against `truth`, recording latencies in ms beyond `grace_ms`, split at
    /// `last_ms`, the event time of the load's last message.
    pub fn new(truth: Arc<Truth>, grace_ms: u64, last_ms: u64) -> Self {
        let hist = || Arc::new(Mutex::new(Histogram::new(3).expect("3 significant digits")));
        Scorer {
            truth,
            grace_ms,
            detections: Arc::default(),
            latency: hist(),
            tail_latency: hist(),
            last_ms,
        }
    }

    /// The truth scored against.
    pub fn truth(&self) -> &Truth {
        &self.truth
    }

    /// An open drift record of order `id`, of `kind`, open since `since` (event ms),
    /// seen at wall-clock `now` (ms).
    pub fn open(&self, id: i64, kind: DriftKind, since: u64, now: u64) -> anyhow::Result<()> {
        let mut d = self
            .detections
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        let episode = (id, since);
        if !self.truth.contains(&episode) {
            d.unexpected.push((id, kind, since));
        } else if let std::collections::btree_map::Entry::Vacant(v) = d.found.entry(episode) {
            // The first report of the episode: latency from when it became due.
            v.insert(now);
            let due = since + self.grace_ms;
            let hist = if due <= self.last_ms {
                &self.latency
            } else {
                &self.tail_latency
            };
            if let Ok(mut h) = hist.lock() {
                let _ = h.record(now.saturating_sub(due));
            }
        }
        Ok(())
    }
}

/// A sink that scores drift records as they arrive (in process), and with the loop
/// closed hands corrections to the replica.
pub struct MeasureSink {
    /// Scores open records against the truth.
    pub scorer: Scorer,
    /// Where corrections go when the loop is closed.
    pub repairs: Option<Arc<super::repair::Repairs>>,
    /// Open drift over wall-clock time.
    pub convergence: Arc<Mutex<super::repair::Convergence>>,
}

/// An order id from a drift record's key.
fn order_id(key: &crate::row::Key) -> Option<i64> {
    let v = serde_json::to_value(JsonKey(key)).ok()?;
    v.get("id")?.as_i64()
}

impl Sink for MeasureSink {
    fn emit(&mut self, _time: Time, outputs: &[Output]) -> anyhow::Result<()> {
        let now = now_ms();
        let mut convergence = self
            .convergence
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        for o in outputs {
            match o {
                Output::Drift(r) => {
                    let Some(id) = order_id(&r.key) else { continue };
                    convergence.record(id, r.status, now);
                    if r.status == Status::Open {
                        self.scorer.open(id, r.drift.kind, r.since, now)?;
                    }
                }
                Output::Correction(c) => {
                    if let (Some(repairs), Some(id)) = (&self.repairs, order_id(&c.key)) {
                        repairs.push(id, crate::io::render::correction_value(c));
                    }
                }
                Output::DeadLetter(_) => {}
            }
        }
        Ok(())
    }
}
