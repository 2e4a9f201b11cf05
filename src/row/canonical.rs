//! JSON documents in one spelling, so that two documents equal in meaning are equal text.
//!
//! Databases spell the same JSON column differently (MySQL's snapshot and binlog readers
//! disagree on whitespace and on numbers; PostgreSQL's `jsonb` reorders keys), so a
//! `json` column is compared by this canonical text: keys sorted, no whitespace, numbers
//! as the number they denote (`1.0` is `1`, `1e2` is `100`; beyond 64-bit integers, the
//! nearest double, as JSON parsers read them).

use serde_json::Value;
use std::fmt::Write as _;

/// The canonical text of the JSON document `text`; `None` if it is not JSON.
pub fn canonical_json(text: &str) -> Option<String> {
    let value: Value = serde_json::from_str(text).ok()?;
    Some(canonical_value(&value))
}

/// The canonical text of a JSON value.
pub fn canonical_value(value: &Value) -> String {
    let mut out = String::new();
    write(value, &mut out);
    out
}

fn write(value: &Value, out: &mut String) {
    match value {
        Value::Null | Value::Bool(_) | Value::String(_) => out.push_str(&value.to_string()),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                let _ = write!(out, "{i}");
            } else if let Some(u) = n.as_u64() {
                let _ = write!(out, "{u}");
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
                    let _ = write!(out, "{}", f as i64);
                } else {
                    let _ = write!(out, "{f:e}");
                }
            }
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // serde_json's map is ordered by key.
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write(v, out);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::canonical_json as c;

    #[test]
    fn equal_meaning_is_equal_text() {
        assert_eq!(
            c(r#"{"b": [1, 2.0], "a": {"y": 1e2, "x": null}}"#),
            c(r#"{"a":{"x":null,"y":100},"b":[1,2]}"#)
        );
        assert_eq!(c("18446744073709551616"), c("1.8446744073709552e19"));
        assert_eq!(c("0.5"), c("5e-1"));
        assert_ne!(c("[1,2]"), c("[2,1]"));
        assert_ne!(c(r#""1""#), c("1"));
        assert_eq!(c("not json"), None);
        assert_eq!(c(r#" {"a" : "x y"} "#).unwrap(), r#"{"a":"x y"}"#);
    }
}
