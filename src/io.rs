//! Inputs and outputs: partitions read as a set so their event times advance together,
//! and renderings of output records.
//!
//! - [`file`]: JSONL files as partitions, and the file output directory;
//! - [`render`]: the JSON shapes of drift records, corrections and dead letters;
//! - [`driver`]: the per-worker read loop (pick the input furthest behind, pause the
//!   ones that run ahead, clamp late events to their partition's progress).

pub mod driver;
pub mod file;
pub mod render;

use crate::cdc::{Message, Origin, SideId};

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
    /// The side it feeds.
    fn side(&self) -> SideId;
    /// Reads up to `max` messages, passing each with its position (line, offset).
    fn poll(&mut self, max: usize, f: &mut dyn FnMut(&Message<'_>, u64)) -> anyhow::Result<Poll>;
    /// Where the message at `position` came from.
    fn origin(&self, position: u64) -> Origin;
}
