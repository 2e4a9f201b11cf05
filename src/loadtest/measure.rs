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
    /// Detection latencies beyond grace (ms).
    pub latency: Arc<Mutex<Histogram<u64>>>,
}

impl Scorer {
    /// Scores against `truth`, recording latencies in ms beyond `grace_ms`.
    pub fn new(truth: Arc<Truth>, grace_ms: u64) -> Self {
        Scorer {
            truth,
            grace_ms,
            detections: Arc::default(),
            latency: Arc::new(Mutex::new(Histogram::new(3).expect("3 significant digits"))),
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
            if let Ok(mut h) = self.latency.lock() {
                let _ = h.record(now.saturating_sub(due));
            }
        }
        Ok(())
    }
}

/// A sink that scores drift records as they arrive (in process).
pub struct MeasureSink(pub Scorer);

/// An order id from a drift record's key.
fn order_id(key: &crate::row::Key) -> Option<i64> {
    let v = serde_json::to_value(JsonKey(key)).ok()?;
    v.get("id")?.as_i64()
}

impl Sink for MeasureSink {
    fn emit(&mut self, _time: Time, outputs: &[Output]) -> anyhow::Result<()> {
        let now = now_ms();
        for o in outputs {
            let Output::Drift(r) = o else { continue };
            if r.status != Status::Open {
                continue;
            }
            let Some(id) = order_id(&r.key) else { continue };
            self.0.open(id, r.drift.kind, r.since, now)?;
        }
        Ok(())
    }
}
