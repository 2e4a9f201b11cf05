//! The job spec: one TOML file per synchronized entity (`dataflows/*.toml`).
//!
//! The structs here are the user documentation: every field carries a doc comment, and
//! every struct refuses unknown fields so a typo is an error, not a silently ignored
//! setting. [`load`] collects every problem at once ([`validate`]) before a job starts.

mod duration;
mod load;
mod validate;

pub use duration::Duration;
pub use load::{load, load_all, load_str, spec_files};
pub use validate::{Problem, SpecError};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One synchronized entity: which streams to compare, how, and where to report.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Name of the entity (table), used in drift records and default topic names.
    pub entity: String,
    /// Names of the key columns, in order. Both sides must carry them.
    pub key: Vec<String>,
    /// How long a difference must last (event time) before it is reported as drift,
    /// e.g. `"5s"`. Healthy replication lag below this never shows up as drift.
    #[serde(default = "default_grace")]
    pub grace: Duration,
    /// Event-time resolution, e.g. `"10ms"`: event times are rounded down to a multiple
    /// of it so that more changes share a timestamp and batch better.
    #[serde(default = "default_resolution")]
    pub time_resolution: Duration,
    /// How far (event time) one input may be read ahead of the slowest one before it is
    /// no longer read (until the others catch up). Bounds the memory a replay of a
    /// backlog needs; what a Kafka partition prefetches is bounded apart (64 MiB a
    /// worker, `queued.max.messages.kbytes` per partition in `[kafka.properties]`).
    /// A partition whose batches span more than this (a sparse one) may still read
    /// four batches (4,096 messages) past it, short of the next checkpoint boundary,
    /// so that workers do not wait for each other at every batch.
    #[serde(default = "default_read_ahead")]
    pub max_read_ahead: Duration,
    /// Messages larger than this many bytes are rejected to the dead-letter output.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Whether the two sides' inputs are co-partitioned by key: partition (or input
    /// file) `i` of the source and partition `i` of the target carry the same keys, and
    /// every key is in one partition of each side. Two Kafka topics with the same number
    /// of partitions whose producers write each key as the same bytes (two Debezium
    /// connectors with the same key converter settings: a `schemas.enable` that differs
    /// makes different bytes) and partition alike (Kafka's default partitioner) are.
    /// Declared, both sides' partition `i` are read by one worker (`i`
    /// modulo the workers), which keeps those keys itself: no change crosses to another
    /// worker, the second core adds what the first does (BENCHMARKS.md, issue 14).
    /// Every key a worker keeps is checked against the other workers' as it is first
    /// seen: a key read on two workers (a wrong declaration, or a repartitioned topic)
    /// stops the job with one line naming it. Drift reported before that point may be
    /// wrong. A checkpoint of such a job is restored on a number of workers that keeps
    /// each worker's file together (a key is kept where its partition is read): the
    /// same number, a divisor of it, or any number where each worker read at most one
    /// partition; another shape is refused with one line naming those that fit. In a job of
    /// several entities, one that declares it has every entity's partitions assigned by
    /// number (the others are still routed by key).
    #[serde(default)]
    pub co_partitioned: bool,
    /// The system of record.
    pub source: Side,
    /// The copy that should equal the source.
    pub target: Side,
    /// Comparison rules.
    #[serde(default)]
    pub compare: Compare,
    /// Column declarations: how a column's values are decoded and compared. Columns not
    /// listed are compared as plain JSON values.
    #[serde(default)]
    pub fields: BTreeMap<String, FieldSpec>,
    /// Where drift, corrections and dead letters go.
    #[serde(default)]
    pub outputs: Outputs,
    /// Kafka client settings shared by all topics of this job.
    #[serde(default)]
    pub kafka: Kafka,
    /// Periodic checkpoints of the job's state and input offsets (Kafka mode). Without
    /// this table a restarted job replays its inputs from the earliest offsets.
    #[serde(default)]
    pub checkpoint: Option<Checkpoint>,
}

/// Checkpoint settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Directory of the checkpoint files. Every process of a cluster must see the same
    /// directory (a restore reads every worker's file, whatever the new cluster shape).
    pub dir: String,
    /// Event time between checkpoint opportunities, e.g. `"10s"`: checkpoints are taken
    /// at multiples of it, at one event time on every worker.
    #[serde(default = "default_checkpoint_interval")]
    pub interval: Duration,
    /// Wall-clock time that must pass between two checkpoints, e.g. `"10s"`, so that a
    /// fast replay does not write one at every opportunity.
    #[serde(default = "default_checkpoint_interval")]
    pub min_wall_interval: Duration,
    /// How many complete checkpoints to keep (older ones are pruned).
    #[serde(default = "default_checkpoint_keep")]
    pub keep: usize,
}

/// One side of the synchronization (source or target).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Side {
    /// Message format: `debezium` (change events) or `upsert` (key → row, `null` = deleted).
    pub format: Format,
    /// The per-key version that orders changes: a path, or a list of paths compared in
    /// order (numbers as numbers, strings of digits as numbers, other strings
    /// lexicographically, `null` first). For `debezium` the paths are relative to the
    /// event, for `upsert` they are top-level row fields (e.g. `_version`). Without one,
    /// changes are ordered by input order. Per Debezium connector:
    ///
    /// | connector | `version` |
    /// |---|---|
    /// | PostgreSQL | `"source.lsn"` |
    /// | MySQL, MariaDB | `["source.file", "source.pos", "source.row"]` |
    /// | SQL Server | `["source.commit_lsn", "source.change_lsn", "source.event_serial_no"]` |
    /// | Oracle | `"source.scn"` (a digit string beyond 64 bits) |
    /// | MongoDB | `["source.ts_ms", "source.ord"]` |
    /// | Db2, Informix | `["source.commit_lsn", "source.change_lsn"]` |
    #[serde(default)]
    pub version: Option<Paths>,
    /// Path of the event time in milliseconds since the epoch: for `debezium` relative to
    /// the event (e.g. `source.ts_ms`), for `upsert` a top-level row field or `@timestamp`
    /// (the Kafka message timestamp, or a file line's `timestamp`).
    pub event_time: String,
    /// Where this side's change events are read from.
    pub input: Input,
    /// Takes only the messages whose envelope fields have these values, e.g.
    /// `{ "source.schema" = "public", "source.table" = "orders" }`, for an input topic
    /// that carries several tables (Debezium's topic routing). Paths are relative to the
    /// event, as `version`'s are; a number or boolean field matches its JSON text. Several
    /// entities may read one topic, each taking its own messages; a message that no
    /// entity takes is counted (`driftwatch_unselected_total`) and skipped, never a dead
    /// letter. Empty (the default): every message of the side's inputs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub select: BTreeMap<String, String>,
    /// Whether this side's capture may send Debezium's placeholder
    /// (`__debezium_unavailable_value`) for a column it did not read: PostgreSQL under
    /// REPLICA IDENTITY DEFAULT does for a TOASTed value an update left alone. The
    /// placeholder then means the column did not change. Set `false` for a capture that
    /// never sends it (REPLICA IDENTITY FULL, other connectors): the string is then a
    /// literal value, as when a sink fed by Debezium wrote the placeholder into the copy.
    #[serde(default = "default_true")]
    pub unavailable_placeholders: bool,
    /// The placeholder this side's connector was configured with
    /// (`unavailable.value.placeholder`), default `__debezium_unavailable_value`. A value
    /// starting `hex:` is hex-encoded bytes. It is recognised in every form Debezium
    /// sends it: the string, bytes (base64 or hex), a one-string array, an array of the
    /// byte codes, a map of the string to itself.
    #[serde(default)]
    pub unavailable_placeholder: Option<String>,
}

/// One path (`"source.lsn"`) or several compared in order (`["source.file", …]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Paths {
    /// One path.
    One(String),
    /// Several paths, compared in order.
    Many(Vec<String>),
}

impl Paths {
    /// The paths, in order.
    pub fn list(&self) -> &[String] {
        match self {
            Paths::One(p) => std::slice::from_ref(p),
            Paths::Many(ps) => ps,
        }
    }
}

/// The wire format of one side's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Debezium change events (JSON), bare or in a `schema`/`payload` wrapper.
    Debezium,
    /// Flat upserts: key → row as a JSON object, `null` value = deleted.
    Upsert,
}

/// Input locations of one side: Kafka topics, or JSONL files (one message per line).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// Kafka topics carrying this side's changes.
    #[serde(default)]
    pub topics: Vec<String>,
    /// JSONL files carrying this side's changes (file mode). For `upsert` a line is
    /// `{"key":…,"value":…}` with an optional `timestamp` (ms).
    #[serde(default)]
    pub files: Vec<String>,
}

/// Rules that decide whether two rows are equal.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Compare {
    /// Columns never compared (e.g. a replica-only `_synced_at`), by name or glob
    /// pattern (`"_airbyte_*"`, `"tmp_?"`, `"[ab]_x"`). They are dropped from target rows
    /// on decode; source rows keep them for corrections.
    #[serde(default)]
    pub ignore: Vec<String>,
    /// When not empty, only these columns are compared (by name, before `ignore`).
    #[serde(default)]
    pub only: Vec<String>,
    /// Whether a column that is `null` on one side and absent on the other is equal.
    #[serde(default = "default_true")]
    pub null_equals_absent: bool,
}

impl Default for Compare {
    fn default() -> Self {
        Compare {
            ignore: Vec::new(),
            only: Vec::new(),
            null_equals_absent: true,
        }
    }
}

/// How one column is decoded and compared.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// The column's logical type. `auto` compares plain JSON values; `decimal` accepts
    /// numbers, numeric strings, Debezium's base64 bytes and `VariableScaleDecimal`
    /// (`{scale, value}`); `timestamp` accepts integers since the epoch and RFC 3339
    /// strings and compares instants; `date` accepts days since the epoch and
    /// `YYYY-MM-DD`; `time` (a time of day) accepts integers since midnight (`unit`) and
    /// `HH:MM:SS[.f][offset]` strings; `uuid` compares case-insensitively; `set` is a
    /// comma-separated set whose order does not matter (`io.debezium.data.EnumSet`);
    /// `bytes` decodes base64 or hex text (`encoding`); `json` is JSON text (or a JSON
    /// value) compared by meaning: key order, whitespace and number spelling do not
    /// matter.
    #[serde(default, rename = "type")]
    pub kind: FieldKind,
    /// Scale of a `decimal` column, used to decode base64 bytes when the message carries
    /// no schema (with a schema, the schema's scale wins).
    #[serde(default)]
    pub scale: Option<u8>,
    /// Numeric tolerance: values whose absolute difference is at most this are equal.
    #[serde(default)]
    pub tolerance: Option<f64>,
    /// Relative numeric tolerance: values whose difference is at most this fraction of
    /// the larger magnitude are equal (e.g. `1e-9` for doubles a warehouse rounds).
    #[serde(default)]
    pub relative_tolerance: Option<f64>,
    /// Unit of integer `timestamp` and `time` values when the message carries no schema.
    #[serde(default)]
    pub unit: TimeUnit,
    /// For `timestamp` and `time`: values less than one of this unit apart are equal
    /// (`"s"`, `"ms"`, `"us"`), so a replica that keeps milliseconds of a source's
    /// microseconds, rounded or cut, is not drift.
    #[serde(default)]
    pub precision: Option<TimeUnit>,
    /// For `bytes`: how the text is encoded when the message carries no schema
    /// (Debezium's `binary.handling.mode`): `base64` (the default), `base64-url-safe` or
    /// `hex`.
    #[serde(default)]
    pub encoding: BytesEncoding,
    /// Strings: leading and trailing whitespace does not matter.
    #[serde(default)]
    pub trim: bool,
    /// Strings: letter case does not matter.
    #[serde(default)]
    pub case_insensitive: bool,
    /// Strings: an empty string equals `null` (and, with `null_equals_absent`, absence).
    #[serde(default)]
    pub empty_equals_null: bool,
    /// The column's name on the target, when it differs: the source's column (this
    /// table's name) is compared with the target's column of this name, and corrections
    /// carry the target's name.
    #[serde(default)]
    pub target: Option<String>,
}

/// Logical column types.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldKind {
    /// Plain JSON value.
    #[default]
    Auto,
    /// Exact decimal number.
    Decimal,
    /// An instant.
    Timestamp,
    /// A calendar date.
    Date,
    /// A time of day.
    Time,
    /// A UUID (case-insensitive).
    Uuid,
    /// A comma-separated set (order does not matter).
    Set,
    /// Bytes.
    Bytes,
    /// JSON text compared by meaning.
    Json,
}

/// Unit of an integer timestamp or time, or a precision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    /// Seconds.
    S,
    /// Milliseconds.
    #[default]
    Ms,
    /// Microseconds.
    Us,
    /// Nanoseconds.
    Ns,
}

impl TimeUnit {
    /// The unit as a spec spells it.
    pub fn name(self) -> &'static str {
        match self {
            TimeUnit::S => "s",
            TimeUnit::Ms => "ms",
            TimeUnit::Us => "us",
            TimeUnit::Ns => "ns",
        }
    }

    /// Nanoseconds in one unit.
    pub fn nanos(self) -> i64 {
        match self {
            TimeUnit::S => 1_000_000_000,
            TimeUnit::Ms => 1_000_000,
            TimeUnit::Us => 1_000,
            TimeUnit::Ns => 1,
        }
    }
}

/// How bytes are spelled as text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BytesEncoding {
    /// Standard base64 (Kafka Connect's JSON for bytes).
    #[default]
    Base64,
    /// URL-safe base64.
    Base64UrlSafe,
    /// Hexadecimal.
    Hex,
}

/// Output locations. Topic names default to `driftwatch.<entity>.<output>`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Outputs {
    /// Topic of the drift changelog (compacted; key = entity + key).
    #[serde(default)]
    pub drift_topic: Option<String>,
    /// Topic of the corrections (compacted; key = entity key).
    #[serde(default)]
    pub corrections_topic: Option<String>,
    /// Topic of the dead letters.
    #[serde(default)]
    pub dlq_topic: Option<String>,
    /// Partitions of topics driftwatch creates.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// Directory for `drift.jsonl`, `corrections.jsonl`, `dlq.jsonl` in file mode.
    #[serde(default)]
    pub dir: Option<String>,
    /// How corrections are written to Kafka: `"plain"` (the key and the source row as
    /// JSON objects, a tombstone for a delete) or `"connect-json"` (Kafka Connect
    /// `JsonConverter` envelopes with a schema, which a JDBC sink connector in upsert
    /// mode with `delete.enabled=true` and `primary.key.mode=record_key` applies as is).
    #[serde(default)]
    pub corrections_format: CorrectionsFormat,
}

/// The record shape of corrections on Kafka.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CorrectionsFormat {
    /// The key and the source row as plain JSON objects.
    #[default]
    Plain,
    /// `{"schema": …, "payload": …}` envelopes, as Kafka Connect's `JsonConverter` writes.
    ConnectJson,
}

impl Default for Outputs {
    fn default() -> Self {
        Outputs {
            drift_topic: None,
            corrections_topic: None,
            dlq_topic: None,
            partitions: default_partitions(),
            dir: None,
            corrections_format: CorrectionsFormat::Plain,
        }
    }
}

/// Kafka client settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Kafka {
    /// Bootstrap servers, `host:port[,host:port…]`.
    #[serde(default)]
    pub brokers: Option<String>,
    /// Any librdkafka property (`security.protocol`, `sasl.mechanism`, …). A value of the
    /// form `${VAR}` is read from the environment at start and never logged.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Consumer group under which read offsets are committed, for standard lag tools
    /// (default `driftwatch.<entity>`). Partitions are assigned statically, never by the
    /// group, and the job does not resume from these offsets.
    #[serde(default)]
    pub group_id: Option<String>,
    /// How far behind the wall clock a caught-up partition's event time is held, to
    /// allow for clock skew between the databases and this host, e.g. `"2s"`. An idle,
    /// caught-up input advances with the wall clock less this, so grace still fires.
    #[serde(default = "default_clock_skew")]
    pub clock_skew: Duration,
}

fn default_checkpoint_interval() -> Duration {
    Duration::from_millis(10_000)
}
fn default_checkpoint_keep() -> usize {
    2
}
fn default_clock_skew() -> Duration {
    Duration::from_millis(2_000)
}
fn default_grace() -> Duration {
    Duration::from_millis(5_000)
}
fn default_resolution() -> Duration {
    Duration::from_millis(1)
}
fn default_read_ahead() -> Duration {
    Duration::from_millis(1_000)
}
fn default_max_message_bytes() -> usize {
    1 << 20
}
impl Default for Kafka {
    fn default() -> Self {
        Kafka {
            brokers: None,
            properties: BTreeMap::new(),
            group_id: None,
            clock_skew: default_clock_skew(),
        }
    }
}

fn default_partitions() -> u32 {
    1
}
fn default_true() -> bool {
    true
}

impl Spec {
    /// The side of the given role.
    pub fn side(&self, side: crate::cdc::SideId) -> &Side {
        match side {
            crate::cdc::SideId::Source => &self.source,
            crate::cdc::SideId::Target => &self.target,
        }
    }

    /// The drift topic, defaulted from the entity name.
    pub fn drift_topic(&self) -> String {
        self.outputs
            .drift_topic
            .clone()
            .unwrap_or_else(|| format!("driftwatch.{}.drift", self.entity))
    }

    /// The corrections topic, defaulted from the entity name.
    pub fn corrections_topic(&self) -> String {
        self.outputs
            .corrections_topic
            .clone()
            .unwrap_or_else(|| format!("driftwatch.{}.corrections", self.entity))
    }

    /// The dead-letter topic, defaulted from the entity name.
    pub fn dlq_topic(&self) -> String {
        self.outputs
            .dlq_topic
            .clone()
            .unwrap_or_else(|| format!("driftwatch.{}.dlq", self.entity))
    }

    /// The consumer group for offset commits.
    pub fn group_id(&self) -> String {
        self.kafka
            .group_id
            .clone()
            .unwrap_or_else(|| format!("driftwatch.{}", self.entity))
    }
}
