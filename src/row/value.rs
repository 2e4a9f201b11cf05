//! Column values: `ValueRef` borrows from a row's bytes, `Value` owns (for field diffs).

use super::Decimal;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// A decoded column value, borrowed from a row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// JSON `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// An exact decimal.
    Decimal(Decimal),
    /// A string.
    Str(&'a str),
    /// An instant, nanoseconds since the epoch.
    Timestamp(i64),
    /// A date, days since the epoch.
    Date(i32),
    /// A nested object or array, as canonical JSON text.
    Json(&'a str),
    /// A time of day, nanoseconds since midnight (UTC for zoned times).
    Time(i64),
    /// Bytes (Debezium sends them as base64 or hex text).
    Bytes(&'a [u8]),
    /// A value the capture did not send (Debezium's placeholder for an unchanged TOAST
    /// column) and that no earlier change supplied: unknown, never compared.
    Unavailable,
}

/// An owned column value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Value {
    /// JSON `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// An exact decimal.
    Decimal(Decimal),
    /// A string.
    Str(String),
    /// An instant, nanoseconds since the epoch.
    Timestamp(i64),
    /// A date, days since the epoch.
    Date(i32),
    /// A nested object or array, as canonical JSON text.
    Json(String),
    /// A time of day, nanoseconds since midnight.
    Time(i64),
    /// Bytes.
    #[serde(with = "serde_bytes")]
    Bytes(Vec<u8>),
    /// An unknown value (see [`ValueRef::Unavailable`]).
    Unavailable,
}

impl ValueRef<'_> {
    /// An owned copy.
    pub fn to_owned(self) -> Value {
        match self {
            ValueRef::Null => Value::Null,
            ValueRef::Bool(b) => Value::Bool(b),
            ValueRef::Int(i) => Value::Int(i),
            ValueRef::Float(f) => Value::Float(f),
            ValueRef::Decimal(d) => Value::Decimal(d),
            ValueRef::Str(s) => Value::Str(s.to_string()),
            ValueRef::Timestamp(t) => Value::Timestamp(t),
            ValueRef::Date(d) => Value::Date(d),
            ValueRef::Json(s) => Value::Json(s.to_string()),
            ValueRef::Time(t) => Value::Time(t),
            ValueRef::Bytes(b) => Value::Bytes(b.to_vec()),
            ValueRef::Unavailable => Value::Unavailable,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            ValueRef::Null => 0,
            ValueRef::Bool(_) => 1,
            ValueRef::Int(_) => 2,
            ValueRef::Float(_) => 3,
            ValueRef::Decimal(_) => 4,
            ValueRef::Str(_) => 5,
            ValueRef::Timestamp(_) => 6,
            ValueRef::Date(_) => 7,
            ValueRef::Json(_) => 8,
            ValueRef::Time(_) => 9,
            ValueRef::Bytes(_) => 10,
            ValueRef::Unavailable => 11,
        }
    }

    /// A total order (for sorting and arrangements, not for comparing rows).
    pub fn total_cmp(&self, other: &ValueRef<'_>) -> Ordering {
        use ValueRef::*;
        match (self, other) {
            (Bool(a), Bool(b)) => a.cmp(b),
            (Int(a), Int(b)) => a.cmp(b),
            (Float(a), Float(b)) => a.total_cmp(b),
            (Decimal(a), Decimal(b)) => (a.mantissa, a.scale).cmp(&(b.mantissa, b.scale)),
            (Str(a), Str(b)) | (Json(a), Json(b)) => a.cmp(b),
            (Timestamp(a), Timestamp(b)) => a.cmp(b),
            (Date(a), Date(b)) => a.cmp(b),
            (Time(a), Time(b)) => a.cmp(b),
            (Bytes(a), Bytes(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl Value {
    /// A borrowed view.
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Bool(b) => ValueRef::Bool(*b),
            Value::Int(i) => ValueRef::Int(*i),
            Value::Float(f) => ValueRef::Float(*f),
            Value::Decimal(d) => ValueRef::Decimal(*d),
            Value::Str(s) => ValueRef::Str(s),
            Value::Timestamp(t) => ValueRef::Timestamp(*t),
            Value::Date(d) => ValueRef::Date(*d),
            Value::Json(s) => ValueRef::Json(s),
            Value::Time(t) => ValueRef::Time(*t),
            Value::Bytes(b) => ValueRef::Bytes(b),
            Value::Unavailable => ValueRef::Unavailable,
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Value {}
impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_ref().total_cmp(&other.as_ref())
    }
}
