//! What one sample message says about its table: the connector, the key columns, and
//! the columns' types from the Connect schema.

use crate::cdc::Kind;
use crate::spec::TimeUnit;
use serde_json::Value;

/// A column type learned from a Connect schema, as a spec declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    /// The column's name.
    pub(crate) name: String,
    /// The spec's `type`.
    pub(crate) kind: &'static str,
    /// `scale` for decimals, when the schema gives it.
    pub(crate) scale: Option<u8>,
    /// `unit` for integer timestamps and times.
    pub(crate) unit: Option<&'static str>,
    /// The Connect logical type it came from.
    pub(crate) logical: String,
}

/// What a topic's sample message tells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Table {
    /// `source.connector` (`postgresql`, `mysql`, …), if the event names it.
    pub(crate) connector: Option<String>,
    /// The key columns, from the message key.
    pub(crate) key: Vec<String>,
    /// Columns with a logical type, from the value's Connect schema.
    pub(crate) columns: Vec<Column>,
    /// Whether the value carried a Connect schema at all.
    pub(crate) schema: bool,
}

/// The Debezium event of a message value: the payload of a `schema`/`payload` envelope,
/// or the value itself; `None` unless it is a row change.
fn event(value: &Value) -> Option<&Value> {
    let e = match value.get("payload") {
        Some(p) if value.get("op").is_none() => p,
        _ => value,
    };
    matches!(e.get("op")?.as_str()?, "c" | "r" | "u" | "d").then_some(e)
}

/// Whether a message value is a Debezium row change (the sample a table needs).
pub(crate) fn is_row_change(value: &str) -> bool {
    serde_json::from_str::<Value>(value)
        .ok()
        .is_some_and(|v| event(&v).is_some())
}

/// The table facts in one row-change message.
pub(crate) fn table(key: Option<&str>, value: &str) -> Option<Table> {
    let value: Value = serde_json::from_str(value).ok()?;
    let e = event(&value)?;
    let connector = e["source"]["connector"].as_str().map(str::to_string);
    let key = key
        .and_then(|k| serde_json::from_str::<Value>(k).ok())
        .map(|k| match k.get("payload") {
            Some(p) if k.get("schema").is_some() => p.clone(),
            _ => k,
        })
        .and_then(|k| k.as_object().map(|o| o.keys().cloned().collect()))
        .unwrap_or_default();
    let image = value["schema"]["fields"]
        .as_array()
        .and_then(|fields| fields.iter().find(|f| f["field"] == "after"));
    let columns = image
        .and_then(|i| i["fields"].as_array())
        .map(|fields| fields.iter().filter_map(column).collect())
        .unwrap_or_default();
    Some(Table {
        connector,
        key,
        columns,
        schema: image.is_some(),
    })
}

/// The declaration a Connect field asks for, if it has a logical type the spec names.
fn column(field: &Value) -> Option<Column> {
    let name = field["field"].as_str()?.to_string();
    let logical = field["name"].as_str().unwrap_or_default();
    let ty = field["type"].as_str();
    let scale = field["parameters"]["scale"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| {
            field["parameters"]["scale"]
                .as_u64()
                .and_then(|s| u8::try_from(s).ok())
        });
    // The decoders' own reading of the schema; a unit only for integer encodings (a
    // zoned timestamp or time is a string).
    let unit = |u: TimeUnit| (ty != Some("string")).then_some(u.name());
    let (kind, unit, scale) = match crate::cdc::connect_kind(logical, ty, scale)? {
        Kind::Decimal { scale, .. } => ("decimal", None, scale),
        Kind::Timestamp { unit: u } => ("timestamp", unit(u), None),
        Kind::Time { unit: u } => ("time", unit(u), None),
        Kind::Date => ("date", None, None),
        Kind::Json => ("json", None, None),
        Kind::Uuid => ("uuid", None, None),
        Kind::Set => ("set", None, None),
        Kind::Bytes { .. } => ("bytes", None, None),
        // Bits read as integers; there is nothing to declare.
        Kind::Bits | Kind::Auto => return None,
    };
    Some(Column {
        name,
        kind,
        scale,
        unit,
        logical: if logical.is_empty() {
            "bytes".into()
        } else {
            logical.into()
        },
    })
}

/// The version paths for a connector (DESIGN.md's table), if it is one we know.
pub(crate) fn version(connector: &str) -> Option<&'static [&'static str]> {
    Some(match connector {
        "postgresql" => &["source.lsn"],
        "mysql" | "mariadb" => &["source.file", "source.pos", "source.row"],
        "sqlserver" => &[
            "source.commit_lsn",
            "source.change_lsn",
            "source.event_serial_no",
        ],
        "oracle" => &["source.scn"],
        "mongodb" => &["source.ts_ms", "source.ord"],
        "db2" | "informix" => &["source.commit_lsn", "source.change_lsn"],
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_event_gives_connector_key_and_types() {
        let value = r#"{"schema":{"type":"struct","fields":[{"type":"struct","fields":[
            {"type":"int32","field":"id"},
            {"type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"},"field":"amount"},
            {"type":"int64","name":"io.debezium.time.MicroTimestamp","field":"updated_at"},
            {"type":"string","field":"note"}],"field":"after"}]},
            "payload":{"op":"c","after":{"id":1},"source":{"connector":"postgresql"}}}"#;
        let t = table(Some(r#"{"schema":{},"payload":{"id":1}}"#), value).unwrap();
        assert_eq!(t.connector.as_deref(), Some("postgresql"));
        assert_eq!(t.key, ["id"]);
        assert!(t.schema);
        let kinds: Vec<_> = t
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.kind, c.scale, c.unit))
            .collect();
        assert_eq!(
            kinds,
            [
                ("amount", "decimal", Some(2), None),
                ("updated_at", "timestamp", None, Some("us"))
            ]
        );
        assert!(table(None, r#"{"status":"BEGIN","id":"1"}"#).is_none());
        assert_eq!(version("mysql").unwrap().len(), 3);
    }
}
