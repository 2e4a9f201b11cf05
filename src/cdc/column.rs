//! One column's JSON value → a row value, by its kind; and a row image (a JSON object)
//! decoded column by column into the row builder in one pass.

use super::json::{Name, Scalar};
use super::logical::{ColumnTypes, Kind, SchemaTypes};
use super::DecodeError;
use crate::row::{
    canonical_json, canonical_value, parse_date, parse_time, parse_timestamp, ColumnName, Decimal,
    Row, RowBuilder, ValueRef,
};
use crate::spec::BytesEncoding;
use base64::Engine as _;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// A decimal from Connect's base64 big-endian mantissa, decoded on the stack (it ran
/// for every event of a table with a decimal column). A mantissa over 16 bytes is none,
/// and padded base64 of more than 24 characters holds more.
fn decimal_from_base64(text: &str, scale: Option<u8>) -> Option<Decimal> {
    if text.len() > 24 {
        return None;
    }
    if let (Some(mantissa), Some(scale)) = (short_base64(text.as_bytes()), scale) {
        return Some(Decimal { mantissa, scale });
    }
    let mut bytes = [0u8; 18];
    let n = base64::engine::general_purpose::STANDARD
        .decode_slice(text, &mut bytes)
        .ok()?;
    Decimal::from_be_bytes(&bytes[..n], scale?)
}

/// Base64's alphabet (standard, as Connect writes bytes): each byte's six bits, or
/// [`NOT_BASE64`].
const BASE64: [u8; 256] = {
    let mut t = [NOT_BASE64; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut i = 0;
    while i < 64 {
        t[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    t
};
const NOT_BASE64: u8 = 0xFF;

/// A mantissa of at most 15 bytes in canonical padded base64 (a length of four to 20,
/// a multiple of four; at most two `=`, and the bits they leave over zero), read
/// straight into a number, sign-extended: 144 instructions for a 4-character amount,
/// where the base64 crate's general decoder spent 263. `None` for anything else,
/// which that decoder then decides, so nothing it refuses is taken here.
#[inline]
fn short_base64(text: &[u8]) -> Option<i128> {
    let n = text.len();
    if n == 0 || !n.is_multiple_of(4) || n > 20 {
        return None;
    }
    let pad = match text[n - 2..] {
        [b'=', b'='] => 2,
        [_, b'='] => 1,
        _ => 0,
    };
    let mut acc: u128 = 0;
    for &c in &text[..n - pad] {
        let v = BASE64[usize::from(c)];
        if v == NOT_BASE64 {
            return None;
        }
        acc = acc << 6 | u128::from(v);
    }
    let bytes = n / 4 * 3 - pad;
    // The bits past the last byte (2 for one `=`, 4 for two) must be zero.
    let extra = 6 * (n - pad) - 8 * bytes;
    if acc & ((1 << extra) - 1) != 0 {
        return None;
    }
    let shift = 128 - 8 * bytes as u32;
    Some(((acc >> extra) << shift) as i128 >> shift)
}

/// A column's name as the row builder takes it: text, or made ready once (a resolved
/// column's, pushed for many rows).
pub(crate) trait Named: Copy {
    fn text(&self) -> &str;
    /// Appends the column with `v` to the row.
    fn push(self, b: &mut RowBuilder, v: ValueRef<'_>) -> Result<(), DecodeError>;
}

impl Named for &str {
    fn text(&self) -> &str {
        self
    }
    fn push(self, b: &mut RowBuilder, v: ValueRef<'_>) -> Result<(), DecodeError> {
        b.push(self, v).map_err(DecodeError::new)
    }
}

impl Named for &ColumnName {
    fn text(&self) -> &str {
        self.as_str()
    }
    #[inline]
    fn push(self, b: &mut RowBuilder, v: ValueRef<'_>) -> Result<(), DecodeError> {
        b.push_named(self, v);
        Ok(())
    }
}

/// A resolved column pushes under its name made ready, or (too long for a row) under
/// its text, which the builder refuses with its message.
impl Named for &Resolution {
    fn text(&self) -> &str {
        self.renamed.as_deref().unwrap_or(&self.wire)
    }
    #[inline]
    fn push(self, b: &mut RowBuilder, v: ValueRef<'_>) -> Result<(), DecodeError> {
        match &self.column {
            Some(name) => name.push(b, v),
            None => self.text().push(b, v),
        }
    }
}

/// Converts one JSON value of column `name` by its kind and appends it to the row.
pub(crate) fn push_column(
    b: &mut RowBuilder,
    name: impl Named,
    value: Scalar<'_>,
    kind: Kind,
) -> Result<(), DecodeError> {
    let bad = |what: &str| {
        DecodeError::new(format!(
            "column `{}`: {} is not {what}",
            name.text(),
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
        (Scalar::I64(i), Kind::Timestamp { unit }) => ValueRef::Timestamp(
            i.checked_mul(unit.nanos())
                .ok_or_else(|| bad("a timestamp in range"))?,
        ),
        (Scalar::Str(s), Kind::Timestamp { .. }) => {
            ValueRef::Timestamp(parse_timestamp(s).ok_or_else(|| bad("an RFC 3339 timestamp"))?)
        }
        (Scalar::I64(i), Kind::Date) => {
            ValueRef::Date(i32::try_from(*i).map_err(|_| bad("a date in range"))?)
        }
        (Scalar::Str(s), Kind::Date) => {
            ValueRef::Date(parse_date(s).ok_or_else(|| bad("a YYYY-MM-DD date"))?)
        }
        (Scalar::I64(i), Kind::Time { unit }) => ValueRef::Time(
            i.checked_mul(unit.nanos())
                .ok_or_else(|| bad("a time of day in range"))?,
        ),
        (Scalar::Str(s), Kind::Time { .. }) => {
            ValueRef::Time(parse_time(s).ok_or_else(|| bad("a time of day (HH:MM:SS)"))?)
        }
        (Scalar::Str(s), Kind::Uuid) => {
            if s.bytes().any(|c| c.is_ascii_uppercase()) {
                return push(b, name, ValueRef::Str(&s.to_ascii_lowercase()));
            }
            ValueRef::Str(s)
        }
        (Scalar::Str(s), Kind::Set) => {
            let mut members: Vec<&str> = s.split(',').filter(|m| !m.is_empty()).collect();
            members.sort_unstable();
            members.dedup();
            return push(b, name, ValueRef::Str(&members.join(",")));
        }
        (Scalar::Nested(n), Kind::Set) => {
            let members: Vec<String> = serde_json::from_str(n).map_err(|_| bad("a set"))?;
            let mut members: Vec<&str> = members.iter().map(String::as_str).collect();
            members.sort_unstable();
            members.dedup();
            return push(b, name, ValueRef::Str(&members.join(",")));
        }
        (Scalar::Str(s), Kind::Bytes { encoding }) => {
            let bytes = decode_bytes(s, encoding).ok_or_else(|| match encoding {
                BytesEncoding::Hex => bad("hex bytes"),
                _ => bad("base64 bytes"),
            })?;
            return push(b, name, ValueRef::Bytes(&bytes));
        }
        (Scalar::Str(s), Kind::Json) => {
            let text = canonical_json(s).ok_or_else(|| bad("JSON text"))?;
            return push(b, name, ValueRef::Str(&text));
        }
        (Scalar::Nested(n), Kind::Json) => {
            let text = canonical_json(n).ok_or_else(|| bad("JSON"))?;
            return push(b, name, ValueRef::Str(&text));
        }
        (Scalar::Bool(_) | Scalar::I64(_) | Scalar::U64(_) | Scalar::F64(_), Kind::Json) => {
            let v = match value {
                Scalar::Bool(x) => serde_json::Value::from(x),
                Scalar::I64(i) => i.into(),
                Scalar::U64(u) => u.into(),
                Scalar::F64(f) => f.into(),
                _ => serde_json::Value::Null,
            };
            return push(b, name, ValueRef::Str(&canonical_value(&v)));
        }
        (Scalar::Str(s), Kind::Bits) => {
            let bytes = decode_bytes(s, BytesEncoding::Base64).ok_or_else(|| bad("bits"))?;
            if bytes.len() > 8 {
                return push(b, name, ValueRef::Bytes(&bytes));
            }
            let mut le = [0u8; 8];
            le[..bytes.len()].copy_from_slice(&bytes);
            match i64::try_from(u64::from_le_bytes(le)) {
                Ok(i) => ValueRef::Int(i),
                Err(_) => return push(b, name, ValueRef::Bytes(&bytes)),
            }
        }
        (_, Kind::Bits) => return Err(bad("bits")),
        (_, Kind::Decimal { .. }) => return Err(bad("a decimal")),
        (_, Kind::Timestamp { .. }) => return Err(bad("a timestamp")),
        (_, Kind::Date) => return Err(bad("a date")),
        (_, Kind::Time { .. }) => return Err(bad("a time of day")),
        (_, Kind::Uuid) => return Err(bad("a UUID")),
        (_, Kind::Set) => return Err(bad("a set")),
        (_, Kind::Bytes { .. }) => return Err(bad("bytes")),
    };
    push(b, name, canonical(v, kind))
}

/// `v` written as its column's kind writes it: a decimal at the declared scale.
#[inline]
pub(super) fn canonical(v: ValueRef<'_>, kind: Kind) -> ValueRef<'_> {
    match (v, kind) {
        (ValueRef::Decimal(d), Kind::Decimal { scale: Some(s), .. }) if d.scale != s => {
            ValueRef::Decimal(d.at_scale(s))
        }
        _ => v,
    }
}

fn push(b: &mut RowBuilder, name: impl Named, v: ValueRef<'_>) -> Result<(), DecodeError> {
    name.push(b, v)
}

/// Bytes from their text: base64 (either alphabet, padded or not) or hex.
fn decode_bytes(text: &str, encoding: BytesEncoding) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
    match encoding {
        BytesEncoding::Hex => {
            // PostgreSQL spells bytea in hex as `\x…`.
            hex::decode(text.strip_prefix("\\x").unwrap_or(text)).ok()
        }
        BytesEncoding::Base64 => STANDARD.decode(text).ok(),
        BytesEncoding::Base64UrlSafe => URL_SAFE
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text))
            .ok(),
    }
}

/// Decodes a row image (a JSON object) into a row. With `placeholders` (an update's
/// image on a side whose capture sends them), a placeholder becomes an unknown value.
pub fn decode_row(
    raw: &RawValue,
    columns: &ColumnTypes,
    schema: Option<&SchemaTypes>,
    b: &mut RowBuilder,
    placeholders: bool,
) -> Result<Row, DecodeError> {
    b.clear();
    let mut error = None;
    let mut de = serde_json::Deserializer::from_str(raw.get());
    let seed = RowSeed {
        columns,
        schema,
        builder: b,
        error: &mut error,
        placeholders: placeholders
            .then_some(columns.placeholders.as_ref())
            .flatten(),
    };
    match seed.deserialize(&mut de) {
        Ok(()) => Ok(b.finish_row()),
        Err(e) => Err(error.unwrap_or_else(|| DecodeError::new(format!("row image: {e}")))),
    }
}

/// A row image met inside a larger document (an envelope read in one pass): `null` is
/// no row. Decodes as [`decode_row`] does, without a Connect schema.
pub(super) struct ImageSeed<'s> {
    pub(super) columns: &'s ColumnTypes,
    pub(super) builder: &'s mut RowBuilder,
    pub(super) placeholders: Option<&'s super::placeholder::Placeholders>,
}

impl<'de> DeserializeSeed<'de> for ImageSeed<'_> {
    type Value = Option<Row>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Row>, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for ImageSeed<'_> {
    type Value = Option<Row>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a row image (a JSON object) or null")
    }
    fn visit_none<E>(self) -> Result<Option<Row>, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Option<Row>, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<Row>, D::Error> {
        self.builder.clear();
        let mut error = None;
        let seed = RowSeed {
            columns: self.columns,
            schema: None,
            builder: &mut *self.builder,
            error: &mut error,
            placeholders: self.placeholders,
        };
        seed.deserialize(d)?;
        Ok(Some(self.builder.finish_row()))
    }
}

struct RowSeed<'s> {
    columns: &'s ColumnTypes,
    schema: Option<&'s SchemaTypes>,
    builder: &'s mut RowBuilder,
    error: &'s mut Option<DecodeError>,
    placeholders: Option<&'s super::placeholder::Placeholders>,
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
        while let Some(Name(wire)) = map.next_key()? {
            if self.columns.drop.contains(wire.as_ref()) {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value: Scalar<'de> = map.next_value()?;
            let image = Image {
                columns: self.columns,
                schema: self.schema,
                placeholders: self.placeholders,
            };
            if let Err(e) = image.column(self.builder, &wire, value) {
                let msg = e.0.clone();
                *self.error = Some(e);
                return Err(de::Error::custom(msg));
            }
        }
        Ok(())
    }
}

/// How a row image's columns become a row: shared by every reader of images.
#[derive(Clone, Copy)]
pub(super) struct Image<'s> {
    pub(super) columns: &'s ColumnTypes,
    pub(super) schema: Option<&'s SchemaTypes>,
    pub(super) placeholders: Option<&'s super::placeholder::Placeholders>,
}

/// What a column name resolves to under a side's declarations (schema-less images):
/// whether it is dropped, its name in the row, its kind.
pub(super) struct Resolution {
    wire: Box<str>,
    /// `wire`'s token (`"wire":`), when it was read without an escape: only then are
    /// equal bytes a valid token.
    token: Option<Box<[u8]>>,
    /// Whether the column is dropped (its value is not read).
    pub(super) drop: bool,
    /// The row's name, when it is not `wire` (a renamed column).
    renamed: Option<Box<str>>,
    /// The row's name made ready to push; `None` when it is too long for a row.
    column: Option<ColumnName>,
    kind: Kind,
    /// The column's place among the key columns, if it is one.
    pub(super) key: Option<usize>,
}

/// Column names resolved by their position in the last image. A table's changes bring
/// their columns in one order, so the name at each position is checked against the one
/// before (one comparison) instead of looked up in the drop, rename and kind maps
/// (three hash look-ups a column).
#[derive(Default)]
pub(crate) struct Resolutions(Vec<Resolution>);

impl Resolution {
    /// Whether the column holds exact decimals (a JSON number there is read as one).
    pub(super) fn is_decimal(&self) -> bool {
        matches!(self.kind, Kind::Decimal { .. })
    }

    /// Whether the column has no declared kind (its JSON value is taken as it is).
    pub(super) fn is_plain(&self) -> bool {
        self.kind == Kind::Auto
    }
}

impl Resolutions {
    /// The token of the column name resolved at position `at`, when it was read
    /// without an escape.
    #[inline]
    pub(super) fn token(&self, at: usize) -> Option<&[u8]> {
        self.0.get(at)?.token.as_deref()
    }

    /// The resolution at `at`, which [`Image::resolve`] made.
    #[inline]
    pub(super) fn at(&self, at: usize) -> &Resolution {
        &self.0[at]
    }
}

impl Image<'_> {
    /// How column `wire`, the `at`-th of its image, resolves (images without a schema);
    /// `plain`: it was read without an escape.
    pub(super) fn resolve<'c>(
        &self,
        cache: &'c mut Resolutions,
        at: usize,
        (wire, plain): (&str, bool),
        key_fields: &[String],
    ) -> &'c Resolution {
        debug_assert!(self.schema.is_none());
        let cache = &mut cache.0;
        if cache
            .get(at)
            .is_none_or(|r| &*r.wire != wire || r.token.is_some() != plain)
        {
            let renamed = self.columns.renames.get(wire);
            let name = renamed.map_or(wire, String::as_str);
            let r = Resolution {
                wire: wire.into(),
                token: plain.then(|| super::debezium::token(wire)),
                drop: self.drops(wire),
                renamed: renamed.map(|n| n.as_str().into()),
                column: ColumnName::new(name),
                kind: self.columns.kind(wire, name, None),
                key: key_fields.iter().position(|k| k == name),
            };
            cache.truncate(at);
            cache.push(r);
        }
        &cache[at]
    }

    /// A resolved column (not dropped) with `value`, as [`Image::column`] appends it.
    pub(super) fn push_resolved(
        &self,
        b: &mut RowBuilder,
        r: &Resolution,
        value: Scalar<'_>,
    ) -> Result<(), DecodeError> {
        self.push(b, r, value, r.kind)
    }

    /// A resolved column (not dropped) with its value as its kind makes it (a number's
    /// exact decimal, a plain integer: no placeholder is a number), as
    /// [`Image::column`] appends it.
    pub(super) fn push_converted(
        &self,
        b: &mut RowBuilder,
        r: &Resolution,
        v: ValueRef<'_>,
    ) -> Result<(), DecodeError> {
        r.push(b, canonical(v, r.kind))
    }

    /// A resolved column (not dropped) of no declared kind with a string value, as
    /// [`Image::column`] appends it (unknown when it is the placeholder), without the
    /// conversion's dispatch on the value and the kind.
    pub(super) fn push_text(
        &self,
        b: &mut RowBuilder,
        r: &Resolution,
        text: &str,
    ) -> Result<(), DecodeError> {
        if self.placeholders.is_some_and(|p| p.matches_text(text)) {
            let _ = self.push_converted(b, r, ValueRef::Unavailable);
            return Ok(());
        }
        self.push_converted(b, r, ValueRef::Str(text))
    }

    /// Whether column `wire` is dropped (its value is not read).
    pub(super) fn drops(&self, wire: &str) -> bool {
        self.columns.drop.contains(wire)
    }

    /// Column `wire` (not dropped) with `value`: renamed, a placeholder, or converted by
    /// its kind, and appended to the row.
    pub(super) fn column(
        &self,
        b: &mut RowBuilder,
        wire: &str,
        value: Scalar<'_>,
    ) -> Result<(), DecodeError> {
        let name = self.columns.renames.get(wire).map_or(wire, String::as_str);
        self.push(b, name, value, self.columns.kind(wire, name, self.schema))
    }

    /// Column `name`'s `value` appended to the row: unknown when it is the capture's
    /// placeholder, else converted by `kind`.
    fn push(
        &self,
        b: &mut RowBuilder,
        name: impl Named,
        value: Scalar<'_>,
        kind: Kind,
    ) -> Result<(), DecodeError> {
        if self.placeholders.is_some_and(|p| p.matches(&value)) {
            let _ = name.push(b, ValueRef::Unavailable);
            return Ok(());
        }
        push_column(b, name, value, kind)
    }
}

#[cfg(test)]
mod tests {
    use super::decimal_from_base64;
    use crate::row::Decimal;
    use base64::Engine as _;
    use proptest::prelude::*;

    /// The allocating decoder the stack one replaced: the oracle.
    fn oracle(text: &str, scale: u8) -> Option<Decimal> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?;
        Decimal::from_be_bytes(&bytes, scale)
    }

    proptest! {
        /// Mantissas of every length up to past the 16-byte limit, and texts that are
        /// not base64, decode as the allocating decoder decodes them.
        #[test]
        fn base64_decimals_decode_as_the_allocating_decoder(
            bytes in prop::collection::vec(any::<u8>(), 0..22),
            junk in "[A-Za-z0-9+/=!]{0,30}",
            scale in 0u8..10,
            at in any::<prop::sample::Index>(),
            c in prop::sample::select(b"AQgw/+=9!".to_vec()),
        ) {
            let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
            // One character changed: padding moved, trailing bits set, a foreign byte.
            if !text.is_empty() {
                let mut b = text.clone().into_bytes();
                let i = at.index(b.len());
                b[i] = c;
                let t = String::from_utf8(b).unwrap();
                prop_assert_eq!(decimal_from_base64(&t, Some(scale)), oracle(&t, scale), "{}", t);
            }
            prop_assert_eq!(decimal_from_base64(&text, Some(scale)), oracle(&text, scale));
            prop_assert_eq!(decimal_from_base64(&junk, Some(scale)), oracle(&junk, scale));
            if (1..=16).contains(&bytes.len()) {
                prop_assert!(decimal_from_base64(&text, Some(scale)).is_some());
            }
        }
    }
}
