//! Field-level comparison of two rows under the spec's rules.

use super::encode::{raw_identical, raw_value};
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

/// Which columns are compared: `[compare] only` (when not empty) less `ignore` (names
/// and glob patterns).
#[derive(Debug, Clone, Default)]
pub struct FieldFilter {
    ignore: FastSet<String>,
    globs: Option<globset::GlobSet>,
    only: Option<FastSet<String>>,
}

impl FieldFilter {
    /// Whether `pattern` is a glob pattern rather than a column name.
    pub fn is_glob(pattern: &str) -> bool {
        pattern.contains(['*', '?', '[', '{'])
    }

    /// The filter `[compare]` declares; a pattern that is not a valid glob is an error.
    pub fn new(ignore: &[String], only: &[String]) -> Result<FieldFilter, String> {
        let mut globs = globset::GlobSetBuilder::new();
        let mut any = false;
        for p in ignore.iter().filter(|p| Self::is_glob(p)) {
            globs.add(globset::Glob::new(p).map_err(|e| format!("`{p}`: {e}"))?);
            any = true;
        }
        Ok(FieldFilter {
            ignore: ignore
                .iter()
                .filter(|p| !Self::is_glob(p))
                .cloned()
                .collect(),
            globs: any
                .then(|| globs.build())
                .transpose()
                .map_err(|e| e.to_string())?,
            only: (!only.is_empty()).then(|| only.iter().cloned().collect()),
        })
    }

    /// Whether column `name` is left out of comparisons.
    pub fn skips(&self, name: &str) -> bool {
        self.ignore.contains(name)
            || self.only.as_ref().is_some_and(|only| !only.contains(name))
            || self.globs.as_ref().is_some_and(|g| g.is_match(name))
    }
}

/// How one column compares, beyond its type.
#[derive(Debug, Clone, Default)]
pub struct FieldRule {
    /// Absolute tolerance, as a float and (when exact) as a decimal.
    tolerance: Option<(f64, Option<Decimal>)>,
    /// Relative tolerance.
    relative: Option<f64>,
    /// Instants and times less than this many nanoseconds apart are equal.
    precision_ns: Option<i64>,
    trim: bool,
    case_insensitive: bool,
    empty_equals_null: bool,
}

/// The comparison rules of one spec, prepared for the hot path.
#[derive(Debug, Clone, Default)]
pub struct CompareRules {
    filter: FieldFilter,
    fields: FastMap<String, FieldRule>,
    /// Renamed columns: the spec's (source) name → the target's.
    renames: FastMap<String, String>,
    null_equals_absent: bool,
}

impl CompareRules {
    /// The rules a spec declares (a spec that passed validation).
    pub fn new(spec: &Spec) -> Self {
        let fields = spec
            .fields
            .iter()
            .map(|(name, f)| {
                let rule = FieldRule {
                    tolerance: f.tolerance.map(|t| (t, Decimal::from_f64(t))),
                    relative: f.relative_tolerance,
                    precision_ns: f.precision.map(|p| p.nanos()),
                    trim: f.trim,
                    case_insensitive: f.case_insensitive,
                    empty_equals_null: f.empty_equals_null,
                };
                (name.clone(), rule)
            })
            .collect();
        CompareRules {
            filter: FieldFilter::new(&spec.compare.ignore, &spec.compare.only).unwrap_or_default(),
            fields,
            renames: spec
                .fields
                .iter()
                .filter_map(|(name, f)| Some((name.clone(), f.target.clone()?)))
                .collect(),
            null_equals_absent: spec.compare.null_equals_absent,
        }
    }

    /// Whether column `name` is left out of comparisons.
    pub fn ignored(&self, name: &str) -> bool {
        self.filter.skips(name)
    }

    /// A source row with the target's column names (renamed columns), for corrections.
    pub fn target_names(&self, row: &Row) -> Row {
        if self.renames.is_empty() || !row.fields().any(|(n, _)| self.renames.contains_key(n)) {
            return row.clone();
        }
        let mut b = super::RowBuilder::default();
        for (name, value) in row.fields() {
            let name = self.renames.get(name).map_or(name, String::as_str);
            let _ = b.push(name, value);
        }
        b.finish_row()
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
        // Rows in sync are most often identical: one comparison.
        if source.reflexive() && source.as_bytes() == target.as_bytes() {
            return true;
        }
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
        // Columns are read undecoded: a value is decoded only when its bytes differ
        // from the other side's (most columns of most rows are identical).
        let (mut sf, mut tf) = (source.fields(), target.fields());
        let (mut s, mut t) = (sf.next_raw(), tf.next_raw());
        loop {
            let (name, sv, tv) = match (s, t) {
                (None, None) => break,
                (Some((sn, sv)), Some((tn, tv))) => match sn.cmp(tn) {
                    std::cmp::Ordering::Equal => {
                        (s, t) = (sf.next_raw(), tf.next_raw());
                        // Identical values are the same under every rule (each is
                        // reflexive): most columns, with no look-up of the name.
                        if raw_identical(sv, tv) {
                            continue;
                        }
                        (sn, Some(sv), Some(tv))
                    }
                    std::cmp::Ordering::Less => {
                        s = sf.next_raw();
                        (sn, Some(sv), None)
                    }
                    std::cmp::Ordering::Greater => {
                        t = tf.next_raw();
                        (tn, None, Some(tv))
                    }
                },
                (Some((sn, sv)), None) => {
                    s = sf.next_raw();
                    (sn, Some(sv), None)
                }
                (None, Some((tn, tv))) => {
                    t = tf.next_raw();
                    (tn, None, Some(tv))
                }
            };
            let (sv, tv) = (sv.and_then(raw_value), tv.and_then(raw_value));
            if self.filter.skips(name) || self.same(name, sv, tv) {
                continue;
            }
            if !differs(name, sv, tv) {
                break;
            }
        }
    }

    fn same(&self, name: &str, a: Option<ValueRef<'_>>, b: Option<ValueRef<'_>>) -> bool {
        let rule = self.fields.get(name);
        let empty_null = rule.is_some_and(|r| r.empty_equals_null);
        let nullish =
            |v: ValueRef<'_>| v == ValueRef::Null || (empty_null && v == ValueRef::Str(""));
        match (a, b) {
            // An unknown value (a placeholder nothing filled in) is never compared.
            (Some(ValueRef::Unavailable), _) | (_, Some(ValueRef::Unavailable)) => true,
            (Some(a), Some(b)) => values_equal(a, b, rule) || (nullish(a) && nullish(b)),
            (Some(v), None) | (None, Some(v)) => nullish(v) && self.null_equals_absent,
            (None, None) => true,
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

/// Whether two strings are equal under a column's string rules.
fn strings_equal(x: &str, y: &str, rule: Option<&FieldRule>) -> bool {
    let Some(r) = rule.filter(|r| r.trim || r.case_insensitive) else {
        return x == y;
    };
    let (x, y) = if r.trim { (x.trim(), y.trim()) } else { (x, y) };
    if r.case_insensitive {
        x == y || x.to_lowercase() == y.to_lowercase()
    } else {
        x == y
    }
}

/// Whether two values are equal under a column's rule: numbers by value (within the
/// absolute or relative tolerance), instants, times and dates by value (within the
/// precision), strings under the string rules, everything else exactly.
pub fn values_equal(a: ValueRef<'_>, b: ValueRef<'_>, rule: Option<&FieldRule>) -> bool {
    use ValueRef::*;
    let near = |x: i64, y: i64| match rule.and_then(|r| r.precision_ns) {
        Some(p) => x.abs_diff(y) < p.unsigned_abs(),
        None => x == y,
    };
    match (a, b) {
        (Null, Null) => true,
        (Bool(x), Bool(y)) => x == y,
        (Str(x), Str(y)) => strings_equal(x, y, rule),
        (Json(x), Json(y)) => x == y,
        (Timestamp(x), Timestamp(y)) | (Time(x), Time(y)) => near(x, y),
        (Date(x), Date(y)) => x == y,
        (Bytes(x), Bytes(y)) => x == y,
        (Int(_) | Float(_) | Decimal(_), Int(_) | Float(_) | Decimal(_)) => {
            let tolerance = rule.and_then(|r| r.tolerance.as_ref());
            let relative = rule.and_then(|r| r.relative);
            if let (Some(x), Some(y)) = (exact(a), exact(b)) {
                let verdict = match tolerance {
                    Some((_, Some(tol))) => x.within(y, *tol),
                    None => x.exact_cmp(y).map(|o| o.is_eq()),
                    Some((_, None)) => None,
                };
                match verdict {
                    Some(true) => return true,
                    Some(false) if relative.is_none() => return false,
                    _ => {}
                }
            }
            let (x, y) = (float(a).unwrap_or(f64::NAN), float(b).unwrap_or(f64::NAN));
            let slack = 4.0 * f64::EPSILON * x.abs().max(y.abs());
            let within_abs = match tolerance {
                Some((tol, _)) => (x - y).abs() <= tol + slack,
                None => x == y,
            };
            within_abs
                || relative.is_some_and(|r| (x - y).abs() <= r * x.abs().max(y.abs()) + slack)
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
        let tol = FieldRule {
            tolerance: Some((0.005, Decimal::from_f64(0.005))),
            ..FieldRule::default()
        };
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
            filter: FieldFilter::new(&["_synced_*".into()], &[]).unwrap(),
            ..Default::default()
        };
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

    /// A row byte for byte identical to another is equal to it by one comparison,
    /// unless it holds a float (NaN is not equal to itself), whichever way the row was
    /// made: built, or read from bytes whose flags byte says otherwise.
    #[test]
    fn identical_rows_are_equal_unless_a_float_is_nan() {
        let rules = CompareRules::default();
        let plain = row(&[("id", ValueRef::Int(1)), ("note", ValueRef::Str("x"))]);
        let nan = row(&[("id", ValueRef::Int(1)), ("x", ValueRef::Float(f64::NAN))]);
        let one = row(&[("id", ValueRef::Int(1)), ("x", ValueRef::Float(1.5))]);
        assert!(rules.equal(&plain, &plain.clone()));
        assert!(rules.equal(&one, &one.clone()));
        assert!(!rules.equal(&nan, &nan.clone()));
        for flip in 0u8..4 {
            let mut bytes = nan.as_bytes().to_vec();
            bytes[0] ^= flip;
            let lying = Row::from_encoded(&bytes);
            assert!(!rules.equal(&lying, &lying.clone()), "flags ^ {flip}");
            let mut bytes = plain.as_bytes().to_vec();
            bytes[0] ^= flip;
            let restored = Row::from_encoded(&bytes);
            assert!(rules.equal(&restored, &restored.clone()), "flags ^ {flip}");
            assert!(rules.equal(&restored, &plain));
        }
    }
}
