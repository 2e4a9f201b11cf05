//! What the naive baselines know about the orders schema by heart: how to compare a
//! source row (Decimal bytes, microseconds) with a replica row (numbers, RFC 3339).

use base64::Engine as _;
use serde_json::Value;

/// Whether two orders rows (JSON objects) are equal under the orders spec's rules.
pub fn same(source: &Value, target: &Value) -> bool {
    let (Some(s), Some(t)) = (source.as_object(), target.as_object()) else {
        return false;
    };
    let fields = s.keys().chain(t.keys()).filter(|k| *k != "_synced_at");
    fields.into_iter().all(|f| {
        let (a, b) = (
            &s.get(f).unwrap_or(&Value::Null),
            &t.get(f).unwrap_or(&Value::Null),
        );
        match f.as_str() {
            "amount" => match (amount(a), amount(b)) {
                (Some(x), Some(y)) => (x - y).abs() <= 0.005 + 1e-9,
                _ => a == b,
            },
            "updated_at" => micros(a).is_some() && micros(a) == micros(b),
            _ => a == b,
        }
    })
}
/// A Decimal as base64 big-endian bytes at scale 2, or a plain number.
fn amount(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
            let mut unscaled: i128 = if bytes.first()? & 0x80 != 0 { -1 } else { 0 };
            for b in bytes {
                unscaled = (unscaled << 8) | i128::from(b);
            }
            Some(unscaled as f64 / 100.0)
        }
        _ => None,
    }
}

/// Microseconds since the epoch, or an RFC 3339 string.
fn micros(v: &Value) -> Option<i128> {
    match v {
        Value::Number(n) => n.as_i64().map(i128::from),
        Value::String(s) => {
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .ok()?;
            Some(t.unix_timestamp_nanos() / 1000)
        }
        _ => None,
    }
}
