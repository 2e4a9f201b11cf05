//! Debezium change events (JSON), bare or in Kafka Connect's `schema`/`payload` wrapper.

use super::json::{as_millis, as_u64, lookup, lookup_many, Scalar};
use super::logical::{decode_row, SchemaTypes};
use super::{key, Change, DecodeError, Decoded, Decoder, Message};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// The parts of an envelope driftwatch reads; everything else is skipped unparsed.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    schema: Option<&'a RawValue>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
    #[serde(borrow, default)]
    before: Option<&'a RawValue>,
    #[serde(borrow, default)]
    after: Option<&'a RawValue>,
    #[serde(borrow, default)]
    op: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    source: Option<&'a RawValue>,
    #[serde(borrow, default)]
    ts_ms: Option<&'a RawValue>,
    #[serde(borrow, default)]
    transaction: Option<&'a RawValue>,
}

impl<'a> Envelope<'a> {
    fn part(&self, name: &str) -> Option<&'a RawValue> {
        match name {
            "source" => self.source,
            "ts_ms" => self.ts_ms,
            "transaction" => self.transaction,
            "after" => self.after,
            "before" => self.before,
            _ => None,
        }
    }

    /// The version's and the event time's values, in one pass over their part when they
    /// share one (as `source.lsn` and `source.ts_ms` do).
    fn positions(
        &self,
        version: Option<&[String]>,
        time: Option<&[String]>,
    ) -> Result<[Option<Scalar<'a>>; 2], DecodeError> {
        if let (Some(v), Some(t)) = (version, time) {
            if v.len() > 1 && t.len() > 1 && v[0] == t[0] {
                let mut out = [None, None];
                if let Some(raw) = self.part(&v[0]) {
                    lookup_many(raw, &[&v[1..], &t[1..]], &mut out)
                        .map_err(|e| DecodeError::new(format!("`{}`: {e}", v[0])))?;
                }
                return Ok(out);
            }
        }
        let one = |p: Option<&[String]>| p.map(|p| self.lookup(p)).transpose();
        Ok([one(version)?.flatten(), one(time)?.flatten()])
    }

    fn lookup(&self, path: &[String]) -> Result<Option<Scalar<'a>>, DecodeError> {
        match self.part(&path[0]) {
            None => Ok(None),
            Some(raw) => lookup(raw, &path[1..])
                .map_err(|e| DecodeError::new(format!("`{}`: {e}", path.join(".")))),
        }
    }
}

fn parse<'a>(text: &'a str) -> Result<Envelope<'a>, DecodeError> {
    serde_json::from_str(text).map_err(|e| DecodeError::new(format!("not a JSON object: {e}")))
}

/// Decodes one Debezium message.
pub fn decode(d: &mut Decoder, msg: &Message<'_>) -> Result<Decoded, DecodeError> {
    let Some(value) = msg.value else {
        return Ok(Decoded::Skip);
    };
    let text =
        std::str::from_utf8(value).map_err(|e| DecodeError::new(format!("not UTF-8: {e}")))?;
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed == "null" {
        return Ok(Decoded::Skip);
    }
    let outer = parse(trimmed)?;
    let (env, schema) = if outer.op.is_none() && (outer.schema.is_some() || outer.payload.is_some())
    {
        match outer.payload {
            None => return Ok(Decoded::Skip),
            Some(p) => (parse(p.get())?, outer.schema),
        }
    } else {
        (outer, None)
    };
    let op = env
        .op
        .as_deref()
        .ok_or_else(|| DecodeError::new("not a Debezium change event: no `op` field"))?;
    let types: Option<std::sync::Arc<SchemaTypes>> =
        schema.map(|s| d.schemas.get(s)).transpose()?;
    let image =
        match op {
            "c" | "r" | "u" => Some(env.after.ok_or_else(|| {
                DecodeError::new(format!("op `{op}` without an `after` row image"))
            })?),
            "d" => None,
            other => {
                return Err(DecodeError::new(format!(
                    "unknown op `{other}`: expected c, r, u or d"
                )))
            }
        };
    let row = image
        .map(|raw| decode_row(raw, &d.columns, types.as_deref(), &mut d.builder))
        .transpose()
        .map_err(|e| DecodeError::new(format!("after: {}", e.0)))?;
    let key = match (msg.key, &row) {
        (Some(k), _) if !k.is_empty() => key::from_message(d, k, false)?,
        (_, Some(row)) => key::from_row(d, row)?,
        (_, None) => {
            let before = env.before.ok_or_else(|| {
                DecodeError::new("delete without a message key or a `before` image: no key")
            })?;
            let image = decode_row(before, &d.columns, types.as_deref(), &mut d.builder)
                .map_err(|e| DecodeError::new(format!("before: {}", e.0)))?;
            key::from_row(d, &image)?
        }
    };
    let [version_value, time_value] =
        env.positions(d.version.as_deref(), d.event_time.as_deref())?;
    let version = match &d.version {
        None => None,
        Some(path) => {
            let v = version_value
                .ok_or_else(|| DecodeError::new(format!("no version at `{}`", path.join("."))))?;
            Some(as_u64(&v).ok_or_else(|| {
                DecodeError::new(format!(
                    "version at `{}` is {}, not a non-negative integer",
                    path.join("."),
                    v.describe()
                ))
            })?)
        }
    };
    let time_ms = match &d.event_time {
        None => Some(
            msg.timestamp_ms
                .and_then(super::json::event_ms)
                .ok_or_else(|| {
                    DecodeError::new(
                        "event time is `@timestamp` but the message has no valid timestamp",
                    )
                })?,
        ),
        Some(path) => {
            let v = time_value.ok_or_else(|| {
                DecodeError::new(format!("no event time at `{}`", path.join(".")))
            })?;
            Some(as_millis(&v).ok_or_else(|| {
                DecodeError::new(format!(
                    "event time at `{}` is {}, not milliseconds since the epoch (up to year 9999)",
                    path.join("."),
                    v.describe()
                ))
            })?)
        }
    };
    Ok(Decoded::Change(Change {
        key,
        version,
        time_ms,
        row,
    }))
}
