//! Counters shared by a process's workers: events by side and outcome, drift, sync lag.

use crate::cdc::SideId;
use crate::dataflow::DriftKind;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// One input partition's position, for metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct PartitionGauge {
    /// The side it feeds.
    pub side: Option<SideId>,
    /// Messages between the read position and the high watermark.
    pub lag: i64,
    /// Its event-time progress (ms).
    pub progress_ms: u64,
}

/// What happened to each message of a side.
#[derive(Debug, Default)]
pub struct SideCounters {
    /// Messages read.
    pub read: AtomicU64,
    /// Changes applied to the side's state.
    pub applied: AtomicU64,
    /// Changes ignored: same version as the key's current one.
    pub duplicate: AtomicU64,
    /// Changes ignored: older than the key's current version.
    pub stale: AtomicU64,
    /// Messages rejected to the dead-letter output.
    pub rejected: AtomicU64,
    /// Messages that carry no change (tombstones).
    pub skipped: AtomicU64,
    /// Debezium events that are not row changes, by [`crate::cdc::NonRow`] kind.
    pub non_row: [AtomicU64; 4],
    /// Truncates (`op` `t`) read.
    pub truncates: AtomicU64,
}

/// Process-wide counters.
#[derive(Debug)]
pub struct Stats {
    sides: [SideCounters; 2],
    open: [AtomicI64; 3],
    /// Drift records emitted.
    pub drift_records: AtomicU64,
    /// Corrections emitted.
    pub corrections: AtomicU64,
    /// How long healed differences lasted (ms of event time).
    pub sync_lag: Mutex<Histogram<u64>>,
    /// Input partitions by (topic, partition).
    pub partitions: Mutex<BTreeMap<(String, i32), PartitionGauge>>,
    /// The dataflow's output frontier (ms of event time; 0 before the first).
    pub frontier_ms: AtomicU64,
    /// Messages of shared inputs that no entity's `select` took (skipped).
    pub unselected: AtomicU64,
    /// Client errors reported by Kafka (librdkafka retries them).
    pub kafka_errors: AtomicU64,
    /// Checkpoint files written by this process's workers.
    pub checkpoints: AtomicU64,
    /// Wall-clock time (ms) of the last Kafka client error, 0 if none.
    pub last_kafka_error_ms: AtomicU64,
    /// The source's row schema, as its decoders in this process last saw it.
    pub source_schema: crate::cdc::RowSchema,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            sides: Default::default(),
            open: Default::default(),
            drift_records: AtomicU64::new(0),
            corrections: AtomicU64::new(0),
            sync_lag: Mutex::new(Histogram::new(3).expect("3 significant digits is valid")),
            partitions: Mutex::new(BTreeMap::new()),
            frontier_ms: AtomicU64::new(0),
            unselected: AtomicU64::new(0),
            kafka_errors: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            last_kafka_error_ms: AtomicU64::new(0),
            source_schema: Default::default(),
        }
    }
}

impl Stats {
    /// The counters of one side.
    pub fn side(&self, side: SideId) -> &SideCounters {
        &self.sides[side as usize]
    }

    /// Open drift of a kind, as reported so far.
    pub fn open(&self, kind: DriftKind) -> i64 {
        self.open[kind as usize].load(Relaxed)
    }

    /// Adjusts the open drift count of a kind.
    pub fn add_open(&self, kind: DriftKind, delta: i64) {
        self.open[kind as usize].fetch_add(delta, Relaxed);
    }

    /// Records how long a healed difference lasted.
    pub fn record_sync_lag(&self, lags: &[u64]) {
        if lags.is_empty() {
            return;
        }
        if let Ok(mut h) = self.sync_lag.lock() {
            for &lag in lags {
                // `record` grows the auto-resizing histogram; `saturating_record` does
                // not, and clamps to its initial tiny range.
                if h.record(lag).is_err() {
                    h.saturating_record(lag);
                }
            }
        }
    }
}

/// Adds `n` to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    if n != 0 {
        counter.fetch_add(n, Relaxed);
    }
}
