//! Entity keys: from the message key (JSON object, wrapped, or a bare scalar) or the row.

use super::column::push_column;
use super::json::{parse_scalar, Scalar};
use super::{DecodeError, Decoder};
use crate::row::{Key, Row, ValueRef};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::HashMap;

fn check<'a>(name: &str, v: Option<ValueRef<'a>>) -> Result<ValueRef<'a>, DecodeError> {
    match v {
        None => Err(DecodeError::new(format!(
            "no key: key column `{name}` is missing"
        ))),
        Some(ValueRef::Null) => Err(DecodeError::new(format!(
            "no key: key column `{name}` is null"
        ))),
        Some(ValueRef::Float(_) | ValueRef::Json(_)) => Err(DecodeError::new(format!(
            "wrong type for key column `{name}`: floats, objects and arrays cannot be keys"
        ))),
        Some(v) => Ok(v),
    }
}

/// The key read from a decoded row by the spec's key columns.
pub fn from_row(d: &mut Decoder, row: &Row) -> Result<Key, DecodeError> {
    if let Some(key) = row.key_of(&d.key_fields) {
        return Ok(key);
    }
    // Only to say what is wrong.
    d.builder.clear();
    for name in &d.key_fields {
        let v = check(name, row.get(name))?;
        d.builder.push(name, v).map_err(DecodeError::new)?;
    }
    Ok(d.builder.finish_key())
}

/// The key read from message key bytes: a JSON object of the key columns (optionally in a
/// `schema`/`payload` wrapper), or, for a single key column, a bare JSON scalar or string.
pub fn from_message(d: &mut Decoder, bytes: &[u8], allow_plain: bool) -> Result<Key, DecodeError> {
    let text = super::utf8(bytes).map_err(|_| DecodeError::new("message key is not UTF-8"))?;
    d.builder.clear();
    let single = d.key_fields.len() == 1;
    match serde_json::from_str::<&RawValue>(text) {
        Ok(raw) if raw.get().starts_with('{') => from_object(d, raw)?,
        Ok(raw) if single => {
            let v = parse_scalar(raw.get())
                .map_err(|e| DecodeError::new(format!("message key: {e}")))?;
            push_key(d, 0, v)?;
        }
        Ok(_) => {
            return Err(DecodeError::new(format!(
                "message key must be a JSON object of the key columns {:?}",
                d.key_fields
            )))
        }
        Err(_) if allow_plain && single && !text.is_empty() => {
            push_key(d, 0, Scalar::Str(text.into()))?
        }
        Err(e) => return Err(DecodeError::new(format!("message key is not JSON: {e}"))),
    }
    Ok(d.builder.finish_key())
}

/// Reads the key columns from a JSON object key (or the `payload` of a wrapped one).
pub fn from_object(d: &mut Decoder, raw: &RawValue) -> Result<(), DecodeError> {
    #[derive(Deserialize)]
    struct Wrapped<'a> {
        #[serde(borrow, default)]
        schema: Option<&'a RawValue>,
        #[serde(borrow, default)]
        payload: Option<&'a RawValue>,
    }
    let mut object = raw;
    if let Ok(Wrapped {
        schema: Some(_),
        payload: Some(p),
    }) = serde_json::from_str::<Wrapped<'_>>(raw.get())
    {
        if p.get().starts_with('{') {
            object = p;
        }
    }
    let mut cols: HashMap<std::borrow::Cow<'_, str>, Scalar<'_>> =
        serde_json::from_str(object.get())
            .map_err(|e| DecodeError::new(format!("message key: {e}")))?;
    for i in 0..d.key_fields.len() {
        match cols.remove(d.key_fields[i].as_str()) {
            Some(v) => push_key(d, i, v)?,
            None => return Err(missing(d, i)),
        }
    }
    Ok(())
}

fn missing(d: &Decoder, i: usize) -> DecodeError {
    DecodeError::new(format!(
        "no key: key column `{}` is missing from the message key",
        d.key_fields[i]
    ))
}

fn push_key(d: &mut Decoder, i: usize, v: Scalar<'_>) -> Result<(), DecodeError> {
    let name = &d.key_fields[i];
    let kind = d.columns.key_kind(name);
    let before = d.builder.len();
    push_column(&mut d.builder, name.as_str(), v, kind)?;
    debug_assert_eq!(d.builder.len(), before + 1);
    check(name, d.builder.get(name)).map(|_| ())
}
