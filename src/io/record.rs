//! The drift output's record, typed: written by the sinks, read back by `report` and by
//! the load test's scorer, so the shape DESIGN.md specifies lives in one place.

use crate::dataflow::{DriftKind, DriftRecord, Meta, Status};
use crate::row::{FieldDiff, JsonKey, JsonValue};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// A drift record as the drift output carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftMessage {
    /// The entity (table) it is about.
    pub entity: String,
    /// The entity key, as a JSON object of its columns.
    pub key: Value,
    /// What kind of difference.
    pub kind: DriftKind,
    /// Open, or resolved.
    pub status: Status,
    /// For a mismatch, each differing column with both sides' values.
    pub fields: Vec<FieldChange>,
    /// Where the source's row came from, if the source has the key.
    pub source: Option<Position>,
    /// Where the target's row came from, if the target has the key.
    pub target: Option<Position>,
    /// Event time (ms) at which the key went out of sync.
    pub since_ms: u64,
    /// Event time (ms) at which this record was produced.
    pub reported_ms: u64,
    /// Event time (ms) at which the difference healed (resolved records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_ms: Option<u64>,
}

/// One differing column. A side's value is absent when the column is absent there (as
/// opposed to `null`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The column.
    pub field: String,
    /// The source's value.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub source: Option<Value>,
    /// The target's value.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub target: Option<Value>,
}

/// A row's position: its version and event time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// The version (a number, a digit string, a string, or an array of parts).
    pub version: Value,
    /// The event time in ms.
    pub ts_ms: u64,
}

/// A present value, `null` included (serde's `Option` would read `null` as absent).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

fn json(v: impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or_default()
}

impl FieldChange {
    fn of(f: &FieldDiff) -> Self {
        FieldChange {
            field: f.field.clone(),
            source: f.source.as_ref().map(|v| json(JsonValue(v.as_ref()))),
            target: f.target.as_ref().map(|v| json(JsonValue(v.as_ref()))),
        }
    }
}

impl DriftMessage {
    /// The message for `record` of `entity`.
    pub fn new(entity: &str, record: &DriftRecord) -> Self {
        let position = |m: &Option<Meta>| {
            m.as_ref().map(|m| Position {
                version: m.version.to_json(),
                ts_ms: m.ts_ms,
            })
        };
        DriftMessage {
            entity: entity.to_string(),
            key: json(JsonKey(&record.key)),
            kind: record.drift.kind,
            status: record.status,
            fields: record.drift.fields.iter().map(FieldChange::of).collect(),
            source: position(&record.drift.source),
            target: position(&record.drift.target),
            since_ms: record.since,
            reported_ms: record.reported,
            resolved_ms: record.resolved,
        }
    }

    /// The Kafka key of the record: `{"entity":…,"key":{…}}`.
    pub fn kafka_key(&self) -> String {
        serde_json::json!({"entity": self.entity, "key": self.key}).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_absent_and_null_values_apart() {
        let text = r#"{"entity":"orders","key":{"id":42},"kind":"mismatch","status":"open","fields":[{"field":"note","source":null},{"field":"status","source":"shipped","target":"pending"}],"source":{"version":["mysql-bin.000003",154,0],"ts_ms":2},"target":null,"since_ms":1,"reported_ms":3}"#;
        let m: DriftMessage = serde_json::from_str(text).unwrap();
        assert_eq!(m.fields[0].source, Some(Value::Null));
        assert_eq!(m.fields[0].target, None);
        assert_eq!(serde_json::to_string(&m).unwrap(), text);
        // Fields added later do not stop a reader.
        let newer = text.replace("\"since_ms\"", "\"severity\":\"high\",\"since_ms\"");
        assert_eq!(serde_json::from_str::<DriftMessage>(&newer).unwrap(), m);
    }
}
