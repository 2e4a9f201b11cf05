//! JSON rendering of rows, keys and values for drift records and corrections.

use super::{format_date, format_time, format_timestamp, Key, Row, ValueRef};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

/// Renders a value: decimals as exact JSON numbers, instants as RFC 3339 UTC strings,
/// dates as `YYYY-MM-DD`, times as `HH:MM:SS.f`, bytes as base64, nested JSON as itself.
pub struct JsonValue<'a>(pub ValueRef<'a>);

/// Renders a row as a JSON object.
pub struct JsonRow<'a>(pub &'a Row);

/// Renders a key as a JSON object of its columns (`{"id":42}`).
pub struct JsonKey<'a>(pub &'a Key);

fn raw<S: Serializer>(s: S, text: String) -> Result<S::Ok, S::Error> {
    match serde_json::value::RawValue::from_string(text) {
        Ok(raw) => raw.serialize(s),
        Err(e) => Err(serde::ser::Error::custom(e)),
    }
}

impl Serialize for JsonValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            ValueRef::Null => s.serialize_unit(),
            ValueRef::Bool(b) => s.serialize_bool(b),
            ValueRef::Int(i) => s.serialize_i64(i),
            ValueRef::Float(f) => s.serialize_f64(f),
            ValueRef::Decimal(d) => raw(s, d.to_string()),
            ValueRef::Str(t) => s.serialize_str(t),
            ValueRef::Timestamp(t) => s.serialize_str(&format_timestamp(t)),
            ValueRef::Date(d) => s.serialize_str(&format_date(d)),
            ValueRef::Json(j) => raw(s, j.to_string()),
            ValueRef::Time(t) => s.serialize_str(&format_time(t)),
            ValueRef::Bytes(b) => {
                use base64::Engine as _;
                s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
            }
            // Unknown values are left out of rows (see `fields`); alone, they are null.
            ValueRef::Unavailable => s.serialize_unit(),
        }
    }
}

fn fields<'a, S: Serializer>(
    s: S,
    it: impl Iterator<Item = (&'a str, ValueRef<'a>)>,
) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(None)?;
    for (name, value) in it.filter(|(_, v)| *v != ValueRef::Unavailable) {
        map.serialize_entry(name, &JsonValue(value))?;
    }
    map.end()
}

impl Serialize for JsonRow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        fields(s, self.0.fields())
    }
}

impl Serialize for JsonKey<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        fields(s, self.0.fields())
    }
}

impl JsonKey<'_> {
    /// The key as compact JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
