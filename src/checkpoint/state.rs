//! What one worker's checkpoint holds, in abomonation-friendly form (see the alignment
//! rule in [`crate::checkpoint`]): keyed state, grace episodes, and input positions.

use super::Bytes;
use abomonation_derive::Abomonation;

/// One worker's state at event time `time`: everything before `time` applied, nothing
/// at or after it (those changes are re-read from `offsets`).
#[derive(Debug, Clone, PartialEq, Eq, Abomonation)]
pub struct WorkerState {
    /// The checkpoint's event time.
    pub time: u64,
    /// This worker's index.
    pub index: u64,
    /// The number of workers when it was written.
    pub peers: u64,
    /// Each entity's state on this worker.
    pub entities: Vec<EntityState>,
    /// Where to resume each input partition this worker read.
    pub offsets: Vec<OffsetEntry>,
}

/// One entity's state on one worker.
#[derive(Debug, Clone, PartialEq, Eq, Abomonation)]
pub struct EntityState {
    /// The entity's name.
    pub name: Bytes,
    /// Both sides' state per key.
    pub keys: Vec<KeyEntry>,
    /// Open grace episodes.
    pub episodes: Vec<EpisodeEntry>,
    /// The version of the source's last truncate, encoded, if any.
    pub source_floor: Option<Bytes>,
    /// The version of the target's last truncate, encoded, if any.
    pub target_floor: Option<Bytes>,
}

/// One side of one key: its last applied version, and its row if not deleted
/// (`row_ts_ms` is the row's event time).
#[derive(Debug, Clone, PartialEq, Eq, Abomonation)]
pub struct SideEntry {
    /// The last applied version, encoded (`cdc::Version::encoded`).
    pub version: Bytes,
    /// The row's event time (ms), when there is a row.
    pub row_ts_ms: u64,
    /// The row's encoding, or `None` for a remembered delete.
    pub row: Option<Bytes>,
}

/// Both sides of one key.
#[derive(Debug, Clone, PartialEq, Eq, Abomonation)]
pub struct KeyEntry {
    /// The key's encoding.
    pub key: Bytes,
    /// The source side, if it has seen the key.
    pub source: Option<SideEntry>,
    /// The target side, if it has seen the key.
    pub target: Option<SideEntry>,
    /// Whether the key's sides differed (1: its grace episode was open) or not (0).
    pub drifting: u64,
}

/// A key's open grace episode.
#[derive(Debug, Clone, PartialEq, Eq, Abomonation)]
pub struct EpisodeEntry {
    /// The key's encoding.
    pub key: Bytes,
    /// When the episode began (event time, ms).
    pub since: u64,
    /// Whether it has been reported (1) or is still within grace (0).
    pub reported: u64,
    /// The last correction emitted: its kind (0 missing, 1 orphan, 2 mismatch) and
    /// upsert row (`None`: a delete).
    pub corrected: Option<(u64, Option<Bytes>)>,
}

/// Where to resume one input partition.
#[derive(Debug, Clone, PartialEq, Eq, Abomonation)]
pub struct OffsetEntry {
    /// Topic name.
    pub topic: Bytes,
    /// Partition number.
    pub partition: i64,
    /// The first offset not covered by the checkpoint.
    pub offset: i64,
    /// The partition's event-time progress just before that offset (ms).
    pub progress: u64,
}
