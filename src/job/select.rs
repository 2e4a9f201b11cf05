//! Which readers of a shared input take a message: each side's `select` on envelope fields.
//!
//! Debezium's topic routing puts many tables in one topic, so several entities may read
//! one partition, each taking its own table's events. The envelope is read once for
//! every reader's fields together ([`lookup_many`]); the readers whose values all match
//! then decode the message as usual. Paths are relative to the event, which is the
//! whole value or, in Kafka Connect's wrapper, its `payload`: both are looked up in the
//! same pass.

use crate::cdc::json::{lookup_many, Scalar};
use std::collections::BTreeMap;

/// Why a message could not be selected: its value is not a JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unreadable(pub(crate) String);

/// The `select` tables of a partition's readers, compiled to one lookup.
#[derive(Debug, Clone)]
pub(crate) struct Selector {
    /// Every path any reader selects on, then each again below `payload`.
    paths: Vec<Vec<String>>,
    /// Per reader: (index into the first half of `paths`, wanted value).
    wants: Vec<Vec<(usize, String)>>,
}

impl Selector {
    /// A selector for readers with these `select` tables (an empty one takes every
    /// message), or `None` when no reader selects: then every reader takes everything.
    pub(crate) fn new(selects: &[&BTreeMap<String, String>]) -> Option<Self> {
        if selects.iter().all(|s| s.is_empty()) {
            return None;
        }
        let mut paths: Vec<Vec<String>> = Vec::new();
        let wants = selects
            .iter()
            .map(|select| {
                select
                    .iter()
                    .map(|(path, value)| {
                        let path: Vec<String> = path.split('.').map(str::to_string).collect();
                        let i = paths.iter().position(|p| *p == path).unwrap_or_else(|| {
                            paths.push(path);
                            paths.len() - 1
                        });
                        (i, value.clone())
                    })
                    .collect()
            })
            .collect();
        let wrapped: Vec<Vec<String>> = paths
            .iter()
            .map(|p| {
                std::iter::once("payload".to_string())
                    .chain(p.clone())
                    .collect()
            })
            .collect();
        paths.extend(wrapped);
        Some(Selector { paths, wants })
    }

    /// Sets `taken[r]` to whether reader `r` takes a message of this value. A message
    /// without a value (a tombstone) names no fields, so only readers that select
    /// nothing take it.
    pub(crate) fn select(
        &self,
        value: Option<&[u8]>,
        taken: &mut Vec<bool>,
    ) -> Result<(), Unreadable> {
        taken.clear();
        let Some(value) = value else {
            taken.extend(self.wants.iter().map(Vec::is_empty));
            return Ok(());
        };
        let text = std::str::from_utf8(value).map_err(|e| {
            Unreadable(format!(
                "the value is not UTF-8 ({e}), so no select applies"
            ))
        })?;
        let raw: &serde_json::value::RawValue = serde_json::from_str(text).map_err(|e| {
            Unreadable(format!("the value is not JSON ({e}), so no select applies"))
        })?;
        let refs: Vec<&[String]> = self.paths.iter().map(Vec::as_slice).collect();
        let mut found: Vec<Option<Scalar<'_>>> = vec![None; self.paths.len()];
        lookup_many(raw, &refs, &mut found).map_err(|e| {
            Unreadable(format!("the value is not JSON ({e}), so no select applies"))
        })?;
        let half = self.paths.len() / 2;
        let value_at = |i: usize| found[i].as_ref().or(found[half + i].as_ref());
        taken.extend(self.wants.iter().map(|wants| {
            wants
                .iter()
                .all(|(i, wanted)| value_at(*i).is_some_and(|v| matches(v, wanted)))
        }));
        Ok(())
    }
}

/// Whether a field's value is `wanted`: a string equal to it, or a number or boolean
/// whose JSON text is it.
fn matches(value: &Scalar<'_>, wanted: &str) -> bool {
    match value {
        Scalar::Str(s) => s == wanted,
        Scalar::I64(n) => n.to_string() == wanted,
        Scalar::U64(n) => n.to_string() == wanted,
        Scalar::F64(n) => n.to_string() == wanted,
        Scalar::Bool(b) => b.to_string() == wanted,
        Scalar::Null | Scalar::Nested(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn taken(selector: &Selector, value: Option<&str>) -> Result<Vec<bool>, Unreadable> {
        let mut out = Vec::new();
        selector.select(value.map(str::as_bytes), &mut out)?;
        Ok(out)
    }

    #[test]
    fn readers_take_their_tables_bare_or_wrapped() {
        let orders = table(&[("source.schema", "public"), ("source.table", "orders")]);
        let items = table(&[("source.table", "items")]);
        let everything = BTreeMap::new();
        let s = Selector::new(&[&orders, &items, &everything]).unwrap();
        let bare =
            r#"{"op":"c","after":{"id":1},"source":{"schema":"public","table":"orders","lsn":7}}"#;
        assert_eq!(taken(&s, Some(bare)).unwrap(), [true, false, true]);
        let wrapped = r#"{"schema":{"type":"struct"},"payload":{"op":"u","source":{"table":"items","schema":"public"}}}"#;
        assert_eq!(taken(&s, Some(wrapped)).unwrap(), [false, true, true]);
        let other_schema = r#"{"source":{"schema":"audit","table":"orders"}}"#;
        assert_eq!(taken(&s, Some(other_schema)).unwrap(), [false, false, true]);
        // A tombstone names no table: only the reader that selects nothing takes it.
        assert_eq!(taken(&s, None).unwrap(), [false, false, true]);
    }

    #[test]
    fn numbers_and_booleans_match_their_text_and_garbage_is_unreadable() {
        let shard = table(&[("source.shard", "3"), ("source.snapshot", "false")]);
        let s = Selector::new(&[&shard]).unwrap();
        let yes = r#"{"source":{"shard":3,"snapshot":false}}"#;
        let no = r#"{"source":{"shard":"4","snapshot":false}}"#;
        let missing = r#"{"source":{"shard":3}}"#;
        assert_eq!(taken(&s, Some(yes)).unwrap(), [true]);
        assert_eq!(taken(&s, Some(no)).unwrap(), [false]);
        assert_eq!(taken(&s, Some(missing)).unwrap(), [false]);
        assert!(taken(&s, Some("{not json")).is_err());
        let mut out = Vec::new();
        assert!(s.select(Some(&[0xff, 0xfe]), &mut out).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_selected_or_unreadable_never_a_panic(
            value in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        ) {
            let orders = table(&[("source.table", "orders")]);
            let s = Selector::new(&[&orders, &BTreeMap::new()]).unwrap();
            let mut out = Vec::new();
            if s.select(Some(&value), &mut out).is_ok() {
                proptest::prop_assert_eq!(out.len(), 2);
                proptest::prop_assert!(out[1]);
            }
        }
    }

    #[test]
    fn no_select_anywhere_needs_no_selector() {
        let empty = BTreeMap::new();
        assert!(Selector::new(&[&empty, &empty]).is_none());
    }
}
