//! Single-pass JSON helpers: borrowed scalars and path lookups that skip what they don't need.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// A JSON value as the decoders need it: scalars borrowed, nested values as canonical text.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A signed integer.
    I64(i64),
    /// An integer above `i64::MAX`.
    U64(u64),
    /// A non-integer number.
    F64(f64),
    /// A string.
    Str(Cow<'a, str>),
    /// An object or array, re-serialized with sorted keys.
    Nested(String),
}

impl Scalar<'_> {
    /// A short description for error messages.
    pub fn describe(&self) -> String {
        let text = match self {
            Scalar::Null => "null".to_string(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::I64(i) => i.to_string(),
            Scalar::U64(u) => u.to_string(),
            Scalar::F64(f) => f.to_string(),
            Scalar::Str(s) => format!("{:?}", s),
            Scalar::Nested(n) => n.clone(),
        };
        if text.len() > 80 {
            let mut cut = 77;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            format!("{}...", &text[..cut])
        } else {
            text
        }
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::I64(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).map_or(Scalar::U64(v), Scalar::I64))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::F64(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let v = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Scalar::Nested(v.to_string()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let v = serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(Scalar::Nested(v.to_string()))
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

/// An object key, borrowed from the input unless it has escapes. (`Cow<str>`'s own
/// `Deserialize` always allocates, which on the hot path is one allocation per column.)
pub struct Name<'a>(pub Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Looks up `path` (object keys) below `raw`; `Ok(None)` when absent.
pub fn lookup<'a>(
    raw: &'a RawValue,
    path: &[String],
) -> Result<Option<Scalar<'a>>, serde_json::Error> {
    if path.is_empty() {
        return Scalar::deserialize(raw).map(Some);
    }
    let mut de = serde_json::Deserializer::from_str(raw.get());
    PathSeed { path }.deserialize(&mut de)
}

struct PathSeed<'p> {
    path: &'p [String],
}

impl<'de> DeserializeSeed<'de> for PathSeed<'_> {
    type Value = Option<Scalar<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PathSeed<'_> {
    type Value = Option<Scalar<'de>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(Name(key)) = map.next_key::<Name<'de>>()? {
            if found.is_none() && key == self.path[0].as_str() {
                found = if self.path.len() == 1 {
                    Some(map.next_value::<Scalar<'de>>()?)
                } else {
                    map.next_value_seed(PathSeed {
                        path: &self.path[1..],
                    })?
                };
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// Looks up several paths below `raw` in one pass: `out[i]` receives `paths[i]`'s value
/// (left `None` when absent). Versions and event times usually sit side by side in
/// Debezium's `source` block; this reads it once instead of once per path.
pub fn lookup_many<'a>(
    raw: &'a RawValue,
    paths: &[&[String]],
    out: &mut [Option<Scalar<'a>>],
) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(raw.get());
    ManySeed { paths, out }.deserialize(&mut de)
}

/// [`lookup_many`] as a seed, for a value met inside a larger document.
pub(super) struct ManySeed<'p, 'o, 'de> {
    pub(super) paths: &'p [&'p [String]],
    pub(super) out: &'o mut [Option<Scalar<'de>>],
}

impl<'de> DeserializeSeed<'de> for ManySeed<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ManySeed<'_, '_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Name(key)) = map.next_key::<Name<'de>>()? {
            let n = self.paths.len();
            let wanted = |out: &[Option<Scalar<'de>>], i: usize| {
                let p = self.paths[i];
                !p.is_empty() && p[0] == key.as_ref() && out[i].is_none()
            };
            let hits = (0..n).filter(|&i| wanted(self.out, i));
            let (any, deep) = hits.fold((false, false), |(_, d), i| {
                (true, d || self.paths[i].len() > 1)
            });
            if !any {
                map.next_value::<IgnoredAny>()?;
            } else if !deep {
                let v: Scalar<'de> = map.next_value()?;
                for i in 0..n {
                    if wanted(self.out, i) {
                        self.out[i] = Some(v.clone());
                    }
                }
            } else {
                // Deeper paths (and any ending here): look each up in the value's text.
                let raw: &'de RawValue = map.next_value()?;
                for i in 0..n {
                    if wanted(self.out, i) {
                        let found = lookup(raw, &self.paths[i][1..]).map_err(de::Error::custom)?;
                        self.out[i] = found;
                    }
                }
            }
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
}

/// A scalar as a non-negative integer (numbers and numeric strings), for versions.
pub fn as_u64(s: &Scalar<'_>) -> Option<u64> {
    match s {
        Scalar::I64(i) => u64::try_from(*i).ok(),
        Scalar::U64(u) => Some(*u),
        Scalar::Str(t) => t.parse().ok(),
        _ => None,
    }
}

/// The last millisecond of year 9999: later event times are garbage, not data (one
/// would end event time for the whole job).
pub const MAX_EVENT_MS: u64 = 253_402_300_799_999;

/// An event time in ms if it is one: from 0 up to [`MAX_EVENT_MS`]. Every source of
/// event times (fields, strings, Kafka timestamps) goes through this check.
pub fn event_ms<T: TryInto<u64>>(ms: T) -> Option<u64> {
    ms.try_into().ok().filter(|ms| *ms <= MAX_EVENT_MS)
}

/// A scalar as milliseconds since the epoch (integers, or RFC 3339 strings), up to
/// [`MAX_EVENT_MS`].
pub fn as_millis(s: &Scalar<'_>) -> Option<u64> {
    let ms = match s {
        Scalar::Str(t) => t.parse().ok().or_else(|| {
            crate::row::parse_timestamp(t)
                .and_then(|ns| u64::try_from(ns.div_euclid(1_000_000)).ok())
        }),
        Scalar::F64(f) if f.is_finite() && *f >= 0.0 && *f <= MAX_EVENT_MS as f64 => {
            Some(*f as u64)
        }
        Scalar::F64(_) => None,
        other => as_u64(other),
    }?;
    event_ms(ms)
}

/// Parses the whole of `text` as a [`Scalar`].
pub fn parse_scalar(text: &str) -> Result<Scalar<'_>, serde_json::Error> {
    serde_json::from_str(text)
}
