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

/// A sink that scores drift records as they arrive.
pub struct MeasureSink {
    truth: Arc<Truth>,
    grace_ms: u64,
    detections: Arc<Mutex<Detections>>,
    latency: Arc<Mutex<Histogram<u64>>>,
}

impl MeasureSink {
    /// Scores against `truth`, recording latencies in ms beyond `grace_ms`.
    pub fn new(
        truth: Arc<Truth>,
        grace_ms: u64,
        detections: Arc<Mutex<Detections>>,
        latency: Arc<Mutex<Histogram<u64>>>,
    ) -> Self {
        MeasureSink {
            truth,
            grace_ms,
            detections,
            latency,
        }
    }
}

/// An order id from a drift record's key.
fn order_id(key: &crate::row::Key) -> Option<i64> {
    let v = serde_json::to_value(JsonKey(key)).ok()?;
    v.get("id")?.as_i64()
}

impl Sink for MeasureSink {
    fn emit(&mut self, _time: Time, outputs: &[Output]) -> anyhow::Result<()> {
        let now = now_ms();
        let mut d = self
            .detections
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        for o in outputs {
            let Output::Drift(r) = o else { continue };
            if r.status != Status::Open {
                continue;
            }
            let Some(id) = order_id(&r.key) else { continue };
            let episode = (id, r.since);
            if !self.truth.contains(&episode) {
                d.unexpected.push((id, r.drift.kind, r.since));
            } else if let std::collections::btree_map::Entry::Vacant(v) = d.found.entry(episode) {
                // The first report of the episode: latency from when it became due.
                v.insert(now);
                let due = r.since + self.grace_ms;
                if let Ok(mut h) = self.latency.lock() {
                    let _ = h.record(now.saturating_sub(due));
                }
            }
        }
        Ok(())
    }
}
