//! Checks of `[fields.*]`, `[compare]` and the placeholder settings: each option applies
//! to the types it is meant for, numbers are in range, patterns and names are valid.

use crate::spec::{FieldKind, Spec};

/// Reports every problem of the column declarations and comparison rules.
pub(super) fn problems(spec: &Spec, err: &mut impl FnMut(&str, String)) {
    use FieldKind::*;
    let mut targets: std::collections::BTreeMap<&str, &str> = Default::default();
    for (name, f) in &spec.fields {
        let path = |field: &str| format!("fields.{name}.{field}");
        let only_for = |field: &str, types: &str| format!("`{field}` applies to {types} only");
        if let Some(scale) = f.scale {
            if f.kind != Decimal {
                err(&path("scale"), only_for("scale", "`type = \"decimal\"`"));
            } else if scale > 38 {
                err(
                    &path("scale"),
                    format!("scale {scale} is over the maximum of 38"),
                );
            }
        }
        for (field, value) in [
            ("tolerance", f.tolerance),
            ("relative_tolerance", f.relative_tolerance),
        ] {
            let Some(t) = value else { continue };
            if !(t.is_finite() && t >= 0.0) {
                err(&path(field), "must be a finite number at least 0".into());
            }
            if !matches!(f.kind, Auto | Decimal) {
                err(
                    &path(field),
                    only_for(field, "numeric columns (`auto`, `decimal`)"),
                );
            }
            if spec.key.contains(name) {
                err(&path(field), "a key column cannot have a tolerance".into());
            }
        }
        if f.precision.is_some() && !matches!(f.kind, Timestamp | Time) {
            err(
                &path("precision"),
                only_for("precision", "`timestamp` and `time` columns"),
            );
        }
        if f.encoding != Default::default() && f.kind != Bytes {
            err(
                &path("encoding"),
                only_for("encoding", "`type = \"bytes\"`"),
            );
        }
        for (field, on) in [
            ("trim", f.trim),
            ("case_insensitive", f.case_insensitive),
            ("empty_equals_null", f.empty_equals_null),
        ] {
            if on && !matches!(f.kind, Auto | Uuid | Set) {
                err(&path(field), only_for(field, "string columns (`auto`)"));
            }
            if on && spec.key.contains(name) {
                err(&path(field), "a key column is compared exactly".into());
            }
        }
        if let Some(t) = &f.target {
            if t.is_empty() || t.len() > 255 {
                err(
                    &path("target"),
                    "a column name must be 1 to 255 bytes".into(),
                );
            } else if spec.key.contains(name) || spec.key.contains(t) {
                err(&path("target"), "key columns cannot be renamed".into());
            } else if let Some(other) = targets.insert(t, name) {
                err(
                    &path("target"),
                    format!("`{t}` is already the target of `{other}`"),
                );
            } else if t != name && spec.fields.contains_key(t.as_str()) {
                err(
                    &path("target"),
                    format!("`{t}` is also declared as a column of its own"),
                );
            }
        }
    }
    for (i, pattern) in spec.compare.ignore.iter().enumerate() {
        if let Err(e) = crate::row::FieldFilter::new(std::slice::from_ref(pattern), &[]) {
            err(
                &format!("compare.ignore.{i}"),
                format!("not a valid pattern: {e}"),
            );
        }
    }
    for (i, name) in spec.compare.only.iter().enumerate() {
        if name.is_empty() {
            err(&format!("compare.only.{i}"), "an empty column name".into());
        }
    }
    for (side, s) in [("source", &spec.source), ("target", &spec.target)] {
        let Some(p) = &s.unavailable_placeholder else {
            continue;
        };
        let path = format!("{side}.unavailable_placeholder");
        if !s.unavailable_placeholders {
            err(
                &path,
                "has no effect with `unavailable_placeholders = false`".into(),
            );
        } else if let Err(e) = crate::cdc::check_placeholder(p) {
            err(&path, e);
        }
    }
}
