//! A bare Debezium envelope decoded in one pass: the fast path for the common case.
//!
//! The general decoder reads the envelope once to find its parts, then reads `after`
//! again to build the row and `source` again for the version and event time: each
//! event's largest parts are tokenized twice. Here the row is built and the positions
//! are read as the parser meets them. Whatever this path is not sure of (a Connect
//! wrapper, an event that is not a row change, a malformed part, a placeholder outside
//! an update) it leaves to the general decoder, which then decides, with its messages.

use super::super::column::ImageSeed;
use super::super::json::{ManySeed, Name, Scalar};
use super::super::{key, Change, Decoded, Decoder, Message};
use super::{positions_found, MAX_PATHS};
use crate::row::Row;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// What one pass over the envelope found.
#[derive(Default)]
pub(super) struct Found<'a> {
    /// `before`'s text, unless absent or `null`.
    pub(super) before: Option<&'a str>,
    /// `after`: absent (`None`), `null` (`Some(None)`) or the decoded row.
    pub(super) after: Option<Option<Row>>,
    pub(super) op: Option<Cow<'a, str>>,
    pub(super) source: bool,
    pub(super) positions: [Option<Scalar<'a>>; MAX_PATHS],
    /// The key of `after`'s row, when the byte scanner copied it as it built the row.
    pub(super) key: Option<crate::row::Key>,
}

/// What the one-pass decoders do with an envelope member, by its name.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    After,
    Source,
    Op,
    Before,
    /// A wrapper's or an event's that is not a row change: not for these paths.
    Refused,
    Other,
}

impl Role {
    pub(super) fn of(field: &str) -> Role {
        match field {
            "after" => Role::After,
            "source" => Role::Source,
            "op" => Role::Op,
            "before" => Role::Before,
            "schema" | "payload" | "status" | "ddl" | "tableChanges" | "databaseName" => {
                Role::Refused
            }
            _ => Role::Other,
        }
    }
}

impl Found<'_> {
    /// Whether a member of this role was met before (a duplicate, which the general
    /// decoder refuses).
    pub(super) fn seen(&self, role: Role) -> bool {
        match role {
            Role::After => self.after.is_some(),
            Role::Source => self.source,
            Role::Op => self.op.is_some(),
            Role::Before => self.before.is_some(),
            Role::Refused | Role::Other => false,
        }
    }
}

struct Envelope<'d, 'a> {
    decoder: &'d mut Decoder,
    found: &'d mut Found<'a>,
}

impl<'de> DeserializeSeed<'de> for Envelope<'_, 'de> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Envelope<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Debezium envelope")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let d = self.decoder;
        let duplicate = || serde::de::Error::custom("a field twice");
        while let Some(Name(key)) = map.next_key()? {
            let role = Role::of(&key);
            if self.found.seen(role) {
                return Err(duplicate());
            }
            match role {
                Role::After => {
                    // Placeholders are recognised here whatever the op; an image with
                    // one that is not an update's goes back to the general decoder.
                    self.found.after = Some(map.next_value_seed(ImageSeed {
                        columns: &d.columns,
                        builder: &mut d.builder,
                        placeholders: d.columns.placeholders.as_ref(),
                    })?);
                }
                Role::Source => {
                    self.found.source = true;
                    let mut tails: [&[String]; MAX_PATHS] = [&[]; MAX_PATHS];
                    for (t, p) in tails.iter_mut().zip(&d.paths) {
                        *t = &p[1..];
                    }
                    let n = d.paths.len();
                    map.next_value_seed(ManySeed {
                        paths: &tails[..n],
                        out: &mut self.found.positions[..n],
                    })?;
                }
                Role::Op => self.found.op = map.next_value()?,
                Role::Before => {
                    let before: Option<&RawValue> = map.next_value()?;
                    self.found.before = before.map(RawValue::get);
                }
                Role::Refused => {
                    return Err(serde::de::Error::custom("not a bare row change"));
                }
                Role::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// The decoded message, or `None` to leave it to the general decoder. The byte
/// scanner reads the envelope when it can, serde_json when it cannot.
pub(super) fn decode(d: &mut Decoder, msg: &Message<'_>, text: &str) -> Option<Decoded> {
    let mut found = Found::default();
    if d.scan && super::scan::envelope(d, text, &mut found).is_some() {
        return finish(d, msg, &mut found);
    }
    let mut found = Found::default();
    let mut de = serde_json::Deserializer::from_str(text);
    Envelope {
        decoder: d,
        found: &mut found,
    }
    .deserialize(&mut de)
    .ok()?;
    de.end().ok()?;
    finish(d, msg, &mut found)
}

/// The change an envelope's parts make (by reference: moving the parts found, their
/// positions most of all, was a copy of some 400 bytes an event).
fn finish(d: &mut Decoder, msg: &Message<'_>, found: &mut Found<'_>) -> Option<Decoded> {
    let row = match (found.op.as_deref()?, found.after.take()?) {
        ("u", row @ Some(_)) => row,
        ("c" | "r", Some(row)) if !row.has_unavailable() => Some(row),
        ("d", _) => None,
        _ => return None,
    };
    let key = match (msg.key, &row) {
        (Some(k), _) if !k.is_empty() && k.trim_ascii() != b"null" => {
            key::from_message(d, k, false).ok()?
        }
        (_, Some(row)) => match found.key.take() {
            Some(key) => key,
            None => key::from_row(d, row).ok()?,
        },
        (_, None) => {
            let before: &RawValue = serde_json::from_str(found.before?).ok()?;
            let image = super::decode_row(before, &d.columns, None, &mut d.builder, false).ok()?;
            key::from_row(d, &image).ok()?
        }
    };
    let n = d.paths.len();
    let (version, time_ms) = positions_found(d, &found.positions[..n], true).ok()?;
    Some(Decoded::Change(Change {
        key,
        version,
        time_ms,
        row,
    }))
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::super::{Decoded, Decoder, Message, SideId};
    use crate::demo::generator::{generate, GenConfig};

    /// Decodes `value` with the byte scanner, the serde one-pass path and the general
    /// decoder: the answers must be equal.
    pub(in crate::cdc) fn both(d: &mut Decoder, key: Option<&[u8]>, value: &str) -> Decoded {
        let msg = Message {
            key,
            value: Some(value.as_bytes()),
            timestamp_ms: None,
        };
        let mut answers = Vec::new();
        for (one_pass, scan) in [(true, true), (true, false), (false, false)] {
            (d.one_pass, d.scan) = (one_pass, scan);
            answers.push(d.decode(&msg));
        }
        (d.one_pass, d.scan) = (true, true);
        assert_eq!(answers[0], answers[2], "the scanner differs on {value}");
        assert_eq!(answers[1], answers[2], "one pass differs on {value}");
        answers.swap_remove(0).unwrap_or(Decoded::Skip)
    }

    #[test]
    fn one_pass_decodes_as_the_general_decoder_does() {
        let spec = crate::spec::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dataflows/orders.toml"),
        )
        .unwrap();
        let g = generate(&GenConfig {
            events: 3000,
            keys: 300,
            note_len: 40,
            ..GenConfig::default()
        });
        let (mut changes, mut bare) = (0, 0);
        for (side, lines) in [(SideId::Source, &g.source), (SideId::Target, &g.target)] {
            let mut d = Decoder::new(&spec, side);
            assert!(d.one_pass);
            let (mut one_pass, mut scanned) = (0, 0);
            for line in lines {
                changes += usize::from(matches!(both(&mut d, None, line), Decoded::Change(_)));
                let msg = Message {
                    key: None,
                    value: Some(line.as_bytes()),
                    timestamp_ms: None,
                };
                d.scan = false;
                one_pass += usize::from(super::decode(&mut d, &msg, line).is_some());
                d.scan = true;
                let mut found = super::Found::default();
                let scan = super::super::scan::envelope(&mut d, line, &mut found);
                scanned += usize::from(scan.is_some());
            }
            // The scanner reads what the one-pass path reads (bare envelopes) itself.
            assert!(
                scanned >= one_pass,
                "{side:?}: {scanned} scanned, {one_pass} in one pass"
            );
            bare += scanned;
            // What the one-pass path leaves to the general one, and what it must refuse
            // as the general one does.
            let line = &lines[0];
            let placeholder = r#""status":"__debezium_unavailable_value""#;
            let variants = [
                line.replacen(r#""status":"pending""#, placeholder, 1),
                line.replacen(r#""op":"c""#, r#""op":"u""#, 1).replacen(
                    r#""status":"pending""#,
                    placeholder,
                    1,
                ),
                line.replacen(r#""op":"c""#, r#""op":"d""#, 1),
                line.replacen(r#""op":"c""#, r#""op":"x""#, 1),
                line.replacen(r#""op":"c""#, r#""op":"c","op":"c""#, 1),
                line.replacen(r#""lsn":"#, r#""lsn":"x","y":"#, 1),
                line.replacen(r#""after":{"#, r#""after":null,"x":{"#, 1),
                line.replacen(r#""amount":"#, r#""amount":[1],"x":"#, 1),
                // Numbers out of a float's range where values are passed over.
                line.replacen(r#""txId":"#, r#""txId":1E310,"t":"#, 1),
                line.replacen(r#""transaction":null"#, r#""transaction":-1e999"#, 1),
                line.replacen(
                    r#""xmin":null"#,
                    &format!(r#""xmin":{}"#, "9".repeat(400)),
                    1,
                ),
                // A column name too long for a row.
                line.replacen(
                    r#""items":"#,
                    &format!(r#""{}":1,"items":"#, "n".repeat(300)),
                    1,
                ),
                line.replacen(
                    r#""items":"#,
                    &format!(r#""{}":"x","items":"#, "s".repeat(300)),
                    1,
                ),
                line.replacen(
                    r#""items":"#,
                    &format!(r#""{}":1.5,"items":"#, "f".repeat(300)),
                    1,
                ),
                line.replacen(r#""source":{"#, r#""source":{"ts_ms":"soon","#, 1),
                format!("{line} trailing"),
                format!(r#"{{"schema":null,"payload":{line}}}"#),
                r#"{"before":{"id":5},"after":null,"source":{"lsn":9,"ts_ms":1},"op":"d"}"#.into(),
                r#"{"before":null,"after":null,"source":{"lsn":9,"ts_ms":1},"op":"d"}"#.into(),
                r#"{"source":{"lsn":9,"ts_ms":1},"ts_ms":1}"#.into(),
                "[1,2]".into(),
            ];
            for v in &variants {
                assert_ne!(v, line, "a variant did not apply");
                both(&mut d, None, v);
                both(&mut d, Some(br#"{"id":77}"#), v);
                both(&mut d, Some(b"null"), v);
            }
        }
        assert!(changes > 6000, "only {changes} changes decoded");
        assert!(bare > 2000, "only {bare} bare envelopes");
    }
}
