//! JSON shapes of the outputs, as DESIGN.md specifies them.

use crate::dataflow::{Correction, DeadLetter, DriftRecord, Meta, Output};
use crate::row::{JsonKey, JsonRow, JsonValue};
use base64::Engine as _;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;

/// A drift record with its entity, as written to the drift output.
pub struct DriftJson<'a> {
    /// Entity name.
    pub entity: &'a str,
    /// The record.
    pub record: &'a DriftRecord,
}

struct Fields<'a>(&'a [crate::row::FieldDiff]);

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for f in self.0 {
            seq.serialize_element(&FieldJson(f))?;
        }
        seq.end()
    }
}

struct FieldJson<'a>(&'a crate::row::FieldDiff);

impl Serialize for FieldJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("field", &self.0.field)?;
        if let Some(v) = &self.0.source {
            m.serialize_entry("source", &JsonValue(v.as_ref()))?;
        }
        if let Some(v) = &self.0.target {
            m.serialize_entry("target", &JsonValue(v.as_ref()))?;
        }
        m.end()
    }
}

fn meta(m: &Option<Meta>) -> Option<serde_json::Value> {
    m.as_ref()
        .map(|m| serde_json::json!({"version": m.version.to_json(), "ts_ms": m.ts_ms}))
}

impl Serialize for DriftJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.record;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("entity", self.entity)?;
        m.serialize_entry("key", &JsonKey(&r.key))?;
        m.serialize_entry("kind", r.drift.kind.name())?;
        m.serialize_entry("status", &r.status)?;
        m.serialize_entry("fields", &Fields(&r.drift.fields))?;
        m.serialize_entry("source", &meta(&r.drift.source))?;
        m.serialize_entry("target", &meta(&r.drift.target))?;
        m.serialize_entry("since_ms", &r.since)?;
        m.serialize_entry("reported_ms", &r.reported)?;
        if let Some(t) = r.resolved {
            m.serialize_entry("resolved_ms", &t)?;
        }
        m.end()
    }
}

/// The Kafka key of a drift record: `{"entity":…,"key":{…}}`.
pub fn drift_key(entity: &str, record: &DriftRecord) -> String {
    serde_json::json!({"entity": entity, "key": serde_json::to_value(JsonKey(&record.key)).unwrap_or_default()}).to_string()
}

/// The value of a correction: the source row, or `None` for a delete.
pub fn correction_value(c: &Correction) -> Option<String> {
    c.row
        .as_ref()
        .map(|r| serde_json::to_string(&JsonRow(r)).unwrap_or_default())
}

struct CorrectionJson<'a>(&'a Correction);

impl Serialize for CorrectionJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("key", &JsonKey(&self.0.key))?;
        m.serialize_entry("value", &self.0.row.as_ref().map(JsonRow))?;
        m.serialize_entry(
            "headers",
            &serde_json::json!({"driftwatch.kind": self.0.kind.name()}),
        )?;
        m.end()
    }
}

struct DeadJson<'a>(&'a DeadLetter);

fn bytes_entry<M: SerializeMap>(
    m: &mut M,
    name: &str,
    bytes: &Option<Vec<u8>>,
) -> Result<(), M::Error> {
    match bytes.as_deref().map(std::str::from_utf8) {
        None => Ok(()),
        Some(Ok(text)) => m.serialize_entry(name, text),
        Some(Err(_)) => m.serialize_entry(
            &format!("{name}_base64"),
            &base64::engine::general_purpose::STANDARD.encode(bytes.as_deref().unwrap_or_default()),
        ),
    }
}

impl Serialize for DeadJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("side", d.side.name())?;
        m.serialize_entry("origin", &d.origin.to_json())?;
        m.serialize_entry("reason", &d.reason)?;
        bytes_entry(&mut m, "key", &d.key)?;
        bytes_entry(&mut m, "value", &d.value)?;
        if d.truncated {
            m.serialize_entry("truncated", &true)?;
        }
        m.end()
    }
}

/// Appends one output as a JSON line.
pub fn write_line(buf: &mut Vec<u8>, entity: &str, output: &Output) -> serde_json::Result<()> {
    match output {
        Output::Drift(record) => serde_json::to_writer(&mut *buf, &DriftJson { entity, record })?,
        Output::Correction(c) => serde_json::to_writer(&mut *buf, &CorrectionJson(c))?,
        Output::DeadLetter(d) => serde_json::to_writer(&mut *buf, &DeadJson(d))?,
    }
    buf.push(b'\n');
    Ok(())
}
