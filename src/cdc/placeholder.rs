//! Debezium's placeholder for a column it did not read, in every form it is sent.
//!
//! PostgreSQL under REPLICA IDENTITY DEFAULT does not send an unchanged TOASTed value;
//! Debezium puts `unavailable.value.placeholder` (default `__debezium_unavailable_value`,
//! `hex:…` for raw bytes) in its place, typed like the column: the string for text, its
//! bytes for `bytea` (base64, or hex under `binary.handling.mode = hex`), a one-string
//! array for `text[]`, the byte codes for `int[]`, a map of the string to itself for
//! `hstore`. The decoder turns any of them into an unknown value, which the version gate
//! fills with the column's previous value.

use super::json::Scalar;
use base64::Engine as _;

/// Debezium's default placeholder.
pub const DEFAULT: &str = "__debezium_unavailable_value";

/// One side's placeholder in all its forms.
#[derive(Debug, Clone)]
pub struct Placeholders {
    /// String forms: the text, base64 and hex of its bytes.
    strings: Vec<String>,
    /// Nested forms as canonical JSON text (arrays, maps).
    nested: Vec<String>,
    /// The shortest and the longest string form, to rule most strings out at once.
    lengths: (usize, usize),
}

impl Placeholders {
    /// The forms of the configured placeholder (`None`: Debezium's default).
    pub fn new(configured: Option<&str>) -> Result<Placeholders, String> {
        let configured = configured.unwrap_or(DEFAULT);
        let bytes = match configured.strip_prefix("hex:") {
            Some(hex) => hex::decode(hex).map_err(|_| {
                format!("`{configured}`: after `hex:` write an even number of hex digits")
            })?,
            None => configured.as_bytes().to_vec(),
        };
        if bytes.is_empty() {
            return Err("the placeholder is empty".into());
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let b64 = base64::engine::general_purpose::STANDARD;
        let hex = hex::encode(&bytes);
        let mut strings = vec![
            text.clone(),
            b64.encode(&bytes),
            base64::engine::general_purpose::URL_SAFE.encode(&bytes),
            hex.to_uppercase(),
            hex,
        ];
        strings.sort();
        strings.dedup();
        // Byte codes as Java's signed bytes, and unsigned (the same for ASCII).
        let signed: Vec<i64> = bytes.iter().map(|&b| i64::from(b as i8)).collect();
        let unsigned: Vec<i64> = bytes.iter().map(|&b| i64::from(b)).collect();
        let mut nested = vec![
            serde_json::json!([text]).to_string(),
            serde_json::json!(signed).to_string(),
            serde_json::json!(unsigned).to_string(),
            serde_json::json!({ text.clone(): text }).to_string(),
        ];
        nested.dedup();
        let lengths = strings.iter().fold((usize::MAX, 0), |(lo, hi), s| {
            (lo.min(s.len()), hi.max(s.len()))
        });
        Ok(Placeholders {
            strings,
            nested,
            lengths,
        })
    }

    /// Whether `value` is the placeholder in one of its forms.
    pub fn matches(&self, value: &Scalar<'_>) -> bool {
        match value {
            Scalar::Str(s) => self.matches_text(s),
            Scalar::Nested(n) => self.nested.iter().any(|p| p == n),
            _ => false,
        }
    }

    /// Whether a string value is the placeholder in one of its forms.
    #[inline]
    pub(crate) fn matches_text(&self, s: &str) -> bool {
        s.len() >= self.lengths.0
            && s.len() <= self.lengths.1
            && self.strings.iter().any(|p| p == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn string(s: &str) -> Scalar<'_> {
        Scalar::Str(Cow::Borrowed(s))
    }

    #[test]
    fn every_form_debezium_sends_is_recognised() {
        let p = Placeholders::new(None).unwrap();
        assert!(p.matches(&string(DEFAULT)));
        // bytea: the placeholder's bytes in base64 (as in Debezium's own tests) or hex.
        assert!(p.matches(&string("X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==")));
        let hex: String = DEFAULT.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(p.matches(&string(&hex)));
        // text[], int[] (byte codes), hstore.
        let nested = |v: serde_json::Value| Scalar::Nested(v.to_string());
        assert!(p.matches(&nested(serde_json::json!([DEFAULT]))));
        let codes: Vec<i64> = DEFAULT.bytes().map(i64::from).collect();
        assert!(p.matches(&nested(serde_json::json!(codes))));
        assert!(p.matches(&nested(serde_json::json!({ DEFAULT: DEFAULT }))));
        for other in ["__debezium_unavailable_valu", "", "x"] {
            assert!(!p.matches(&string(other)), "{other}");
        }
        assert!(!p.matches(&Scalar::I64(1)));
    }

    #[test]
    fn a_configured_placeholder_and_its_hex_spelling() {
        let p = Placeholders::new(Some("hex:deadbeef")).unwrap();
        assert!(p.matches(&string("3q2+7w==")));
        assert!(p.matches(&string("DEADBEEF")));
        assert!(p.matches(&Scalar::Nested("[-34,-83,-66,-17]".into())));
        assert!(!p.matches(&string(DEFAULT)));
        let p = Placeholders::new(Some("<toast>")).unwrap();
        assert!(p.matches(&string("<toast>")) && !p.matches(&string(DEFAULT)));
        assert!(Placeholders::new(Some("hex:abc")).is_err());
        assert!(Placeholders::new(Some("")).is_err());
    }
}
