//! Field-level comparison of two rows under the spec's rules.

use super::{Decimal, Row, Value, ValueRef};
use crate::spec::Spec;
use crate::{FastMap, FastSet};
use serde::{Deserialize, Serialize};

/// One differing column. `None` means the column is absent on that side.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FieldDiff {
    /// Column name.
    pub field: String,
    /// The source's value.
    pub source: Option<Value>,
    /// The target's value.
    pub target: Option<Value>,
}

/// The comparison rules of one spec, prepared for the hot path.
#[derive(Debug, Clone, Default)]
pub struct CompareRules {
    /// Per side (source, target): whether a placeholder means "unchanged".
    placeholders: [bool; 2],
    ignore: FastSet<String>,
    tolerance: FastMap<String, (f64, Option<Decimal>)>,
    null_equals_absent: bool,
}

impl CompareRules {
    /// The rules a spec declares.
    pub fn new(spec: &Spec) -> Self {
        CompareRules {
            placeholders: [
                spec.source.unavailable_placeholders,
                spec.target.unavailable_placeholders,
            ],
            ignore: spec.compare.ignore.iter().cloned().collect(),
            tolerance: spec
                .fields
                .iter()
                .filter_map(|(name, f)| {
                    f.tolerance
                        .map(|t| (name.clone(), (t, Decimal::from_f64(t))))
                })
                .collect(),
            null_equals_absent: spec.compare.null_equals_absent,
        }
    }

    /// Whether `side`'s capture sends Debezium's placeholder for unchanged columns.
    pub fn placeholders(&self, side: crate::cdc::SideId) -> bool {
        self.placeholders[side as usize]
    }

    /// Whether column `name` is left out of comparisons.
    pub fn ignored(&self, name: &str) -> bool {
        self.ignore.contains(name)
    }

    /// The differing columns of two rows, in name order; empty when they are equal.
    pub fn diff(&self, source: &Row, target: &Row) -> Vec<FieldDiff> {
        let mut out = Vec::new();
        self.walk(source, target, |name, sv, tv| {
            out.push(FieldDiff {
                field: name.to_string(),
                source: sv.map(ValueRef::to_owned),
                target: tv.map(ValueRef::to_owned),
            });
            true
        });
        out
    }

    /// Whether two rows are equal under the rules (as `diff(..).is_empty()`, without
    /// allocating: this runs after every change).
    pub fn equal(&self, source: &Row, target: &Row) -> bool {
        let mut equal = true;
        self.walk(source, target, |_, _, _| {
            equal = false;
            false
        });
        equal
    }

    /// Calls `differs` on each differing column in name order while it returns true.
    fn walk<'r>(
        &self,
        source: &'r Row,
        target: &'r Row,
        mut differs: impl FnMut(&'r str, Option<ValueRef<'r>>, Option<ValueRef<'r>>) -> bool,
    ) {
        let mut s = source.fields().peekable();
        let mut t = target.fields().peekable();
        loop {
            let (name, sv, tv) = match (s.peek(), t.peek()) {
                (None, None) => break,
                (Some(&(sn, sv)), Some(&(tn, tv))) => match sn.cmp(tn) {
                    std::cmp::Ordering::Equal => {
                        s.next();
                        t.next();
                        (sn, Some(sv), Some(tv))
                    }
                    std::cmp::Ordering::Less => {
                        s.next();
                        (sn, Some(sv), None)
                    }
                    std::cmp::Ordering::Greater => {
                        t.next();
                        (tn, None, Some(tv))
                    }
                },
                (Some(&(sn, sv)), None) => {
                    s.next();
                    (sn, Some(sv), None)
                }
                (None, Some(&(tn, tv))) => {
                    t.next();
                    (tn, None, Some(tv))
                }
            };
            if self.ignore.contains(name) || self.same(name, sv, tv) {
                continue;
            }
            if !differs(name, sv, tv) {
                break;
            }
        }
    }

    fn same(&self, name: &str, a: Option<ValueRef<'_>>, b: Option<ValueRef<'_>>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => values_equal(a, b, self.tolerance.get(name)),
            (Some(ValueRef::Null), None) | (None, Some(ValueRef::Null)) => self.null_equals_absent,
            _ => false,
        }
    }
}

fn exact(v: ValueRef<'_>) -> Option<Decimal> {
    match v {
        ValueRef::Int(i) => Some(Decimal {
            mantissa: i128::from(i),
            scale: 0,
        }),
        ValueRef::Decimal(d) => Some(d),
        _ => None,
    }
}

fn float(v: ValueRef<'_>) -> Option<f64> {
    match v {
        ValueRef::Int(i) => Some(i as f64),
        ValueRef::Float(f) => Some(f),
        ValueRef::Decimal(d) => Some(d.to_f64()),
        _ => None,
    }
}

/// Whether two values are equal: numbers by value (within `tolerance` if given),
/// instants and dates by value, everything else exactly.
pub fn values_equal(
    a: ValueRef<'_>,
    b: ValueRef<'_>,
    tolerance: Option<&(f64, Option<Decimal>)>,
) -> bool {
    use ValueRef::*;
    match (a, b) {
        (Null, Null) => true,
        (Bool(x), Bool(y)) => x == y,
        (Str(x), Str(y)) | (Json(x), Json(y)) => x == y,
        (Timestamp(x), Timestamp(y)) => x == y,
        (Date(x), Date(y)) => x == y,
        (Int(_) | Float(_) | Decimal(_), Int(_) | Float(_) | Decimal(_)) => {
            if let (Some(x), Some(y)) = (exact(a), exact(b)) {
                let verdict = match tolerance {
                    Some((_, Some(tol))) => x.within(y, *tol),
                    None => x.exact_cmp(y).map(|o| o.is_eq()),
                    Some((_, None)) => None,
                };
                if let Some(v) = verdict {
                    return v;
                }
            }
            let (x, y) = (float(a).unwrap_or(f64::NAN), float(b).unwrap_or(f64::NAN));
            match tolerance {
                Some((tol, _)) => (x - y).abs() <= tol + 4.0 * f64::EPSILON * x.abs().max(y.abs()),
                None => x == y,
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::RowBuilder;

    fn row(cols: &[(&str, ValueRef<'_>)]) -> Row {
        let mut b = RowBuilder::default();
        for (n, v) in cols {
            b.push(n, *v).unwrap();
        }
        b.finish_row()
    }

    #[test]
    fn numbers_compare_by_value_with_tolerance() {
        let tol = (0.005, Decimal::from_f64(0.005));
        let d = |s| ValueRef::Decimal(Decimal::parse(s).unwrap());
        assert!(values_equal(d("12.50"), ValueRef::Float(12.5), None));
        assert!(values_equal(d("12.00"), ValueRef::Int(12), None));
        assert!(!values_equal(d("12.01"), ValueRef::Int(12), None));
        assert!(values_equal(d("12.005"), d("12.00"), Some(&tol)));
        assert!(!values_equal(d("12.006"), d("12.00"), Some(&tol)));
        assert!(values_equal(
            ValueRef::Float(12.004),
            d("12.00"),
            Some(&tol)
        ));
        assert!(!values_equal(ValueRef::Str("12"), ValueRef::Int(12), None));
    }

    #[test]
    fn diff_lists_fields_and_honours_rules() {
        let mut rules = CompareRules {
            null_equals_absent: true,
            ..Default::default()
        };
        rules.ignore.insert("_synced_at".into());
        let s = row(&[
            ("id", ValueRef::Int(1)),
            ("status", ValueRef::Str("shipped")),
            ("note", ValueRef::Null),
        ]);
        let t = row(&[
            ("id", ValueRef::Int(1)),
            ("status", ValueRef::Str("pending")),
            ("_synced_at", ValueRef::Int(5)),
            ("extra", ValueRef::Bool(true)),
        ]);
        let d = rules.diff(&s, &t);
        assert_eq!(d.len(), 2);
        assert_eq!(
            d[0],
            FieldDiff {
                field: "extra".into(),
                source: None,
                target: Some(Value::Bool(true))
            }
        );
        assert_eq!(d[1].field, "status");
        rules.null_equals_absent = false;
        assert_eq!(rules.diff(&s, &t).len(), 3);
        assert!(rules.diff(&s, &s).is_empty());
    }
}
