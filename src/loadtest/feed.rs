//! Generated streams fed in real time: each message is released when the wall clock
//! reaches its event time, so event time is wall-clock time and detection latency can
//! be read off the clock.

use super::repair::{replica_event, Positions, Repairs};
use crate::cdc::{Message, Origin, SideId};
use crate::io::{now_ms, Partition, Poll};
use hdrhistogram::Histogram;
use std::sync::{Arc, Mutex};

/// One side's messages with their event times, released on schedule.
pub struct TimedPartition {
    side: SideId,
    lines: Arc<Vec<(u64, String)>>,
    next: usize,
    /// The newest event time released: a message behind it (reordered, redelivered) is
    /// due with the one before it.
    due: u64,
    /// After the last message, keep time moving until then (so grace can fire).
    until_ms: u64,
    /// How late (ms) each message was released: the feed falling behind its schedule.
    lateness: Arc<Mutex<Histogram<u64>>>,
    /// A wall-clock window [from, until) in which the partition delivers nothing (a
    /// stalled partition: its messages wait, its time does not move).
    stall: Option<(u64, u64)>,
    /// Closing the loop: corrections to apply, and the log position of each scheduled
    /// message (a correction goes in between the last one released and the next).
    repairs: Option<(Arc<Repairs>, Arc<Vec<u64>>)>,
    /// Where the next correction goes in the replica's log.
    positions: Positions,
    /// Corrections written.
    written: u64,
}

/// Positions of written corrections (for dead-letter origins), apart from the
/// schedule's.
const REPAIR_POSITIONS: u64 = 1 << 48;

impl TimedPartition {
    /// `lines` in release order with their event times; runs until `until_ms`.
    pub fn new(
        side: SideId,
        lines: Arc<Vec<(u64, String)>>,
        until_ms: u64,
        lateness: Arc<Mutex<Histogram<u64>>>,
    ) -> Self {
        TimedPartition {
            side,
            lines,
            next: 0,
            due: 0,
            until_ms,
            lateness,
            stall: None,
            repairs: None,
            positions: Positions::default(),
            written: 0,
        }
    }

    /// Applies `repairs` (the replica's side): `lsns` are the scheduled messages' log
    /// positions.
    pub fn repaired(mut self, repairs: Arc<Repairs>, lsns: Arc<Vec<u64>>) -> Self {
        self.repairs = Some((repairs, lsns));
        self
    }

    /// Stalls the partition for the wall-clock window `[from_ms, until_ms)`.
    pub fn stalled(mut self, from_ms: u64, until_ms: u64) -> Self {
        self.stall = Some((from_ms, until_ms));
        self
    }

    fn stalled_now(&self, now: u64) -> bool {
        self.stall
            .is_some_and(|(from, until)| now >= from && now < until)
    }
}

impl Partition for TimedPartition {
    fn side(&self) -> SideId {
        self.side
    }

    fn poll(&mut self, max: usize, f: &mut dyn FnMut(&Message<'_>, u64)) -> anyhow::Result<Poll> {
        let now = now_ms();
        if self.stalled_now(now) {
            return Ok(Poll::Idle);
        }
        let mut late = Vec::new();
        let mut read = 0;
        if let Some((repairs, _)) = &self.repairs {
            // Corrections are the replica's next writes, now.
            while read < max && self.positions.has_room() {
                let Some((id, row)) = repairs.pop() else {
                    break;
                };
                self.written += 1;
                let lsn = self.positions.take();
                let line = replica_event(id, row.as_deref(), lsn, now);
                let msg = Message {
                    key: None,
                    value: Some(line.as_bytes()),
                    timestamp_ms: Some(now as i64),
                };
                f(&msg, REPAIR_POSITIONS + self.written);
                read += 1;
            }
        }
        while read < max {
            let Some((time, line)) = self.lines.get(self.next) else {
                break;
            };
            if *time > now {
                break;
            }
            self.due = self.due.max(*time);
            late.push(now - self.due);
            if let Some(lsn) = self.repairs.as_ref().and_then(|(_, l)| l.get(self.next)) {
                self.positions.seen(*lsn);
            }
            self.next += 1;
            read += 1;
            let msg = Message {
                key: None,
                value: Some(line.as_bytes()),
                timestamp_ms: Some(*time as i64),
            };
            f(&msg, self.next as u64);
        }
        if let Ok(mut h) = self.lateness.lock() {
            for l in late {
                let _ = h.record(l);
            }
        }
        Ok(match read {
            0 if self.next >= self.lines.len() && now >= self.until_ms => Poll::Done,
            0 => Poll::Idle,
            _ => Poll::Ready,
        })
    }

    fn heartbeat(&mut self) -> Option<u64> {
        // Everything due has been released: the wall clock is this input's time. (A
        // stalled partition has due messages, so it holds time back, as a lagging
        // Kafka partition does.)
        let now = now_ms();
        let caught_up = self.lines.get(self.next).is_none_or(|(t, _)| *t > now);
        (caught_up && !self.stalled_now(now)).then_some(now)
    }

    fn origin(&self, position: u64) -> Origin {
        Origin::Generated {
            stream: self.side.name().into(),
            seq: position,
        }
    }
}
