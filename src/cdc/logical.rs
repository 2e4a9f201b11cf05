//! Column types: the spec's declarations and Debezium's logical types, and decoding a row
//! object column by column into the row builder in one pass.

use super::json::Scalar;
use super::{DecodeError, SideId};
use crate::row::{parse_date, parse_timestamp, Decimal, Row, RowBuilder, ValueRef};
use crate::spec::{FieldKind, Spec, TimeUnit};
use crate::{FastMap, FastSet};
use base64::Engine as _;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// How one column's JSON value is turned into a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Plain JSON.
    Auto,
    /// An exact decimal; `bytes`: the schema says base64 big-endian bytes.
    Decimal { scale: Option<u8>, bytes: bool },
    /// An instant; integers are in `unit` since the epoch.
    Timestamp { unit: TimeUnit },
    /// A date; integers are days since the epoch.
    Date,
}

/// The spec's column declarations for one side.
#[derive(Debug, Clone, Default)]
pub struct ColumnTypes {
    kinds: FastMap<String, Kind>,
    drop: FastSet<String>,
}

impl ColumnTypes {
    /// The declarations of `spec`; on the target, ignored columns are dropped on decode.
    pub fn new(spec: &Spec, side: SideId) -> Self {
        let kinds = spec
            .fields
            .iter()
            .map(|(name, f)| {
                let kind = match f.kind {
                    FieldKind::Auto => Kind::Auto,
                    FieldKind::Decimal => Kind::Decimal {
                        scale: f.scale,
                        bytes: false,
                    },
                    FieldKind::Timestamp => Kind::Timestamp { unit: f.unit },
                    FieldKind::Date => Kind::Date,
                };
                (name.clone(), kind)
            })
            .collect();
        // Ignored columns are dropped from target rows, except those the side reads its
        // version or event time from.
        let s = spec.side(side);
        let keep = |c: &String| {
            s.version.as_ref().is_some_and(|v| v.list().contains(c)) || *c == s.event_time
        };
        let drop = if side == SideId::Target {
            spec.compare
                .ignore
                .iter()
                .filter(|c| !keep(c))
                .cloned()
                .collect()
        } else {
            FastSet::default()
        };
        ColumnTypes { kinds, drop }
    }

    fn kind(&self, name: &str, schema: Option<&SchemaTypes>) -> Kind {
        if let Some(k) = schema.and_then(|s| s.get(name)) {
            // The schema knows the encoding; the spec may add the scale it lacks.
            return match (*k, self.kinds.get(name)) {
                (Kind::Decimal { scale: None, bytes }, Some(Kind::Decimal { scale, .. })) => {
                    Kind::Decimal {
                        scale: *scale,
                        bytes,
                    }
                }
                (k, _) => k,
            };
        }
        self.kinds.get(name).copied().unwrap_or(Kind::Auto)
    }

    /// The kind of a key column (declarations only).
    pub fn key_kind(&self, name: &str) -> Kind {
        self.kinds.get(name).copied().unwrap_or(Kind::Auto)
    }
}

/// Column kinds read from a Debezium message schema.
pub type SchemaTypes = FastMap<String, Kind>;

/// Parsed Debezium schemas by their text: wrapped messages repeat the same schema.
#[derive(Default)]
pub struct SchemaCache {
    parsed: HashMap<Box<str>, Arc<SchemaTypes>>,
    /// Where the row image's Connect schema is published (the source side's, for
    /// corrections written as Connect records).
    pub(crate) publish: Option<crate::cdc::RowSchema>,
}

#[derive(Deserialize)]
struct SchemaNode {
    #[serde(default)]
    fields: Vec<SchemaNode>,
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    parameters: HashMap<String, serde_json::Value>,
}

impl SchemaCache {
    /// The column kinds of the row images (`after`, else `before`) in an envelope schema.
    pub fn get(&mut self, schema: &RawValue) -> Result<Arc<SchemaTypes>, DecodeError> {
        if let Some(hit) = self.parsed.get(schema.get()) {
            return Ok(hit.clone());
        }
        let node: SchemaNode = serde_json::from_str(schema.get())
            .map_err(|e| DecodeError::new(format!("unreadable schema: {e}")))?;
        let image = node
            .fields
            .iter()
            .find(|f| f.field.as_deref() == Some("after"))
            .or_else(|| {
                node.fields
                    .iter()
                    .find(|f| f.field.as_deref() == Some("before"))
            });
        if let Some(slot) = &self.publish {
            publish_image(slot, schema.get());
        }
        let mut types = SchemaTypes::default();
        for col in image.map(|i| i.fields.as_slice()).unwrap_or_default() {
            let (Some(field), Some(name)) = (&col.field, &col.name) else {
                continue;
            };
            let scale = col.parameters.get("scale").and_then(|s| {
                s.as_str()
                    .and_then(|s| s.parse().ok())
                    .or_else(|| s.as_u64().and_then(|n| u8::try_from(n).ok()))
            });
            let kind = match name.as_str() {
                "org.apache.kafka.connect.data.Decimal" => Kind::Decimal { scale, bytes: true },
                "io.debezium.data.VariableScaleDecimal" => Kind::Decimal {
                    scale: None,
                    bytes: true,
                },
                "io.debezium.time.Timestamp"
                | "org.apache.kafka.connect.data.Timestamp"
                | "io.debezium.time.ZonedTimestamp" => Kind::Timestamp { unit: TimeUnit::Ms },
                "io.debezium.time.MicroTimestamp" => Kind::Timestamp { unit: TimeUnit::Us },
                "io.debezium.time.NanoTimestamp" => Kind::Timestamp { unit: TimeUnit::Ns },
                "io.debezium.time.Date" | "org.apache.kafka.connect.data.Date" => Kind::Date,
                _ => continue,
            };
            types.insert(field.clone(), kind);
        }
        if self.parsed.len() >= 256 {
            self.parsed.clear();
        }
        let types = Arc::new(types);
        self.parsed.insert(schema.get().into(), types.clone());
        Ok(types)
    }
}

/// Publishes the Connect schema of the envelope's row image (`after`) to `slot`.
fn publish_image(slot: &crate::cdc::RowSchema, schema: &str) {
    let Ok(serde_json::Value::Object(envelope)) = serde_json::from_str(schema) else {
        return;
    };
    let image = envelope
        .get("fields")
        .and_then(|f| f.as_array())
        .and_then(|fields| fields.iter().find(|f| f["field"] == "after"));
    if let (Some(image), Ok(mut slot)) = (image, slot.lock()) {
        *slot = Some(Arc::new(image.clone()));
    }
}

fn decimal_from_base64(text: &str, scale: Option<u8>) -> Option<Decimal> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    Decimal::from_be_bytes(&bytes, scale?)
}

/// Converts one JSON value of column `name` by its kind and appends it to the row.
pub fn push_column(
    b: &mut RowBuilder,
    name: &str,
    value: Scalar<'_>,
    kind: Kind,
) -> Result<(), DecodeError> {
    let bad = |what: &str| {
        DecodeError::new(format!(
            "column `{name}`: {} is not {what}",
            value.describe()
        ))
    };
    let v = match (&value, kind) {
        (Scalar::Null, _) => ValueRef::Null,
        (Scalar::Bool(x), Kind::Auto) => ValueRef::Bool(*x),
        (Scalar::I64(i), Kind::Auto) => ValueRef::Int(*i),
        (Scalar::U64(u), Kind::Auto | Kind::Decimal { .. }) => ValueRef::Decimal(Decimal {
            mantissa: i128::from(*u),
            scale: 0,
        }),
        (Scalar::F64(f), Kind::Auto) => ValueRef::Float(*f),
        (Scalar::Str(s), Kind::Auto) => ValueRef::Str(s),
        (Scalar::Nested(n), Kind::Auto) => ValueRef::Json(n),
        (Scalar::I64(i), Kind::Decimal { .. }) => ValueRef::Decimal(Decimal {
            mantissa: i128::from(*i),
            scale: 0,
        }),
        (Scalar::F64(f), Kind::Decimal { .. }) => {
            Decimal::from_f64(*f).map_or(ValueRef::Float(*f), ValueRef::Decimal)
        }
        (Scalar::Str(s), Kind::Decimal { scale, bytes }) => {
            let parsed = if bytes {
                decimal_from_base64(s, scale).or_else(|| Decimal::parse(s))
            } else {
                Decimal::parse(s).or_else(|| decimal_from_base64(s, scale))
            };
            match parsed {
                Some(d) => ValueRef::Decimal(d),
                None if scale.is_none() => {
                    return Err(bad(
                        "a decimal (base64 bytes need a `scale` in the spec or schema)",
                    ))
                }
                None => return Err(bad("a decimal")),
            }
        }
        (Scalar::Nested(n), Kind::Decimal { .. }) => {
            // io.debezium.data.VariableScaleDecimal: {"scale": s, "value": base64}
            #[derive(Deserialize)]
            struct Vsd<'a> {
                scale: u8,
                #[serde(borrow)]
                value: Cow<'a, str>,
            }
            let v: Vsd<'_> = serde_json::from_str(n).map_err(|_| bad("a decimal"))?;
            ValueRef::Decimal(
                decimal_from_base64(&v.value, Some(v.scale)).ok_or_else(|| bad("a decimal"))?,
            )
        }
        (Scalar::I64(i), Kind::Timestamp { unit }) => {
            let factor = match unit {
                TimeUnit::Ms => 1_000_000,
                TimeUnit::Us => 1_000,
                TimeUnit::Ns => 1,
            };
            ValueRef::Timestamp(
                i.checked_mul(factor)
                    .ok_or_else(|| bad("a timestamp in range"))?,
            )
        }
        (Scalar::Str(s), Kind::Timestamp { .. }) => {
            ValueRef::Timestamp(parse_timestamp(s).ok_or_else(|| bad("an RFC 3339 timestamp"))?)
        }
        (Scalar::I64(i), Kind::Date) => {
            ValueRef::Date(i32::try_from(*i).map_err(|_| bad("a date in range"))?)
        }
        (Scalar::Str(s), Kind::Date) => {
            ValueRef::Date(parse_date(s).ok_or_else(|| bad("a YYYY-MM-DD date"))?)
        }
        (_, Kind::Decimal { .. }) => return Err(bad("a decimal")),
        (_, Kind::Timestamp { .. }) => return Err(bad("a timestamp")),
        (_, Kind::Date) => return Err(bad("a date")),
    };
    b.push(name, v).map_err(DecodeError::new)
}

/// Decodes a row image (a JSON object) into a row.
pub fn decode_row(
    raw: &RawValue,
    columns: &ColumnTypes,
    schema: Option<&SchemaTypes>,
    b: &mut RowBuilder,
) -> Result<Row, DecodeError> {
    b.clear();
    let mut error = None;
    let mut de = serde_json::Deserializer::from_str(raw.get());
    let seed = RowSeed {
        columns,
        schema,
        builder: b,
        error: &mut error,
    };
    match seed.deserialize(&mut de) {
        Ok(()) => Ok(b.finish_row()),
        Err(e) => Err(error.unwrap_or_else(|| DecodeError::new(format!("row image: {e}")))),
    }
}

struct RowSeed<'s> {
    columns: &'s ColumnTypes,
    schema: Option<&'s SchemaTypes>,
    builder: &'s mut RowBuilder,
    error: &'s mut Option<DecodeError>,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a row image (a JSON object)")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(super::json::Name(name)) = map.next_key()? {
            if self.columns.drop.contains(name.as_ref()) {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value: Scalar<'de> = map.next_value()?;
            let kind = self.columns.kind(&name, self.schema);
            if let Err(e) = push_column(self.builder, &name, value, kind) {
                let msg = e.0.clone();
                *self.error = Some(e);
                return Err(de::Error::custom(msg));
            }
        }
        Ok(())
    }
}
