//! Canonical rows: decoded column values in a compact, sorted byte encoding.
//!
//! A row is one allocation (`Arc<[u8]>`): columns sorted by name, each a tagged value.
//! That keeps per-key state small (the job's memory is O(keys) rows) and lets two rows
//! be compared column by column in one merge pass, whatever order the JSON had.

mod canonical;
mod compare;
mod decimal;
mod encode;
mod json;
mod time;
mod value;

pub use canonical::{canonical_json, canonical_value};
pub use compare::{CompareRules, FieldDiff, FieldFilter};
pub use decimal::Decimal;
pub(crate) use encode::prefetch;
pub(crate) use encode::ColumnName;
pub use encode::{fill_unavailable, Key, Row, RowBuilder, UNAVAILABLE};
pub use json::{JsonKey, JsonRow, JsonValue};
pub use time::{
    format_date, format_time, format_timestamp, parse_date, parse_time, parse_timestamp,
};
pub use value::{Value, ValueRef};
