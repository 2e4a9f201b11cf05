//! Flat upserts: key → row as a JSON object, `null` = deleted. In files a line is
//! `{"key":…,"value":…,"timestamp":…}` (key and timestamp optional).

use super::column::decode_row;
use super::json::{parse_scalar, Scalar};
use super::{key, Change, DecodeError, Decoded, Decoder, Message};
use crate::row::{Row, ValueRef};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;

/// A row value as a version part: numbers, digit strings, strings, instants (ns).
fn part_of(v: ValueRef<'_>) -> Option<Scalar<'_>> {
    Some(match v {
        ValueRef::Null => Scalar::Null,
        ValueRef::Int(i) => Scalar::I64(i),
        ValueRef::Decimal(d) if d.scale == 0 => match i64::try_from(d.mantissa) {
            Ok(i) => Scalar::I64(i),
            Err(_) => Scalar::Str(Cow::Owned(d.mantissa.to_string())),
        },
        ValueRef::Str(s) => Scalar::Str(Cow::Borrowed(s)),
        ValueRef::Timestamp(ns) => Scalar::I64(ns),
        _ => return None,
    })
}

fn millis_of(v: ValueRef<'_>) -> Option<u64> {
    let ms = match v {
        ValueRef::Int(i) => u64::try_from(i).ok(),
        ValueRef::Timestamp(ns) => u64::try_from(ns.div_euclid(1_000_000)).ok(),
        ValueRef::Str(s) => s.parse().ok().or_else(|| {
            crate::row::parse_timestamp(s)
                .and_then(|ns| u64::try_from(ns.div_euclid(1_000_000)).ok())
        }),
        _ => None,
    }?;
    super::json::event_ms(ms)
}

/// Decodes one upsert message (Kafka: key + value; file: a line envelope).
pub fn decode(d: &mut Decoder, msg: &Message<'_>) -> Result<Decoded, DecodeError> {
    let mut timestamp = msg.timestamp_ms;
    let value_bytes = msg.value.unwrap_or(b"null");
    let text = super::utf8(value_bytes).map_err(|e| DecodeError::new(format!("not UTF-8: {e}")))?;
    let (key_raw, value_raw): (Option<&RawValue>, &RawValue) = if msg.key.is_some()
        || msg.value.is_none()
    {
        let raw: &RawValue = serde_json::from_str(text)
            .map_err(|e| DecodeError::new(format!("value is not JSON: {e}")))?;
        (None, raw)
    } else {
        if text.trim().is_empty() {
            return Ok(Decoded::Skip);
        }
        let line: HashMap<Cow<'_, str>, &RawValue> = serde_json::from_str(text).map_err(|e| {
            DecodeError::new(format!("not an upsert line {{\"key\":…,\"value\":…}}: {e}"))
        })?;
        let value = *line.get("value").ok_or_else(|| {
            DecodeError::new("upsert line without a `value` (use null for a delete)")
        })?;
        if let Some(ts) = line.get("timestamp") {
            let ts = parse_scalar(ts.get())
                .ok()
                .and_then(|s| super::json::as_millis(&s))
                .ok_or_else(|| {
                    DecodeError::new("line `timestamp` is not milliseconds since the epoch")
                })?;
            timestamp = i64::try_from(ts).ok();
        }
        (line.get("key").copied(), value)
    };
    let row: Option<Row> = match value_raw.get() {
        "null" => None,
        t if t.starts_with('{') => Some(decode_row(
            value_raw,
            &d.columns,
            None,
            &mut d.builder,
            true,
        )?),
        _ => return Err(DecodeError::new("value is neither a JSON object nor null")),
    };
    let key = match (msg.key, key_raw, &row) {
        (Some(k), _, _) => key::from_message(d, k, true)?,
        (None, Some(k), _) => key::from_message(d, k.get().as_bytes(), false)?,
        (None, None, Some(row)) => key::from_row(d, row)?,
        (None, None, None) => return Err(DecodeError::new("delete without a key")),
    };
    let version = match &row {
        Some(row) if d.version_parts > 0 => {
            let mut parts = Vec::with_capacity(d.version_parts);
            for path in &d.paths[..d.version_parts] {
                let v = row.get(&path[0]).ok_or_else(|| {
                    DecodeError::new(format!("no version field `{}` in the row", path[0]))
                })?;
                parts.push(Some(part_of(v).ok_or_else(|| {
                    DecodeError::new(format!(
                        "version field `{}` is not a non-negative integer or a string",
                        path[0]
                    ))
                })?));
            }
            Some(d.version(&parts)?)
        }
        _ => None,
    };
    let time_ms = match (d.event_time, &row) {
        (true, Some(row)) => {
            let path = &d.paths[d.version_parts];
            let v = row.get(&path[0]).ok_or_else(|| {
                DecodeError::new(format!("no event time field `{}` in the row", path[0]))
            })?;
            Some(millis_of(v).ok_or_else(|| {
                DecodeError::new(format!(
                    "event time field `{}` is not milliseconds or an RFC 3339 instant",
                    path[0]
                ))
            })?)
        }
        _ => timestamp.and_then(super::json::event_ms),
    };
    if !d.event_time && time_ms.is_none() && row.is_some() {
        return Err(DecodeError::new(
            "event time is `@timestamp` but the message has no timestamp",
        ));
    }
    Ok(Decoded::Change(Change {
        key,
        version,
        time_ms,
        row,
    }))
}
