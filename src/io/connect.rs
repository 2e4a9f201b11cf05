//! Corrections as Kafka Connect records: JsonConverter envelopes a JDBC sink applies as is.
//!
//! Kafka Connect's JDBC sinks (Debezium's included) read records through a converter and
//! need a schema: a key without one fails with "Configured primary key mode 'record_key'
//! cannot have null schema". With `corrections_format = "connect-json"` each correction's
//! key and value are `{"schema": …, "payload": …}` envelopes as `JsonConverter` with
//! `schemas.enable=true` writes them; a delete stays a tombstone. The schema is derived
//! from the spec's field types (a `decimal` column is Connect's `Decimal` at the spec's
//! scale, a `timestamp` Debezium's `ZonedTimestamp`, a `date` Connect's `Date`) and,
//! for other columns, from the value itself; every value field is optional.

use crate::row::{format_timestamp, Decimal, Key, Row, ValueRef};
use crate::spec::{FieldKind, Spec};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Renders corrections as Connect JSON envelopes for one entity.
pub(crate) struct ConnectJson {
    entity: String,
    /// Declared column types: kind and decimal scale.
    fields: BTreeMap<String, (FieldKind, Option<u8>)>,
}

impl ConnectJson {
    /// The renderer for `spec`'s entity.
    pub(crate) fn new(spec: &Spec) -> Self {
        ConnectJson {
            entity: spec.entity.clone(),
            fields: spec
                .fields
                .iter()
                .map(|(name, f)| (name.clone(), (f.kind, f.scale)))
                .collect(),
        }
    }

    /// The key's envelope: a struct of the key columns, none optional.
    pub(crate) fn key(&self, key: &Key) -> String {
        self.envelope(key.fields(), "Key", false)
    }

    /// The row's envelope: a struct of its columns, all optional.
    pub(crate) fn value(&self, row: &Row) -> String {
        self.envelope(row.fields(), "Value", true)
    }

    fn envelope<'a>(
        &self,
        columns: impl Iterator<Item = (&'a str, ValueRef<'a>)>,
        suffix: &str,
        optional: bool,
    ) -> String {
        let mut schemas = Vec::new();
        let mut payload = Map::new();
        for (name, value) in columns {
            let declared = self.fields.get(name).copied();
            let (mut schema, data) = field(value, declared);
            schema.insert("field".into(), name.into());
            schema.insert("optional".into(), optional.into());
            schemas.push(Value::Object(schema));
            payload.insert(name.to_string(), data);
        }
        json!({
            "schema": {
                "type": "struct",
                "fields": schemas,
                "optional": false,
                "name": format!("driftwatch.{}.{suffix}", self.entity),
            },
            "payload": payload,
        })
        .to_string()
    }
}

/// One column's schema (without its name) and payload value.
fn field(
    value: ValueRef<'_>,
    declared: Option<(FieldKind, Option<u8>)>,
) -> (Map<String, Value>, Value) {
    let kind = declared.map(|(k, _)| k);
    let logical = |ty: &str, name: &str| {
        let mut m = Map::new();
        m.insert("type".into(), ty.into());
        m.insert("name".into(), name.into());
        m.insert("version".into(), 1.into());
        m
    };
    let plain = |ty: &str| {
        let mut m = Map::new();
        m.insert("type".into(), ty.into());
        m
    };
    let decimal_schema = |scale: u8| {
        let mut m = logical("bytes", "org.apache.kafka.connect.data.Decimal");
        m.insert("parameters".into(), json!({"scale": scale.to_string()}));
        m
    };
    match value {
        ValueRef::Decimal(d) => {
            let scale = declared
                .and_then(|(_, s)| s)
                .unwrap_or(d.scale)
                .max(d.scale);
            (decimal_schema(scale), decimal_payload(d, scale))
        }
        ValueRef::Float(f) if kind == Some(FieldKind::Decimal) => {
            let scale = declared.and_then(|(_, s)| s).unwrap_or(2);
            match Decimal::from_f64(f) {
                Some(d) if d.scale <= scale => (decimal_schema(scale), decimal_payload(d, scale)),
                _ => (plain("float64"), json!(f)),
            }
        }
        ValueRef::Timestamp(ns) => (
            logical("string", "io.debezium.time.ZonedTimestamp"),
            format_timestamp(ns).into(),
        ),
        ValueRef::Date(days) => (
            logical("int32", "org.apache.kafka.connect.data.Date"),
            days.into(),
        ),
        ValueRef::Json(text) => (logical("string", "io.debezium.data.Json"), text.into()),
        ValueRef::Bool(b) => (plain("boolean"), b.into()),
        ValueRef::Int(i) => (plain("int64"), i.into()),
        ValueRef::Float(f) => (plain("float64"), json!(f)),
        ValueRef::Str(s) => (plain("string"), s.into()),
        ValueRef::Null => {
            let schema = match kind {
                Some(FieldKind::Decimal) => {
                    decimal_schema(declared.and_then(|(_, s)| s).unwrap_or(0))
                }
                Some(FieldKind::Timestamp) => logical("string", "io.debezium.time.ZonedTimestamp"),
                Some(FieldKind::Date) => logical("int32", "org.apache.kafka.connect.data.Date"),
                _ => plain("string"),
            };
            (schema, Value::Null)
        }
    }
}

/// Connect's `Decimal` payload: the unscaled value at `scale`, big-endian two's
/// complement, base64 (as `JsonConverter` writes bytes).
fn decimal_payload(d: Decimal, scale: u8) -> Value {
    let unscaled = d.mantissa * 10i128.pow(u32::from(scale - d.scale));
    let bytes = unscaled.to_be_bytes();
    // The shortest two's complement: drop leading bytes that only extend the sign.
    let mut start = 0;
    while start < 15 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    base64::engine::general_purpose::STANDARD
        .encode(&bytes[start..])
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::RowBuilder;

    fn spec() -> Spec {
        crate::spec::load_str(crate::demo::ORDERS_SPEC).unwrap()
    }

    #[test]
    fn decimals_are_connect_decimals_at_the_declared_scale() {
        // 12.5 at scale 2 is 1250 = 0x04e2; -1 is 0xff; 128 needs a sign byte.
        let d = |t: &str| Decimal::parse(t).unwrap();
        assert_eq!(decimal_payload(d("12.5"), 2), json!("BOI="));
        assert_eq!(decimal_payload(d("-0.01"), 2), json!("/w=="));
        assert_eq!(decimal_payload(d("1.28"), 2), json!("AIA="));
        assert_eq!(decimal_payload(d("0"), 2), json!("AA=="));
    }

    #[test]
    fn a_row_and_its_key_become_schemad_envelopes() {
        let c = ConnectJson::new(&spec());
        let mut b = RowBuilder::default();
        b.push("amount", ValueRef::Float(12.5)).unwrap();
        b.push("id", ValueRef::Int(7)).unwrap();
        b.push("note", ValueRef::Null).unwrap();
        b.push("updated_at", ValueRef::Timestamp(1_700_000_000_123_456_000))
            .unwrap();
        let value: Value = serde_json::from_str(&c.value(&b.finish_row())).unwrap();
        assert_eq!(value["payload"]["amount"], "BOI=");
        assert_eq!(value["payload"]["id"], 7);
        assert_eq!(value["payload"]["note"], Value::Null);
        assert_eq!(
            value["payload"]["updated_at"],
            "2023-11-14T22:13:20.123456Z"
        );
        let fields = value["schema"]["fields"].as_array().unwrap();
        let amount = fields.iter().find(|f| f["field"] == "amount").unwrap();
        assert_eq!(amount["name"], "org.apache.kafka.connect.data.Decimal");
        assert_eq!(amount["parameters"]["scale"], "2");
        assert!(fields.iter().all(|f| f["optional"] == true));
        let note = fields.iter().find(|f| f["field"] == "note").unwrap();
        assert_eq!(note["type"], "string");

        let mut k = RowBuilder::default();
        k.push("id", ValueRef::Int(7)).unwrap();
        let key: Value = serde_json::from_str(&c.key(&k.finish_key())).unwrap();
        assert_eq!(key["payload"], json!({"id": 7}));
        assert_eq!(
            key["schema"]["fields"],
            json!([{"type": "int64", "field": "id", "optional": false}])
        );
    }
}
