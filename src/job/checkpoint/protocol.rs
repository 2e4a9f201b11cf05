//! Consistent checkpoints at one event time on every worker.
//!
//! Checkpoint opportunities are event times ("boundaries"). Every worker holds its inputs
//! at the current boundary B. Once the dataflow's frontier reaches B, every change
//! before B has been applied everywhere, and nothing at or after B has been. At that
//! point worker 0 decides whether to write a checkpoint at B: it writes one if
//! `min_wall_interval` of wall-clock time has passed since the last, which keeps a fast
//! replay from writing one at every boundary. Worker 0 also picks the next boundary,
//! and broadcasts both through a small control dataflow, so every worker (in every
//! process) acts on the same decision.
//!
//! On a yes, each worker writes its keyed state, its grace episodes, and, per input
//! partition, the first offset at or after B. Changes already read at or after B are
//! not written: they are read again after a restore. Worker 0 flushes the sink first,
//! so every output before B is delivered before a checkpoint at B can be complete.
//!
//! A worker's inputs stay held at B until it has written its own state at B, even the
//! inputs of a worker that has no partitions or has read all of them: the others' changes
//! reach its keyed state through the exchange, and an input it dropped would no longer
//! keep them from being applied past B before it writes. So a worker that has read
//! everything keeps holding, and says so on a small dataflow of its own; once every
//! worker has, worker 0's next decision is the last (its next boundary is the end of
//! time), and the inputs close.

use crate::checkpoint::state::{OffsetEntry, WorkerState};
use crate::checkpoint::store::Store;
use crate::checkpoint::Bytes;
use crate::dataflow::Time;
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Inspect, Probe};
use timely::dataflow::{InputHandleVec, ProbeHandle};

/// (boundary, write a checkpoint?, next boundary).
type Decision = (Time, bool, Time);

/// Where a partition's event time rose: the first position read at `time`, and the
/// progress to restore so that position gets the same time again.
#[derive(Debug, Clone, Copy)]
pub struct Rise {
    /// The new progress.
    pub time: Time,
    /// The position of the first message read at it.
    pub position: i64,
    /// The progress to restore for a resume at `position`.
    pub restore: Time,
}

/// A partition's rises since the last boundary (bounded by the read-ahead).
#[derive(Debug, Default)]
pub struct RiseLog(VecDeque<Rise>);

impl RiseLog {
    /// Records a rise.
    pub fn push(&mut self, rise: Rise) {
        self.0.push_back(rise);
    }

    /// Where to resume for a checkpoint at `boundary`: the first rise at or after it,
    /// else the partition's next position with its current progress.
    pub fn resume(&self, boundary: Time, next: i64, progress: Time) -> (i64, Time) {
        match self.0.iter().find(|r| r.time >= boundary) {
            Some(r) => (r.position, r.restore),
            None => (next, progress),
        }
    }

    /// Forgets rises before `boundary` (no later checkpoint can need them).
    pub fn trim(&mut self, boundary: Time) {
        while self.0.front().is_some_and(|r| r.time < boundary) {
            self.0.pop_front();
        }
    }
}

/// One worker's side of the checkpoint protocol.
pub struct Checkpointer {
    store: Store,
    interval: Time,
    min_wall: Duration,
    keep: usize,
    index: usize,
    peers: usize,
    control: Option<InputHandleVec<Time, Decision>>,
    decisions: Rc<RefCell<BTreeMap<Time, (bool, Time)>>>,
    control_probe: ProbeHandle<Time>,
    /// This worker's "still reading" input, dropped once it has read everything; the
    /// probe is done once every worker's is.
    reading: Option<InputHandleVec<Time, ()>>,
    reading_probe: ProbeHandle<Time>,
    boundary: Time,
    decided: bool,
    last_written: Instant,
    /// Checkpoints this worker wrote (for the summary and tests).
    pub written: u64,
}

impl Checkpointer {
    /// Builds the control dataflow on this worker. `start` is the restored checkpoint's
    /// time, or 0.
    pub fn new(
        worker: &mut timely::worker::Worker,
        spec: &crate::spec::Checkpoint,
        start: Time,
    ) -> Self {
        let (index, peers) = (worker.index(), worker.peers());
        let decisions = Rc::new(RefCell::new(BTreeMap::new()));
        let seen = decisions.clone();
        let control_probe = ProbeHandle::new();
        let mut control = InputHandleVec::new();
        worker.dataflow::<Time, _, _>(|scope| {
            control
                .to_stream(scope)
                .broadcast()
                .inspect(move |(b, d, next)| {
                    seen.borrow_mut().insert(*b, (*d, *next));
                })
                .probe_with(&control_probe);
        });
        let reading_probe = ProbeHandle::new();
        let mut reading = InputHandleVec::new();
        worker.dataflow::<Time, _, _>(|scope| {
            reading.to_stream(scope).probe_with(&reading_probe);
        });
        let interval = spec.interval.as_millis().max(1);
        let boundary = (start / interval + 1) * interval;
        control.advance_to(boundary);
        Checkpointer {
            store: Store::new(&spec.dir),
            interval,
            min_wall: spec.min_wall_interval.as_std(),
            keep: spec.keep,
            index,
            peers,
            // Only worker 0 decides; the others' inputs close so they do not hold it.
            control: (index == 0).then_some(control),
            decisions,
            control_probe,
            reading: Some(reading),
            reading_probe,
            boundary,
            decided: false,
            last_written: Instant::now(),
            written: 0,
        }
    }

    /// The time the inputs must not pass until the current boundary is settled:
    /// `Time::MAX` once the last boundary is.
    pub fn hold(&self) -> Time {
        self.boundary
    }

    /// This worker has read all its partitions. Its inputs stay held at the boundary
    /// until the last decision.
    pub fn finished(&mut self) {
        self.reading = None;
    }

    /// Advances the protocol. `least` is this worker's least input progress (for
    /// choosing the next boundary); `snapshot` makes this worker's state at a boundary;
    /// `flush` delivers the sink's outputs (worker 0).
    pub fn step(
        &mut self,
        probe: &ProbeHandle<Time>,
        least: Option<Time>,
        snapshot: impl FnOnce(Time) -> WorkerState,
        flush: impl FnOnce() -> anyhow::Result<()>,
    ) -> anyhow::Result<bool> {
        let b = self.boundary;
        if b == Time::MAX {
            return Ok(false);
        }
        if let (Some(control), false) = (self.control.as_mut(), self.decided) {
            if !probe.less_than(&b) {
                let write = self.last_written.elapsed() >= self.min_wall;
                // Skip boundaries nobody has data for yet (heartbeats jump event time).
                let ahead = least.map_or(b, |l| l / self.interval * self.interval);
                // Every worker has read everything: this boundary is the last.
                let next = match self.reading_probe.done() {
                    true => Time::MAX,
                    false => (b + self.interval).max(ahead),
                };
                control.send((b, write, next));
                control.advance_to(b + 1);
                self.decided = true;
            }
        }
        if self.control_probe.less_equal(&b) {
            return Ok(false);
        }
        let Some((write, next)) = self.decisions.borrow_mut().remove(&b) else {
            anyhow::bail!("checkpoint protocol: no decision for boundary {b}");
        };
        if write {
            if self.index == 0 {
                flush()?;
            }
            let mut state = snapshot(b);
            state.index = self.index as u64;
            state.peers = self.peers as u64;
            self.store.write(&state)?;
            self.written += 1;
            self.last_written = Instant::now();
            if self.index == 0 {
                self.store.prune(self.keep);
            }
        }
        self.boundary = next;
        self.decided = false;
        if next == Time::MAX {
            self.control = None;
        }
        if let Some(control) = self.control.as_mut() {
            control.advance_to(next);
        }
        Ok(true)
    }
}

/// The offset entry of one partition for a checkpoint at `boundary`.
pub fn offset_entry(topic: &str, partition: i32, resume: (i64, Time)) -> OffsetEntry {
    OffsetEntry {
        topic: Bytes::from(topic.as_bytes()),
        partition: i64::from(partition),
        offset: resume.0,
        progress: resume.1,
    }
}
