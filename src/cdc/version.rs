//! Per-key versions: one path or several, compared in order, numbers as numbers.
//!
//! Debezium's connectors order a key's changes differently: PostgreSQL by one number
//! (`source.lsn`), MySQL by three parts (`source.file`, `source.pos`, `source.row`:
//! binlog files rotate and `pos` restarts), SQL Server by fixed-width hex strings, Oracle
//! by an SCN that may exceed 64 bits, written as a digit string. A [`Version`] holds any
//! of them in a form whose byte order is the version order, so the gate compares two
//! versions with one `memcmp` and a checkpoint stores them as bytes. The common case, one
//! number that fits 64 bits, stays a plain `u64` (no allocation on the hot path).

use super::json::Scalar;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use triomphe::ThinArc;

/// A part that is `null` (a snapshot event's SQL Server `change_lsn`): before any value.
const NULL: u8 = 0;
/// A non-negative integer: digit count, then the digits without leading zeros.
const NUM: u8 = 1;
/// Any other string: its bytes (0 escaped as 0 0xFF), then 0 0.
const STR: u8 = 2;

/// A change's position in its key's history; greater is newer.
#[derive(Clone)]
pub enum Version {
    /// One non-negative integer that fits 64 bits (the common case).
    Num(u64),
    /// Anything else, in the encoding whose byte order is the version order.
    Encoded(ThinArc<(), u8>),
}

/// One part of a version, as read from a message.
pub(crate) type Part<'a> = Scalar<'a>;

/// A version part that cannot be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPart(pub String);

fn push_digits(out: &mut Vec<u8>, digits: &[u8]) -> Result<(), BadPart> {
    let start = digits
        .iter()
        .position(|&d| d != b'0')
        .unwrap_or(digits.len());
    let digits = &digits[start..];
    let len = u8::try_from(digits.len())
        .map_err(|_| BadPart(format!("a number of {} digits", digits.len())))?;
    out.push(NUM);
    out.push(len);
    out.extend_from_slice(digits);
    Ok(())
}

fn push_part(out: &mut Vec<u8>, part: &Scalar<'_>) -> Result<(), BadPart> {
    match part {
        Scalar::Null => out.push(NULL),
        Scalar::I64(i) if *i >= 0 => push_digits(out, i.to_string().as_bytes())?,
        Scalar::U64(u) => push_digits(out, u.to_string().as_bytes())?,
        Scalar::Str(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            push_digits(out, s.as_bytes())?
        }
        Scalar::Str(s) => {
            out.push(STR);
            for &b in s.as_bytes() {
                out.push(b);
                if b == 0 {
                    out.push(0xFF);
                }
            }
            out.extend_from_slice(&[0, 0]);
        }
        other => {
            return Err(BadPart(format!(
                "{}, not a non-negative integer or a string",
                other.describe()
            )))
        }
    }
    Ok(())
}

impl Version {
    /// The version made of `parts` (the values at the spec's version paths, in order).
    pub fn from_parts(parts: &[Scalar<'_>]) -> Result<Version, BadPart> {
        if let [one] = parts {
            if let Some(v) = Version::number(one) {
                return Ok(v);
            }
        }
        let mut out = Vec::with_capacity(8 * parts.len());
        for p in parts {
            push_part(&mut out, p)?;
        }
        Ok(Version::from_encoded(&out))
    }

    /// The version of one part that is a non-negative integer (or its digits) within
    /// 64 bits, the common case; `None` for any other.
    #[inline]
    pub(crate) fn number(one: &Scalar<'_>) -> Option<Version> {
        match one {
            Scalar::I64(i) if *i >= 0 => Some(Version::Num(*i as u64)),
            Scalar::U64(u) => Some(Version::Num(*u)),
            Scalar::Str(s) if s.len() < 20 && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse::<u64>().ok().map(Version::Num)
            }
            _ => None,
        }
    }

    /// The version whose encoding is `bytes` (as [`Version::encoded`] gave them).
    pub fn from_encoded(bytes: &[u8]) -> Version {
        if let [NUM, len, digits @ ..] = bytes {
            if usize::from(*len) == digits.len() && digits.len() <= 19 {
                let text = std::str::from_utf8(digits).unwrap_or("x");
                if let Ok(n) = text.parse() {
                    return Version::Num(n);
                }
            }
        }
        Version::Encoded(ThinArc::from_header_and_slice((), bytes))
    }

    /// The encoding: byte order is version order.
    pub fn encoded(&self) -> std::borrow::Cow<'_, [u8]> {
        match self {
            Version::Num(n) => {
                let mut out = Vec::with_capacity(22);
                push_digits(&mut out, n.to_string().as_bytes()).expect("20 digits at most");
                out.into()
            }
            Version::Encoded(b) => std::borrow::Cow::Borrowed(&b.slice),
        }
    }

    /// The version as drift records show it: a number (a digit string when over 64
    /// bits), a string, or an array of those for several parts.
    pub fn to_json(&self) -> serde_json::Value {
        let bytes = match self {
            Version::Num(n) => return (*n).into(),
            Version::Encoded(b) => &b.slice,
        };
        let mut parts = Vec::new();
        let mut rest: &[u8] = bytes;
        while let Some((&tag, tail)) = rest.split_first() {
            match tag {
                NUM if !tail.is_empty() => {
                    let len = usize::from(tail[0]).min(tail.len() - 1);
                    let digits = String::from_utf8_lossy(&tail[1..=len]).into_owned();
                    let digits = if digits.is_empty() {
                        "0".into()
                    } else {
                        digits
                    };
                    parts.push(match digits.parse::<u64>() {
                        Ok(n) => n.into(),
                        Err(_) => digits.into(),
                    });
                    rest = &tail[1 + len..];
                }
                STR => {
                    let mut s = Vec::new();
                    let mut i = 0;
                    while i < tail.len() {
                        match (tail[i], tail.get(i + 1)) {
                            (0, Some(0xFF)) => s.push(0),
                            (0, _) => break,
                            (b, _) => {
                                s.push(b);
                                i += 1;
                                continue;
                            }
                        }
                        i += 2;
                    }
                    parts.push(String::from_utf8_lossy(&s).into_owned().into());
                    rest = tail.get(i + 2..).unwrap_or_default();
                }
                _ => {
                    parts.push(serde_json::Value::Null);
                    rest = tail;
                }
            }
        }
        match parts.len() {
            1 => parts.pop().unwrap_or_default(),
            _ => parts.into(),
        }
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Version::Num(a), Version::Num(b)) => a.cmp(b),
            _ => self.encoded().cmp(&other.encoded()),
        }
    }
}
impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for Version {}

impl std::fmt::Debug for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Version::Num(n) => s.serialize_newtype_variant("Version", 0, "Num", n),
            Version::Encoded(b) => s.serialize_newtype_variant(
                "Version",
                1,
                "Encoded",
                serde_bytes::Bytes::new(&b.slice),
            ),
        }
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        enum Wire {
            Num(u64),
            Encoded(serde_bytes::ByteBuf),
        }
        Ok(match Wire::deserialize(d)? {
            Wire::Num(n) => Version::Num(n),
            Wire::Encoded(b) => Version::from_encoded(&b),
        })
    }
}

/// Versions for other modules' tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A version from `:`-separated parts (digit strings are numbers).
    pub(crate) fn parts(text: &str) -> Version {
        let parts: Vec<Scalar<'_>> = text
            .split(':')
            .map(|p| Scalar::Str(std::borrow::Cow::Borrowed(p)))
            .collect();
        Version::from_parts(&parts).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn v(parts: &[Scalar<'_>]) -> Version {
        Version::from_parts(parts).unwrap()
    }
    fn s(t: &str) -> Scalar<'_> {
        Scalar::Str(Cow::Borrowed(t))
    }

    #[test]
    fn numbers_digit_strings_and_strings_order_as_documented() {
        // Digit strings are numbers, whatever their length (Oracle SCNs exceed 64 bits).
        assert!(v(&[s("9")]) < v(&[s("10")]));
        assert!(v(&[s("99999999999999999999")]) < v(&[s("100000000000000000000")]));
        assert_eq!(v(&[s("0042")]), v(&[Scalar::I64(42)]));
        assert!(v(&[Scalar::I64(7)]) < v(&[s("18446744073709551616")]));
        // SQL Server's hex positions are fixed-width strings: lexicographic.
        let sql = |c: &str, e: i64| v(&[s(c), s(c), Scalar::I64(e)]);
        assert!(sql("00000027:00000758:0003", 2) < sql("00000027:00000758:0003", 3));
        assert!(sql("00000027:00000758:0003", 9) < sql("00000027:00000760:0001", 1));
        // MySQL: the file first, then pos (which restarts in a new file), then row.
        let my = |f: &str, p: i64, r: i64| v(&[s(f), Scalar::I64(p), Scalar::I64(r)]);
        assert!(my("mysql-bin.000003", 9_000, 0) < my("mysql-bin.000004", 4, 0));
        assert!(my("mysql-bin.000003", 154, 0) < my("mysql-bin.000003", 154, 1));
        assert!(my("mysql-bin.000003", 154, 1) < my("mysql-bin.000003", 1_540, 0));
        // A null part (a snapshot's SQL Server change_lsn) sorts before any value.
        assert!(v(&[s("a"), Scalar::Null]) < v(&[s("a"), s("0")]));
        // A string prefix sorts first, embedded zero bytes included.
        assert!(v(&[s("ab"), Scalar::I64(9)]) < v(&[s("abc"), Scalar::I64(0)]));
        assert!(v(&[s("a\0"), Scalar::I64(9)]) > v(&[s("a"), Scalar::I64(9)]));
        assert!(Version::from_parts(&[Scalar::F64(1.5)]).is_err());
        assert!(Version::from_parts(&[Scalar::I64(-1)]).is_err());
    }

    #[test]
    fn encodings_round_trip_and_render() {
        let cases = [
            v(&[Scalar::I64(5)]),
            v(&[s("123456789012345678901234")]),
            v(&[s("mysql-bin.000003"), Scalar::I64(154), Scalar::I64(0)]),
            v(&[s("x\0y"), Scalar::Null]),
        ];
        for c in &cases {
            let back = Version::from_encoded(&c.encoded());
            assert_eq!(&back, c);
            assert_eq!(back.to_json(), c.to_json());
        }
        assert!(matches!(cases[0], Version::Num(5)));
        assert_eq!(
            cases[1].to_json(),
            serde_json::json!("123456789012345678901234")
        );
        assert_eq!(
            cases[2].to_json(),
            serde_json::json!(["mysql-bin.000003", 154, 0])
        );
        assert_eq!(cases[3].to_json(), serde_json::json!(["x\u{0}y", null]));
    }
}
