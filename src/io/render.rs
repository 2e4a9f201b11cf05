//! JSON shapes of the outputs, as DESIGN.md specifies them.

use crate::dataflow::{Correction, DeadLetter, Output};
use crate::row::{JsonKey, JsonRow};
use base64::Engine as _;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

/// The value of a correction: the source row, or `None` for a delete.
pub fn correction_value(c: &Correction) -> Option<String> {
    c.row
        .as_ref()
        .map(|r| serde_json::to_string(&JsonRow(r)).unwrap_or_default())
}

struct CorrectionJson<'a>(&'a str, &'a Correction);

impl Serialize for CorrectionJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("entity", self.0)?;
        m.serialize_entry("key", &JsonKey(&self.1.key))?;
        m.serialize_entry("value", &self.1.row.as_ref().map(JsonRow))?;
        m.serialize_entry("headers", &KindHeader(self.1.kind.name()))?;
        m.end()
    }
}

/// A correction's headers, `{"driftwatch.kind": kind}`, written as they are (a
/// `serde_json::json!` value built a map and two strings for each correction).
struct KindHeader<'a>(&'a str);

impl Serialize for KindHeader<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("driftwatch.kind", self.0)?;
        m.end()
    }
}

struct DeadJson<'a>(&'a str, &'a DeadLetter);

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
        let d = self.1;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("entity", self.0)?;
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

/// Renders one entity's outputs as JSON lines, on every worker (the file sink's).
pub(crate) struct Lines {
    /// The entity each line names.
    pub(crate) entity: String,
}

impl crate::dataflow::Render for Lines {
    fn render(&self, output: &Output, bytes: &mut Vec<u8>) -> anyhow::Result<()> {
        Ok(write_line(bytes, &self.entity, output)?)
    }
}

/// Appends one output as a JSON line.
pub fn write_line(buf: &mut Vec<u8>, entity: &str, output: &Output) -> serde_json::Result<()> {
    match output {
        Output::Drift(record) => {
            serde_json::to_writer(&mut *buf, &super::record::DriftMessage::new(entity, record))?
        }
        Output::Correction(c) => serde_json::to_writer(&mut *buf, &CorrectionJson(entity, c))?,
        Output::DeadLetter(d) => serde_json::to_writer(&mut *buf, &DeadJson(entity, d))?,
    }
    buf.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataflow::DriftKind;
    use crate::row::{RowBuilder, ValueRef};

    /// A correction's line, byte for byte: its headers name the drift kind.
    #[test]
    fn a_correction_renders_its_key_row_and_kind() {
        let mut b = RowBuilder::default();
        b.push("id", ValueRef::Int(7)).unwrap();
        let key = b.finish_key();
        b.push("id", ValueRef::Int(7)).unwrap();
        b.push("note", ValueRef::Str("x")).unwrap();
        let row = Some(b.finish_row());
        let mut line = Vec::new();
        for (kind, row) in [(DriftKind::Missing, row), (DriftKind::Orphan, None)] {
            let c = Correction {
                key: key.clone(),
                kind,
                row,
            };
            write_line(&mut line, "orders", &Output::Correction(c)).unwrap();
        }
        assert_eq!(
            String::from_utf8(line).unwrap(),
            concat!(
                r#"{"entity":"orders","key":{"id":7},"value":{"id":7,"note":"x"},"headers":{"driftwatch.kind":"missing"}}"#,
                "\n",
                r#"{"entity":"orders","key":{"id":7},"value":null,"headers":{"driftwatch.kind":"orphan"}}"#,
                "\n"
            )
        );
    }
}
