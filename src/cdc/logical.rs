//! Column types: the spec's declarations and Debezium's logical types (from a message's
//! Connect schema), and which columns a side renames or drops on decode.

use super::placeholder::Placeholders;
use super::{DecodeError, SideId};
use crate::row::FieldFilter;
use crate::spec::{BytesEncoding, FieldKind, Spec, TimeUnit};
use crate::{FastMap, FastSet};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::HashMap;
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
    /// A time of day; integers are in `unit` since midnight.
    Time { unit: TimeUnit },
    /// A UUID: compared in lower case.
    Uuid,
    /// A comma-separated set: compared sorted.
    Set,
    /// Bytes, spelled as `encoding` says.
    Bytes { encoding: BytesEncoding },
    /// JSON text: compared in canonical form.
    Json,
    /// `io.debezium.data.Bits`: little-endian bytes, read as an integer.
    Bits,
}

/// The spec's column declarations for one side.
#[derive(Debug, Clone, Default)]
pub struct ColumnTypes {
    kinds: FastMap<String, Kind>,
    /// Columns dropped on decode (the target's ignored columns).
    pub(crate) drop: FastSet<String>,
    /// The target's names of renamed columns → the spec's (source) names.
    pub(crate) renames: FastMap<String, String>,
    /// The side's placeholder forms, when its capture sends placeholders.
    pub(crate) placeholders: Option<Placeholders>,
}

impl ColumnTypes {
    /// The declarations of `spec`; on the target, ignored columns are dropped on decode
    /// and renamed columns take the spec's names.
    pub fn new(spec: &Spec, side: SideId) -> Self {
        let kinds = spec
            .fields
            .iter()
            .map(|(name, f)| (name.clone(), kind_of(f)))
            .collect();
        let s = spec.side(side);
        let mut drop = FastSet::default();
        let mut renames = FastMap::default();
        if side == SideId::Target {
            // Ignored columns are dropped from target rows, except those the side reads
            // its version or event time from. Glob patterns are matched as columns come.
            let keep = |c: &String| {
                s.version.as_ref().is_some_and(|v| v.list().contains(c)) || *c == s.event_time
            };
            drop = spec
                .compare
                .ignore
                .iter()
                .filter(|c| !keep(c) && !FieldFilter::is_glob(c))
                .cloned()
                .collect();
            renames = spec
                .fields
                .iter()
                .filter_map(|(name, f)| Some((f.target.clone()?, name.clone())))
                .collect();
        }
        let placeholders = s
            .unavailable_placeholders
            .then(|| Placeholders::new(s.unavailable_placeholder.as_deref()).ok())
            .flatten();
        ColumnTypes {
            kinds,
            drop,
            renames,
            placeholders,
        }
    }

    /// The kind of a column that arrives as `wire` (its name in the message, which the
    /// schema uses) and is `name` in the spec.
    pub(crate) fn kind(&self, wire: &str, name: &str, schema: Option<&SchemaTypes>) -> Kind {
        if let Some(k) = schema.and_then(|s| s.get(wire)) {
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
    #[serde(default, rename = "type")]
    kind: Option<String>,
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
            let (Some(field), name) = (&col.field, col.name.as_deref()) else {
                continue;
            };
            let scale = col.parameters.get("scale").and_then(|s| {
                s.as_str()
                    .and_then(|s| s.parse().ok())
                    .or_else(|| s.as_u64().and_then(|n| u8::try_from(n).ok()))
            });
            let Some(kind) = connect_kind(name.unwrap_or_default(), col.kind.as_deref(), scale)
            else {
                continue;
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

/// The kind a Connect field's logical type (`name`, e.g. `io.debezium.time.MicroTime`)
/// and type (`bytes`, …) ask for; `None` for plain values. `scale` is the field's.
pub(crate) fn connect_kind(name: &str, ty: Option<&str>, scale: Option<u8>) -> Option<Kind> {
    let time = |unit| Kind::Time { unit };
    Some(match name {
        "" if ty == Some("bytes") => Kind::Bytes {
            encoding: BytesEncoding::Base64,
        },
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
        "io.debezium.time.Time" | "org.apache.kafka.connect.data.Time" => time(TimeUnit::Ms),
        "io.debezium.time.ZonedTime" => time(TimeUnit::Ms),
        "io.debezium.time.MicroTime" => time(TimeUnit::Us),
        "io.debezium.time.NanoTime" => time(TimeUnit::Ns),
        "io.debezium.data.Uuid" => Kind::Uuid,
        "io.debezium.data.EnumSet" => Kind::Set,
        "io.debezium.data.Json" => Kind::Json,
        "io.debezium.data.Bits" => Kind::Bits,
        _ => return None,
    })
}

/// The decoding kind a spec declaration asks for.
fn kind_of(f: &crate::spec::FieldSpec) -> Kind {
    match f.kind {
        FieldKind::Auto => Kind::Auto,
        FieldKind::Decimal => Kind::Decimal {
            scale: f.scale,
            bytes: false,
        },
        FieldKind::Timestamp => Kind::Timestamp { unit: f.unit },
        FieldKind::Date => Kind::Date,
        FieldKind::Time => Kind::Time { unit: f.unit },
        FieldKind::Uuid => Kind::Uuid,
        FieldKind::Set => Kind::Set,
        FieldKind::Bytes => Kind::Bytes {
            encoding: f.encoding,
        },
        FieldKind::Json => Kind::Json,
    }
}
