//! Inputs and outputs: partitions read as a set so their event times advance together,
//! and renderings of output records.
//!
//! - [`file`]: JSONL files as partitions, and the file output directory;
//! - [`kafka`]: Kafka partitions as inputs, topics as outputs, topic administration;
//! - [`record`]: the drift record, typed, for whoever writes or reads it;
//! - [`render`]: the JSON shapes of the outputs: drift records, corrections, dead letters;
//! - [`connect`]: corrections as Kafka Connect JSON envelopes, for JDBC sinks;
//!
//! The read loop that drives these inputs is the job's ([`crate::job`]).

pub(crate) mod connect;
pub mod file;
pub mod kafka;
pub mod record;
pub mod render;

use crate::cdc::{Message, Origin, SideId};

/// The wall clock in milliseconds since the epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Where a partition's messages go: one entity's side. A partition of a topic that
/// several entities read (each taking its messages by its side's `select`) has a route
/// per reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    /// The entity (its index in the job).
    pub entity: usize,
    /// The side of the entity it feeds.
    pub side: SideId,
}

/// A partition with the entities' sides it feeds.
pub type Routed = (Vec<Route>, Box<dyn Partition>);

/// What a poll found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// Messages were read; more may follow at once.
    Ready,
    /// Nothing to read right now.
    Idle,
    /// The partition is exhausted: its time has ended.
    Done,
}

/// One ordered input of one side (a file, a Kafka partition, a generator).
pub trait Partition: Send {
    /// The side it feeds; for a partition several entities share, its first reader's
    /// (the routes decide where messages go: this labels its metrics).
    fn side(&self) -> SideId;
    /// Reads up to `max` messages, passing each with its position (line, offset).
    fn poll(&mut self, max: usize, f: &mut dyn FnMut(&Message<'_>, u64)) -> anyhow::Result<Poll>;
    /// Where the message at `position` came from.
    fn origin(&self, position: u64) -> Origin;
    /// When idle: an event time (ms) the partition vouches for although nothing new was
    /// read, because it is caught up (a Kafka partition at its high watermark: the wall
    /// clock less the skew allowance). `None` holds the partition's time where it is.
    fn heartbeat(&mut self) -> Option<u64> {
        None
    }
    /// For metrics: `(topic, partition, lag in messages)` where the input has them.
    fn gauge(&mut self) -> Option<(String, i32, i64)> {
        None
    }
    /// Stops (`true`) or resumes fetching. The driver never pauses (a partition ahead is
    /// only not read); a test pauses one to make its fetches fall behind.
    fn set_paused(&mut self, _paused: bool) -> anyhow::Result<()> {
        Ok(())
    }
    /// For checkpoints: the (topic, partition) this input is, if it can be resumed.
    fn topic_partition(&self) -> Option<(String, i32)> {
        None
    }
    /// For checkpoints: the next position (offset) to read.
    fn resume_position(&self) -> Option<i64> {
        None
    }
    /// Client errors seen since the last call (librdkafka retries them by itself).
    fn take_errors(&mut self) -> u64 {
        0
    }
}
