//! Bytes → changes: decoding CDC messages into keyed, versioned, timed row images.
//!
//! A [`Decoder`] is built once per side from the spec and reused for every message: it
//! keeps a row builder and a cache of parsed Debezium schemas, so the hot path allocates
//! little more than the finished row. Every failure is a [`DecodeError`] with a reason
//! the dead-letter output carries; nothing here panics on input.

mod column;
mod debezium;
pub(crate) mod json;
mod key;
mod logical;
mod placeholder;
mod upsert;
pub(crate) mod version;

pub use logical::ColumnTypes;
pub(crate) use logical::{connect_kind, Kind};
pub use version::Version;

use crate::row::{Key, Row, RowBuilder};
use crate::spec::{Format, Spec};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The Connect schema of a side's row image (a Debezium envelope's `after` field), as
/// the side's decoders last saw it: published by the source's decoders for corrections
/// written as Connect records (`corrections_format = "connect-json"`).
pub type RowSchema = Arc<std::sync::Mutex<Option<Arc<serde_json::Value>>>>;

/// Why a configured placeholder (`unavailable_placeholder`) cannot be used, if it cannot.
pub fn check_placeholder(configured: &str) -> Result<(), String> {
    placeholder::Placeholders::new(Some(configured)).map(|_| ())
}

/// Which side of the synchronization a message belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SideId {
    /// The system of record.
    Source,
    /// The copy.
    Target,
}

impl SideId {
    /// Both sides, source first.
    pub const BOTH: [SideId; 2] = [SideId::Source, SideId::Target];

    /// `"source"` or `"target"`.
    pub fn name(self) -> &'static str {
        match self {
            SideId::Source => "source",
            SideId::Target => "target",
        }
    }
}

/// Where a message came from, for dead letters and diagnostics.
///
/// Dead letters cross worker and process boundaries, so this is serialized by timely's
/// bincode between processes: it must stay a plain (externally tagged) enum, because
/// `#[serde(untagged)]` cannot be decoded by bincode (`DeserializeAnyNotSupported`, which
/// crashed a cluster on its first malformed message). The flat JSON shape of the
/// dead-letter output is written by `io::render` ([`Origin::to_json`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Origin {
    /// A line of a file (1-based).
    File {
        /// The file's path.
        file: Arc<str>,
        /// The line number, from 1.
        line: u64,
    },
    /// A Kafka message.
    Kafka {
        /// Topic.
        topic: Arc<str>,
        /// Partition.
        partition: i32,
        /// Offset.
        offset: i64,
    },
    /// A generated message (demo, load test).
    Generated {
        /// Generator stream name.
        stream: Arc<str>,
        /// Sequence number.
        seq: u64,
    },
}

impl Origin {
    /// The origin as dead letters show it: `{"file","line"}`, `{"topic","partition",
    /// "offset"}` or `{"stream","seq"}`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Origin::File { file, line } => serde_json::json!({"file": &**file, "line": line}),
            Origin::Kafka {
                topic,
                partition,
                offset,
            } => serde_json::json!({"topic": &**topic, "partition": partition, "offset": offset}),
            Origin::Generated { stream, seq } => {
                serde_json::json!({"stream": &**stream, "seq": seq})
            }
        }
    }
}

/// One raw message, borrowed from the reader's buffers.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// The message key, if any.
    pub key: Option<&'a [u8]>,
    /// The message value; `None` is a Kafka tombstone.
    pub value: Option<&'a [u8]>,
    /// The message timestamp in ms (Kafka), if any.
    pub timestamp_ms: Option<i64>,
}

/// `bytes` as text: checked with SIMD (`simdutf8`: a tenth of the standard library's
/// cost on a 600-byte event), and on failure again by the standard library, whose
/// error says where.
pub(crate) fn utf8(bytes: &[u8]) -> Result<&str, std::str::Utf8Error> {
    simdutf8::basic::from_utf8(bytes).or_else(|_| std::str::from_utf8(bytes))
}

/// A decoded change: after it, the key's row is `row` (`None`: deleted).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Change {
    /// The entity key.
    pub key: Key,
    /// The per-key version; `None` when the message carries none (an upsert delete):
    /// such a change applies after whatever the key holds.
    pub version: Option<Version>,
    /// Event time in ms since the epoch, before rounding; `None` when the message has
    /// none (an upsert delete): it then takes its partition's progress.
    pub time_ms: Option<u64>,
    /// The row image after the change.
    pub row: Option<Row>,
}

impl Change {
    /// A truncate of a side at `time_ms`: a change without a key, which the dataflow
    /// sends to every worker (each deletes the side's rows it holds).
    pub fn truncate(version: Option<Version>, time_ms: u64) -> Change {
        Change {
            key: Key::from_encoded(&[]),
            version,
            time_ms: Some(time_ms),
            row: None,
        }
    }

    /// Whether this is a truncate (no real key is empty: a key has at least a column).
    pub fn is_truncate(&self) -> bool {
        self.key.as_bytes().is_empty()
    }
}

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

impl DecodeError {
    /// An error with the given reason.
    pub fn new(reason: impl Into<String>) -> Self {
        DecodeError(reason.into())
    }
}

/// The outcome of decoding one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A change to apply.
    Change(Change),
    /// A message that carries no change (a tombstone, a blank line).
    Skip,
    /// A Debezium event that is not a row change: counted and skipped. A heartbeat's
    /// time may advance its partition's event time.
    NonRow {
        /// What it is.
        kind: NonRow,
        /// The event time it vouches for (heartbeats), in ms.
        time_ms: Option<u64>,
    },
    /// A truncate (`op` `t`): every row of the side is deleted at this time.
    Truncate {
        /// Its version: rows with a newer version survive it.
        version: Option<Version>,
        /// Its event time in ms, before rounding.
        time_ms: u64,
    },
}

/// Debezium events that carry no row change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonRow {
    /// A logical decoding message (`op` `m`).
    Message,
    /// Transaction metadata (a BEGIN or END record).
    Transaction,
    /// A heartbeat (`ts_ms` and no `op`).
    Heartbeat,
    /// A schema change event.
    SchemaChange,
}

impl NonRow {
    /// Every kind, for counters.
    pub const ALL: [NonRow; 4] = [
        NonRow::Message,
        NonRow::Transaction,
        NonRow::Heartbeat,
        NonRow::SchemaChange,
    ];

    /// The kind's name in the summary and the metrics.
    pub fn name(self) -> &'static str {
        match self {
            NonRow::Message => "message",
            NonRow::Transaction => "transaction",
            NonRow::Heartbeat => "heartbeat",
            NonRow::SchemaChange => "schema_change",
        }
    }
}

/// Decodes one side's messages.
pub struct Decoder {
    format: Format,
    key_fields: Vec<String>,
    /// The version's paths, then the event time's (when it is a path): looked up
    /// together, in one pass over the part of the envelope they share.
    paths: Vec<Vec<String>>,
    /// How many of `paths` are the version's.
    version_parts: usize,
    event_time: bool,
    /// Whether every path is in `source`, so a bare envelope can be decoded in one pass
    /// (`debezium::one_pass`).
    one_pass: bool,
    /// Whether the one-pass decoder tries the byte scanner first (`debezium::scan`);
    /// off only to compare the paths in tests.
    scan: bool,
    columns: ColumnTypes,
    max_bytes: usize,
    builder: RowBuilder,
    /// The byte scanner's columns as resolved for the last image, by position.
    resolved: column::Resolutions,
    /// The byte scanner's envelope shape as the last event had it.
    shapes: debezium::Shapes,
    schemas: logical::SchemaCache,
}

impl Decoder {
    /// A decoder for `side` of `spec`.
    pub fn new(spec: &Spec, side: SideId) -> Self {
        let s = spec.side(side);
        let split = |p: &str| p.split('.').map(str::to_string).collect::<Vec<_>>();
        let mut paths: Vec<Vec<String>> = s
            .version
            .iter()
            .flat_map(|v| v.list())
            .map(|p| split(p))
            .collect();
        let version_parts = paths.len();
        let event_time = s.event_time != "@timestamp";
        if event_time {
            paths.push(split(&s.event_time));
        }
        let one_pass = !paths.is_empty()
            && paths.len() <= debezium::MAX_PATHS
            && paths.iter().all(|p| p.len() > 1 && p[0] == "source");
        Decoder {
            one_pass,
            scan: true,
            format: s.format,
            key_fields: spec.key.clone(),
            paths,
            version_parts,
            event_time,
            columns: ColumnTypes::new(spec, side),
            max_bytes: spec.max_message_bytes,
            builder: RowBuilder::default(),
            resolved: column::Resolutions::default(),
            shapes: debezium::Shapes::default(),
            schemas: logical::SchemaCache::default(),
        }
    }

    /// Publishes the Connect schema of the row images this decoder reads to `slot`
    /// (whenever a message brings a schema not seen before).
    pub fn publish_schema(&mut self, slot: RowSchema) {
        self.schemas.publish = Some(slot);
    }

    /// The version paths joined for messages (`source.lsn`, `source.file, source.pos`).
    fn version_name(&self) -> String {
        let names: Vec<String> = self.paths[..self.version_parts]
            .iter()
            .map(|p| p.join("."))
            .collect();
        names.join(", ")
    }

    /// The version made of `parts`, or why not.
    fn version(&self, parts: &[Option<version::Part<'_>>]) -> Result<Version, DecodeError> {
        // On the stack: a version has one or two parts, and this runs for every event.
        let mut values = smallvec::SmallVec::<[_; 4]>::with_capacity(parts.len());
        for (i, p) in parts.iter().enumerate() {
            match p {
                Some(v) => values.push(v.clone()),
                None => {
                    return Err(DecodeError::new(format!(
                        "no version at `{}`",
                        self.paths[i].join(".")
                    )))
                }
            }
        }
        Version::from_parts(&values).map_err(|e| {
            DecodeError::new(format!("version at `{}` is {}", self.version_name(), e.0))
        })
    }

    /// Decodes one message.
    pub fn decode(&mut self, msg: &Message<'_>) -> Result<Decoded, DecodeError> {
        let size = msg.value.map_or(0, <[u8]>::len) + msg.key.map_or(0, <[u8]>::len);
        if size > self.max_bytes {
            return Err(DecodeError(format!(
                "message of {size} bytes is over the limit of {} bytes (max_message_bytes)",
                self.max_bytes
            )));
        }
        match self.format {
            Format::Debezium => debezium::decode(self, msg),
            Format::Upsert => upsert::decode(self, msg),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::json::Scalar;
    use super::{Decoder, SideId, Version};
    use proptest::prelude::*;

    proptest! {
        /// A version of one part, read where it lies, is the version its part makes
        /// (a negative or malformed one refused alike, with the path in the message);
        /// two parts are copied and made into one.
        #[test]
        fn a_version_is_what_its_parts_make(n in any::<i64>(), text in "[0-9a-z]{0,22}") {
            let spec = crate::spec::load(
                &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dataflows/orders.toml"),
            )
            .unwrap();
            let d = Decoder::new(&spec, SideId::Source);
            for part in [Scalar::I64(n), Scalar::Str(text.clone().into()), Scalar::F64(0.5)] {
                let want = Version::from_parts(std::slice::from_ref(&part))
                    .map_err(|e| format!("version at `source.lsn` is {}", e.0));
                prop_assert_eq!(d.version(&[Some(part)]).map_err(|e| e.0), want);
            }
            let two = [Scalar::I64(n), Scalar::Str(text.clone().into())];
            prop_assert_eq!(d.version(&[Some(two[0].clone()), Some(two[1].clone())]).ok(), Version::from_parts(&two).ok());
            prop_assert!(d.version(&[None]).is_err());
        }
    }
}
