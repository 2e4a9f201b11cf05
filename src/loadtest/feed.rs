//! Generated streams fed in real time: each message is released when the wall clock
//! reaches its event time, so event time is wall-clock time and detection latency can
//! be read off the clock.

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
}

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
        }
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
        while read < max {
            let Some((time, line)) = self.lines.get(self.next) else {
                break;
            };
            if *time > now {
                break;
            }
            self.due = self.due.max(*time);
            late.push(now - self.due);
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
