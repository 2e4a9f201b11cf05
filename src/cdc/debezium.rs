//! Debezium change events (JSON), bare or in Kafka Connect's `schema`/`payload` wrapper.

mod one_pass;
mod scan;

pub(super) use scan::{token, Shapes};

use super::column::decode_row;
use super::json::{as_millis, lookup, lookup_many, Scalar};
use super::logical::SchemaTypes;
use super::{key, Change, DecodeError, Decoded, Decoder, Message, NonRow, Version};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// The most paths a side may name for its version and event time together.
pub(crate) const MAX_PATHS: usize = 9;

/// The parts of an envelope driftwatch reads; everything else is skipped unparsed.
#[derive(Deserialize)]
struct Envelope<'a> {
    // Present (even as `null`: a tombstone as old JsonConverters wrote it) or absent.
    #[serde(borrow, default, deserialize_with = "present")]
    schema: Option<Option<&'a RawValue>>,
    #[serde(borrow, default, deserialize_with = "present")]
    payload: Option<Option<&'a RawValue>>,
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
    // Fields of events that are not row changes.
    #[serde(borrow, default)]
    status: Option<&'a RawValue>,
    #[serde(borrow, default)]
    ddl: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "tableChanges")]
    table_changes: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "databaseName")]
    database_name: Option<&'a RawValue>,
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

    /// The values at `paths` (the version's, then the event time's) into `out`, in one
    /// pass over their part when they share one (as `source.lsn` and `source.ts_ms` do).
    fn positions(
        &self,
        paths: &[Vec<String>],
        out: &mut [Option<Scalar<'a>>],
    ) -> Result<(), DecodeError> {
        let Some(first) = paths.first() else {
            return Ok(());
        };
        if paths.iter().all(|p| p.len() > 1 && p[0] == first[0]) && paths.len() <= MAX_PATHS {
            if let Some(raw) = self.part(&first[0]) {
                let mut tails: [&[String]; MAX_PATHS] = [&[]; MAX_PATHS];
                for (t, p) in tails.iter_mut().zip(paths) {
                    *t = &p[1..];
                }
                lookup_many(raw, &tails[..paths.len()], out)
                    .map_err(|e| DecodeError::new(format!("`{}`: {e}", first[0])))?;
            }
            return Ok(());
        }
        for (slot, p) in out.iter_mut().zip(paths) {
            *slot = self.lookup(p)?;
        }
        Ok(())
    }

    fn lookup(&self, path: &[String]) -> Result<Option<Scalar<'a>>, DecodeError> {
        match self.part(&path[0]) {
            None => Ok(None),
            Some(raw) => lookup(raw, &path[1..])
                .map_err(|e| DecodeError::new(format!("`{}`: {e}", path.join(".")))),
        }
    }
}

/// A field that is present, possibly `null` (`Some(None)`), as opposed to absent.
fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<&'de RawValue>>, D::Error> {
    Option::<&'de RawValue>::deserialize(d).map(Some)
}

fn parse<'a>(text: &'a str) -> Result<Envelope<'a>, DecodeError> {
    serde_json::from_str(text).map_err(|e| DecodeError::new(format!("not a JSON object: {e}")))
}

/// The event's version and event time (ms). Row changes need both (`required`); a
/// truncate may lack a version. With `@timestamp`, the time is the message's.
fn positions(
    d: &Decoder,
    env: &Envelope<'_>,
    required: bool,
) -> Result<(Option<Version>, Option<u64>), DecodeError> {
    let mut found: [Option<Scalar<'_>>; MAX_PATHS] = Default::default();
    let found = &mut found[..d.paths.len().min(MAX_PATHS)];
    env.positions(&d.paths, found)?;
    positions_found(d, found, required)
}

/// [`positions`] from the values found at the decoder's paths.
fn positions_found(
    d: &Decoder,
    found: &[Option<Scalar<'_>>],
    required: bool,
) -> Result<(Option<Version>, Option<u64>), DecodeError> {
    let parts = &found[..d.version_parts];
    // The common case, one number, made where it lies (`Decoder::version` copies the
    // parts first).
    let number = match parts {
        [Some(one)] => Version::number(one),
        _ => None,
    };
    let version = match number {
        Some(v) => Some(v),
        None if d.version_parts > 0 && (required || parts.iter().all(Option::is_some)) => {
            Some(d.version(parts)?)
        }
        None => None,
    };
    if !d.event_time {
        return Ok((version, None));
    }
    // Joined only for an error: this runs for every event.
    let path = || d.paths[d.version_parts].join(".");
    let Some(v) = found[d.version_parts].as_ref() else {
        return match required {
            true => Err(DecodeError::new(format!("no event time at `{}`", path()))),
            false => Ok((version, None)),
        };
    };
    let ms = as_millis(v).ok_or_else(|| {
        DecodeError::new(format!(
            "event time at `{}` is {}, not milliseconds since the epoch (up to year 9999)",
            path(),
            v.describe()
        ))
    })?;
    Ok((version, Some(ms)))
}

/// An event without `op`: transaction metadata (`status` BEGIN/END), a schema change
/// (`ddl`, `tableChanges`, `databaseName`) or a heartbeat (only `ts_ms`); else an error.
fn not_a_row_change(d: &Decoder, env: &Envelope<'_>) -> Result<Decoded, DecodeError> {
    let kind = if env.status.is_some() {
        NonRow::Transaction
    } else if env.ddl.is_some() || env.table_changes.is_some() || env.database_name.is_some() {
        NonRow::SchemaChange
    } else if env.ts_ms.is_some() && env.before.is_none() && env.after.is_none() {
        let time_ms = match positions(d, env, false) {
            Ok((_, Some(ms))) => Some(ms),
            _ => env
                .ts_ms
                .and_then(|t| super::json::parse_scalar(t.get()).ok())
                .and_then(|t| as_millis(&t)),
        };
        return Ok(Decoded::NonRow {
            kind: NonRow::Heartbeat,
            time_ms,
        });
    } else {
        return Err(DecodeError::new(
            "not a Debezium change event: no `op` field",
        ));
    };
    Ok(Decoded::NonRow {
        kind,
        time_ms: None,
    })
}

/// Decodes one Debezium message.
pub fn decode(d: &mut Decoder, msg: &Message<'_>) -> Result<Decoded, DecodeError> {
    let Some(value) = msg.value else {
        return Ok(Decoded::Skip);
    };
    let text = super::utf8(value).map_err(|e| DecodeError::new(format!("not UTF-8: {e}")))?;
    // Nearly every message is an object with nothing around it, which `trim` leaves as
    // it is: it decoded a character at each end to see that (50 instructions an event).
    let trimmed = match text.as_bytes() {
        [b'{', .., b'}'] => text,
        _ => text.trim(),
    };
    if trimmed.is_empty() || trimmed == "null" {
        return Ok(Decoded::Skip);
    }
    if d.one_pass {
        if let Some(decoded) = one_pass::decode(d, msg, trimmed) {
            return Ok(decoded);
        }
    }
    let outer = parse(trimmed)?;
    let (env, schema) = if outer.op.is_none() && (outer.schema.is_some() || outer.payload.is_some())
    {
        match outer.payload.flatten() {
            None => return Ok(Decoded::Skip),
            Some(p) => (parse(p.get())?, outer.schema.flatten()),
        }
    } else {
        (outer, None)
    };
    let op = match env.op.as_deref() {
        Some(op) => op,
        None => return not_a_row_change(d, &env),
    };
    match op {
        "m" => {
            return Ok(Decoded::NonRow {
                kind: NonRow::Message,
                time_ms: None,
            })
        }
        "t" => {
            let (version, time_ms) = positions(d, &env, false)?;
            let time_ms = time_ms.ok_or_else(|| {
                DecodeError::new(format!(
                    "truncate without an event time at `{}`",
                    d.paths[d.version_parts].join(".")
                ))
            })?;
            return Ok(Decoded::Truncate { version, time_ms });
        }
        _ => {}
    }
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
                    "unknown op `{other}`: expected c, r, u, d, t or m"
                )))
            }
        };
    let row = image
        .map(|raw| decode_row(raw, &d.columns, types.as_deref(), &mut d.builder, op == "u"))
        .transpose()
        .map_err(|e| DecodeError::new(format!("after: {}", e.0)))?;
    let key = match (msg.key, &row) {
        // A key that is JSON `null` (a table without a primary key) is no key.
        (Some(k), _) if !k.is_empty() && k.trim_ascii() != b"null" => {
            key::from_message(d, k, false)?
        }
        (_, Some(row)) => key::from_row(d, row)?,
        (_, None) => {
            let before = env.before.ok_or_else(|| {
                DecodeError::new("delete without a message key or a `before` image: no key")
            })?;
            let image = decode_row(before, &d.columns, types.as_deref(), &mut d.builder, false)
                .map_err(|e| DecodeError::new(format!("before: {}", e.0)))?;
            key::from_row(d, &image)?
        }
    };
    let (version, time_ms) = positions(d, &env, true)?;
    Ok(Decoded::Change(Change {
        key,
        version,
        time_ms,
        row,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::{Decoder, SideId};
    use super::{positions_found, Scalar};
    use proptest::prelude::*;

    proptest! {
        /// The shortcut for a version of one integer makes what the general way makes
        /// (a negative one refused alike).
        #[test]
        fn one_integer_version_is_the_general_one(n in any::<i64>()) {
            let spec = crate::spec::load(
                &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dataflows/orders.toml"),
            )
            .unwrap();
            let d = Decoder::new(&spec, SideId::Source);
            let found = [Some(Scalar::I64(n)), Some(Scalar::I64(1_772_323_200_000))];
            let got = positions_found(&d, &found, true).map(|(v, _)| v);
            prop_assert_eq!(got, d.version(&found[..1]).map(Some));
        }
    }
}
