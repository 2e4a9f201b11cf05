//! Drift per key: the outer comparison of the source's and the target's current rows.

use super::{gate::SideTrace, DriftKind, DriftState, Meta, SideRow, Time};
use crate::cdc::SideId;
use crate::row::{CompareRules, Key};
use differential_dataflow::operators::arrange::Arranged;
use differential_dataflow::trace::implementations::{ValBuilder, ValSpine};
use differential_dataflow::VecCollection;
use std::sync::Arc;

/// The difference between the two sides of one key, if any.
pub fn compare(
    rules: &CompareRules,
    source: Option<&SideRow>,
    target: Option<&SideRow>,
) -> Option<DriftState> {
    let meta = |r: &SideRow| Meta {
        version: r.version,
        ts_ms: r.ts_ms,
    };
    let (kind, fields) = match (source, target) {
        (None, None) => return None,
        (Some(_), None) => (DriftKind::Missing, Vec::new()),
        (None, Some(_)) => (DriftKind::Orphan, Vec::new()),
        (Some(s), Some(t)) => {
            let fields = rules.diff(&s.row, &t.row);
            if fields.is_empty() {
                return None;
            }
            (DriftKind::Mismatch, fields)
        }
    };
    Some(DriftState {
        kind,
        fields,
        source: source.map(meta),
        target: target.map(meta),
        source_row: source.map(|s| s.row.clone()),
    })
}

/// Drift as a collection: `(key, state)` present exactly while the key's sides differ.
pub fn drift<'s>(
    rows: Arranged<'s, SideTrace>,
    rules: Arc<CompareRules>,
) -> VecCollection<'s, Time, (Key, DriftState), isize> {
    rows.reduce_abelian::<_, ValBuilder<_, _, _, _>, ValSpine<Key, DriftState, Time, isize>, _, _>(
        "Drift",
        move |_key, input: &[(&SideRow, isize)], output: &mut Vec<(DriftState, isize)>| {
            let side = |s: SideId| {
                input
                    .iter()
                    .find(|(r, d)| r.side == s && *d > 0)
                    .map(|(r, _)| *r)
            };
            if let Some(state) = compare(&rules, side(SideId::Source), side(SideId::Target)) {
                output.push((state, 1));
            }
        },
        |vec, key, upds| {
            vec.clear();
            vec.extend(upds.drain(..).map(|(v, t, r)| ((key.clone(), v), t, r)));
        },
    )
    .as_collection(|k, v| (k.clone(), v.clone()))
}
