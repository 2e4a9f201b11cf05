//! Corrections as Kafka Connect records: JsonConverter envelopes a JDBC sink applies as is.
//!
//! Kafka Connect's JDBC sinks (Debezium's included) read records through a converter and
//! need a schema: a key without one fails with "Configured primary key mode 'record_key'
//! cannot have null schema". With `corrections_format = "connect-json"` each correction's
//! key and value are `{"schema": …, "payload": …}` envelopes as `JsonConverter` with
//! `schemas.enable=true` writes them; a delete stays a tombstone.
//!
//! The schema is the source's own: the Connect schema of the row images its Debezium
//! events carry (published by the source's decoders in this process), each value encoded
//! as that schema says (a `Decimal` at its scale, a `MicroTimestamp` in microseconds, …).
//! When the source's events carry no schema (or this process reads none of them), or a
//! value does not fit it, the schema is derived from the spec's field types (a `decimal`
//! column is Connect's `Decimal` at the spec's scale, a `timestamp` Debezium's
//! `ZonedTimestamp`, a `date` Connect's `Date`) and, for other columns, from the value
//! itself; every value field is optional.

use crate::cdc::RowSchema;
use crate::row::{format_time, format_timestamp, Decimal, Key, Row, ValueRef};
use crate::spec::{FieldKind, Spec};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Renders corrections as Connect JSON envelopes for one entity.
pub(crate) struct ConnectJson {
    entity: String,
    /// The source's row schema, when its decoders have seen one.
    source: RowSchema,
    /// Declared column types: kind and decimal scale.
    fields: BTreeMap<String, (FieldKind, Option<u8>)>,
}

impl ConnectJson {
    /// The renderer for `spec`'s entity.
    pub(crate) fn new(spec: &Spec, source: RowSchema) -> Self {
        ConnectJson {
            entity: spec.entity.clone(),
            source,
            fields: spec
                .fields
                .iter()
                .map(|(name, f)| (name.clone(), (f.kind, f.scale)))
                .collect(),
        }
    }

    /// The key's envelope: a struct of the key columns, none optional.
    pub(crate) fn key(&self, key: &Key) -> String {
        self.render(key.fields(), "Key", false)
    }

    /// The row's envelope: a struct of its columns, all optional.
    pub(crate) fn value(&self, row: &Row) -> String {
        self.render(row.fields(), "Value", true)
    }

    /// In the source's schema when there is one and every value fits it, else derived.
    fn render<'a>(
        &self,
        columns: impl Iterator<Item = (&'a str, ValueRef<'a>)> + Clone,
        suffix: &str,
        optional: bool,
    ) -> String {
        let source = self.source.lock().ok().and_then(|s| s.clone());
        let in_source = source.and_then(|image| {
            let fields = image["fields"].as_array()?;
            let mut name = image["name"].as_str().unwrap_or("row").to_string();
            if suffix == "Key" {
                name = name.trim_end_matches(".Value").to_string() + ".Key";
            }
            let schema = |column: &str, _: ValueRef<'_>| {
                fields.iter().find(|f| f["field"] == column).cloned()
            };
            envelope(columns.clone(), schema, &name, optional)
        });
        in_source.unwrap_or_else(|| {
            let schema = |column: &str, value: ValueRef<'_>| {
                Some(Value::Object(derived(
                    value,
                    self.fields.get(column).copied(),
                )))
            };
            let name = format!("driftwatch.{}.{suffix}", self.entity);
            envelope(columns, schema, &name, optional).expect("a derived schema fits its value")
        })
    }
}

/// The columns as a `{"schema", "payload"}` envelope: each column takes the field schema
/// `schema` gives it, and its value is encoded as that says. `None` when a column has no
/// field schema or its value does not fit it.
fn envelope<'a>(
    columns: impl Iterator<Item = (&'a str, ValueRef<'a>)>,
    schema: impl Fn(&str, ValueRef<'_>) -> Option<Value>,
    name: &str,
    optional: bool,
) -> Option<String> {
    let mut schemas = Vec::new();
    let mut payload = Map::new();
    // An unknown column (a placeholder with no earlier value) is left out: a JDBC sink
    // then leaves the target's column as it is.
    for (column, value) in columns.filter(|(_, v)| *v != ValueRef::Unavailable) {
        let mut field = schema(column, value)?;
        payload.insert(column.to_string(), encode(&field, value)?);
        field["field"] = column.into();
        field["optional"] = optional.into();
        schemas.push(field);
    }
    Some(
        json!({
            "schema": {"type": "struct", "fields": schemas, "optional": false, "name": name},
            "payload": payload,
        })
        .to_string(),
    )
}

/// A value in the form its Connect field schema says; `None` if it does not fit.
fn encode(schema: &Value, value: ValueRef<'_>) -> Option<Value> {
    let ty = schema["type"].as_str()?;
    let name = schema["name"].as_str();
    let scale = || -> Option<u8> {
        let s = &schema["parameters"]["scale"];
        s.as_str()
            .and_then(|s| s.parse().ok())
            .or_else(|| s.as_u64().and_then(|n| u8::try_from(n).ok()))
    };
    let decimal = |d: Decimal| -> Option<Value> {
        let scale = scale()?;
        (d.scale <= scale).then(|| decimal_payload(d, scale))
    };
    Some(match (ty, name, value) {
        (_, _, ValueRef::Null) => Value::Null,
        ("bytes", Some("org.apache.kafka.connect.data.Decimal"), ValueRef::Decimal(d)) => {
            decimal(d)?
        }
        ("bytes", Some("org.apache.kafka.connect.data.Decimal"), ValueRef::Float(f)) => {
            decimal(Decimal::from_f64(f)?)?
        }
        ("string", Some("io.debezium.time.ZonedTimestamp"), ValueRef::Timestamp(ns)) => {
            format_timestamp(ns).into()
        }
        ("int64", Some("io.debezium.time.MicroTimestamp"), ValueRef::Timestamp(ns)) => {
            (ns / 1_000).into()
        }
        ("int64", Some("io.debezium.time.NanoTimestamp"), ValueRef::Timestamp(ns)) => ns.into(),
        (
            "int64",
            Some("io.debezium.time.Timestamp" | "org.apache.kafka.connect.data.Timestamp"),
            ValueRef::Timestamp(ns),
        ) => (ns / 1_000_000).into(),
        (
            "int32",
            Some("io.debezium.time.Date" | "org.apache.kafka.connect.data.Date"),
            ValueRef::Date(days),
        ) => days.into(),
        (
            "int32",
            Some("io.debezium.time.Time" | "org.apache.kafka.connect.data.Time"),
            ValueRef::Time(ns),
        ) => (ns / 1_000_000).into(),
        ("int64", Some("io.debezium.time.MicroTime"), ValueRef::Time(ns)) => (ns / 1_000).into(),
        ("int64", Some("io.debezium.time.NanoTime"), ValueRef::Time(ns)) => ns.into(),
        ("string", Some("io.debezium.time.ZonedTime"), ValueRef::Time(ns)) => {
            format!("{}Z", format_time(ns)).into()
        }
        ("bytes", None, ValueRef::Bytes(b)) => {
            base64::engine::general_purpose::STANDARD.encode(b).into()
        }
        ("string", _, ValueRef::Str(s)) => s.into(),
        ("string", _, ValueRef::Json(j)) => j.into(),
        ("string", _, ValueRef::Decimal(d)) => d.to_string().into(),
        ("int8" | "int16" | "int32" | "int64", None, ValueRef::Int(i)) => i.into(),
        ("float32" | "float64", None, ValueRef::Float(f)) => json!(f),
        ("float32" | "float64", None, ValueRef::Int(i)) => json!(i as f64),
        ("float32" | "float64", None, ValueRef::Decimal(d)) => json!(d.to_f64()),
        ("boolean", None, ValueRef::Bool(b)) => b.into(),
        _ => return None,
    })
}

/// The schema derived for a column (without its name) from the spec's declared type and
/// the value itself.
fn derived(value: ValueRef<'_>, declared: Option<(FieldKind, Option<u8>)>) -> Map<String, Value> {
    let kind = declared.map(|(k, _)| k);
    let declared_scale = declared.and_then(|(_, s)| s);
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
    let decimal = |scale: u8| {
        let mut m = logical("bytes", "org.apache.kafka.connect.data.Decimal");
        m.insert("parameters".into(), json!({"scale": scale.to_string()}));
        m
    };
    let timestamp = || logical("string", "io.debezium.time.ZonedTimestamp");
    let date = || logical("int32", "org.apache.kafka.connect.data.Date");
    match value {
        ValueRef::Decimal(d) => decimal(declared_scale.unwrap_or(d.scale).max(d.scale)),
        ValueRef::Float(f) if kind == Some(FieldKind::Decimal) => {
            let scale = declared_scale.unwrap_or(2);
            match Decimal::from_f64(f) {
                Some(d) if d.scale <= scale => decimal(scale),
                _ => plain("float64"),
            }
        }
        ValueRef::Timestamp(_) => timestamp(),
        ValueRef::Date(_) => date(),
        ValueRef::Json(_) => logical("string", "io.debezium.data.Json"),
        ValueRef::Time(_) => logical("int64", "io.debezium.time.MicroTime"),
        ValueRef::Bytes(_) => plain("bytes"),
        ValueRef::Unavailable => plain("string"),
        ValueRef::Bool(_) => plain("boolean"),
        ValueRef::Int(_) => plain("int64"),
        ValueRef::Float(_) => plain("float64"),
        ValueRef::Str(_) => plain("string"),
        ValueRef::Null => match kind {
            Some(FieldKind::Decimal) => decimal(declared_scale.unwrap_or(0)),
            Some(FieldKind::Timestamp) => timestamp(),
            Some(FieldKind::Date) => date(),
            _ => plain("string"),
        },
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

    fn without_source() -> ConnectJson {
        ConnectJson::new(&super::tests_spec(), RowSchema::default())
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
        let c = without_source();
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

#[cfg(test)]
mod source_schema {
    use super::*;
    use crate::row::RowBuilder;

    /// The `after` schema of a Debezium PostgreSQL event (decimals precise, timestamps
    /// in microseconds), as the source's decoders publish it.
    fn debezium_image() -> RowSchema {
        let image = json!({"type": "struct", "optional": true, "field": "after",
            "name": "shop.public.orders.Value", "fields": [
            {"type": "int64", "optional": false, "field": "id"},
            {"type": "int32", "optional": false, "field": "items"},
            {"type": "bytes", "optional": false, "name": "org.apache.kafka.connect.data.Decimal",
             "version": 1, "parameters": {"scale": "2", "connect.decimal.precision": "12"},
             "field": "amount"},
            {"type": "string", "optional": true, "field": "note"},
            {"type": "int64", "optional": false, "name": "io.debezium.time.MicroTimestamp",
             "version": 1, "field": "updated_at"}]});
        std::sync::Arc::new(std::sync::Mutex::new(Some(std::sync::Arc::new(image))))
    }

    fn row(note: ValueRef<'_>) -> Row {
        let mut b = RowBuilder::default();
        b.push("amount", ValueRef::Decimal(Decimal::parse("12.5").unwrap()))
            .unwrap();
        b.push("id", ValueRef::Int(7)).unwrap();
        b.push("items", ValueRef::Int(3)).unwrap();
        b.push("note", note).unwrap();
        b.push("updated_at", ValueRef::Timestamp(1_700_000_000_123_456_000))
            .unwrap();
        b.finish_row()
    }

    #[test]
    fn corrections_take_the_sources_own_schema() {
        let c = ConnectJson::new(&super::tests_spec(), debezium_image());
        let value: Value = serde_json::from_str(&c.value(&row(ValueRef::Null))).unwrap();
        assert_eq!(value["schema"]["name"], "shop.public.orders.Value");
        let fields = value["schema"]["fields"].as_array().unwrap();
        let items = fields.iter().find(|f| f["field"] == "items").unwrap();
        assert_eq!(
            (items["field"].as_str(), items["type"].as_str()),
            (Some("items"), Some("int32"))
        );
        assert_eq!(value["payload"]["amount"], "BOI=");
        assert_eq!(value["payload"]["updated_at"], 1_700_000_000_123_456i64);
        assert_eq!(value["payload"]["note"], Value::Null);
        let mut k = RowBuilder::default();
        k.push("id", ValueRef::Int(7)).unwrap();
        let key: Value = serde_json::from_str(&c.key(&k.finish_key())).unwrap();
        assert_eq!(key["schema"]["name"], "shop.public.orders.Key");
        assert_eq!(key["schema"]["fields"][0]["optional"], false);
        assert_eq!(key["payload"], json!({"id": 7}));
    }

    #[test]
    fn a_value_that_does_not_fit_the_schema_falls_back_to_the_derived_one() {
        let c = ConnectJson::new(&super::tests_spec(), debezium_image());
        // A note that is a number, where the source's schema says string.
        let value: Value = serde_json::from_str(&c.value(&row(ValueRef::Int(5)))).unwrap();
        assert_eq!(value["schema"]["name"], "driftwatch.orders.Value");
        assert_eq!(
            value["payload"]["updated_at"],
            "2023-11-14T22:13:20.123456Z"
        );
    }
}

#[cfg(test)]
fn tests_spec() -> Spec {
    crate::spec::load_str(crate::demo::ORDERS_SPEC).unwrap()
}
