//! Closing the loop: the detector's corrections applied to the simulated replica, and
//! the time it takes the replica to converge.
//!
//! The scoring sink hands each correction to [`Repairs`]; the replica's feed writes it
//! as the replica's own next change (a CDC event with a log position between the
//! replica's last one and its next, at the wall-clock time it is applied), as a JDBC
//! sink connector writing the corrections topic into the replica would cause. The drift
//! changelog then shows each repaired difference resolve; [`Convergence`] measures how
//! long that took and whether, once the load has ended, no drift is left open.

use crate::dataflow::Status;
use crate::demo::generator::REPLICA_LSN_STEP;
use hdrhistogram::Histogram;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Corrections waiting to be applied to the replica: (order id, row JSON or `None` to
/// delete).
#[derive(Default)]
pub struct Repairs {
    queue: Mutex<VecDeque<(i64, Option<String>)>>,
    applied: std::sync::atomic::AtomicU64,
}

impl Repairs {
    /// Queues a correction.
    pub fn push(&self, id: i64, row: Option<String>) {
        if let Ok(mut q) = self.queue.lock() {
            q.push_back((id, row));
        }
    }

    /// Takes the next queued correction.
    pub fn pop(&self) -> Option<(i64, Option<String>)> {
        let next = self.queue.lock().ok()?.pop_front();
        if next.is_some() {
            self.applied
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        next
    }

    /// Corrections applied to the replica so far.
    pub fn applied(&self) -> u64 {
        self.applied.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Log positions for applied corrections: after the replica's newest position and
/// before its next, which are [`REPLICA_LSN_STEP`] apart.
#[derive(Debug, Default)]
pub struct Positions {
    base: u64,
    written: u64,
}

impl Positions {
    /// The replica's newest position is now at least `lsn`.
    pub fn seen(&mut self, lsn: u64) {
        if lsn > self.base {
            (self.base, self.written) = (lsn, 0);
        }
    }

    /// Whether a position is free before the replica's next one.
    pub fn has_room(&self) -> bool {
        self.written + 1 < REPLICA_LSN_STEP
    }

    /// The next free position; the last one again once the gap is full.
    pub fn take(&mut self) -> u64 {
        if self.has_room() {
            self.written += 1;
        }
        self.base + self.written
    }
}

/// The replica's CDC event for an applied correction, at log position `lsn` and event
/// time `ts_ms`.
pub fn replica_event(id: i64, row: Option<&str>, lsn: u64, ts_ms: u64) -> String {
    let source = format!(r#""source":{{"connector":"replica","ts_ms":{ts_ms},"lsn":{lsn}}}"#);
    match row {
        Some(row) => format!(r#"{{"before":null,"after":{row},{source},"op":"u"}}"#),
        None => format!(r#"{{"before":{{"id":{id}}},"after":null,{source},"op":"d"}}"#),
    }
}

/// Open drift over wall-clock time: how long each reported difference stayed open, and
/// when the last one closed.
pub struct Convergence {
    /// Open differences by order id, with the wall-clock ms they were first reported.
    open: HashMap<i64, u64>,
    /// Wall-clock ms from a difference's first report to its resolution.
    pub repair_ms: Histogram<u64>,
    /// When open drift last fell to zero (wall-clock ms).
    pub last_zero_ms: Option<u64>,
}

impl Default for Convergence {
    fn default() -> Self {
        Convergence {
            open: HashMap::new(),
            repair_ms: Histogram::new(3).expect("3 significant digits"),
            last_zero_ms: None,
        }
    }
}

impl Convergence {
    /// A drift record of order `id` seen at wall-clock `now`.
    pub fn record(&mut self, id: i64, status: Status, now: u64) {
        match status {
            Status::Open => {
                self.open.entry(id).or_insert(now);
            }
            Status::Resolved => {
                if let Some(opened) = self.open.remove(&id) {
                    let _ = self.repair_ms.record(now.saturating_sub(opened));
                }
                if self.open.is_empty() {
                    self.last_zero_ms = Some(now);
                }
            }
        }
    }

    /// Differences still open.
    pub fn open(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrections_become_replica_events_the_decoder_reads() {
        let spec = crate::spec::load_str(crate::demo::ORDERS_SPEC).unwrap();
        let mut decoder = crate::cdc::Decoder::new(&spec, crate::cdc::SideId::Target);
        for line in [
            replica_event(7, Some(r#"{"id":7,"status":"paid"}"#), 5_001_001, 1_000),
            replica_event(8, None, 5_002_001, 1_001),
        ] {
            let msg = crate::cdc::Message {
                key: None,
                value: Some(line.as_bytes()),
                timestamp_ms: None,
            };
            assert!(
                matches!(decoder.decode(&msg), Ok(crate::cdc::Decoded::Change(_))),
                "{line}"
            );
        }
    }

    #[test]
    fn corrections_take_positions_between_the_replicas_own() {
        let mut p = Positions::default();
        p.seen(5_000);
        assert_eq!((p.take(), p.take()), (5_001, 5_002));
        p.seen(4_000); // older: no change
        assert_eq!(p.take(), 5_003);
        p.seen(6_000);
        assert_eq!(p.take(), 6_001);
        for _ in 0..2 * REPLICA_LSN_STEP {
            p.take();
        }
        assert!(!p.has_room());
        assert_eq!(
            p.take(),
            6_000 + REPLICA_LSN_STEP - 1,
            "never the next one's"
        );
    }

    #[test]
    fn convergence_times_each_difference_and_the_last_resolution() {
        let mut c = Convergence::default();
        c.record(1, Status::Open, 100);
        c.record(2, Status::Open, 110);
        c.record(1, Status::Open, 120); // a detail change: still open since 100
        c.record(1, Status::Resolved, 300);
        assert_eq!((c.open(), c.last_zero_ms), (1, None));
        c.record(2, Status::Resolved, 400);
        assert_eq!((c.open(), c.last_zero_ms), (0, Some(400)));
        assert_eq!(c.repair_ms.len(), 2);
        assert_eq!(c.repair_ms.max(), 290);
    }
}
