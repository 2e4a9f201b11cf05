//! Exact decimals (`mantissa × 10^-scale`), as Debezium's `Decimal` logical type carries them.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;

/// The powers of ten an `i128` holds: 10^0 to 10^38.
const POW10: [i128; 39] = {
    let mut p = [1i128; 39];
    let mut i = 1;
    while i < 39 {
        p[i] = p[i - 1] * 10;
        i += 1;
    }
    p
};

/// An exact decimal number `mantissa × 10^-scale`.
/// Equality is representational (`1.0` ≠ `1.00`); compare values with [`Decimal::exact_cmp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decimal {
    /// The unscaled integer.
    pub mantissa: i128,
    /// Digits after the decimal point.
    pub scale: u8,
}

impl Decimal {
    /// Parses `-12.50`, `3`, `1e3`-free decimal text; `None` if it is not one.
    pub fn parse(text: &str) -> Option<Decimal> {
        // One pass, failing at the first byte that is not a digit or the point: a
        // schema-less base64 mantissa (`Wd0=`) is tried as text first, every event.
        let (neg, digits) = match text.as_bytes().first()? {
            b'-' => (true, &text.as_bytes()[1..]),
            b'+' => (false, &text.as_bytes()[1..]),
            _ => (false, text.as_bytes()),
        };
        let mut mantissa: i128 = 0;
        let mut point = None;
        for (i, &c) in digits.iter().enumerate() {
            match c {
                b'0'..=b'9' => {
                    mantissa = mantissa
                        .checked_mul(10)?
                        .checked_add(i128::from(c - b'0'))?;
                }
                b'.' if point.is_none() => point = Some(i),
                _ => return None,
            }
        }
        let scale = point.map_or(0, |p| digits.len() - p - 1);
        if digits.len() == usize::from(point.is_some()) || scale > 38 {
            return None;
        }
        Some(Decimal {
            mantissa: if neg { -mantissa } else { mantissa },
            // An i128 holds 38 digits: a longer fraction cannot be exact.
            scale: scale as u8,
        })
    }

    /// The exact decimal of a finite float's shortest round-trip text (`0.1` → `0.1`).
    pub fn from_f64(value: f64) -> Option<Decimal> {
        // The common case without formatting (a replica's amounts come as JSON
        // numbers: formatting each one was 3% of the engine's instructions): the least
        // scale at which the nearest integer multiple round-trips, when it is the only
        // one there that does, is the shortest text's value.
        const EXACT: f64 = (1u64 << 53) as f64;
        if value.is_finite() && value.abs() < 1e15 {
            let mut power = 1.0f64;
            for scale in 0..=17u8 {
                let m = (value * power).round();
                if m.abs() >= EXACT {
                    break;
                }
                if m / power == value {
                    if (m - 1.0) / power == value || (m + 1.0) / power == value {
                        break;
                    }
                    return Some(Decimal {
                        mantissa: m as i128,
                        scale,
                    });
                }
                power *= 10.0;
            }
        }
        Decimal::from_f64_text(value)
    }

    /// [`Decimal::from_f64`] by way of the float's shortest round-trip text.
    fn from_f64_text(value: f64) -> Option<Decimal> {
        if !value.is_finite() {
            return None;
        }
        let text = format!("{value}");
        if text.contains('e') {
            return None;
        }
        Decimal::parse(&text)
    }

    /// Decodes Kafka Connect's `Decimal`: big-endian two's complement bytes.
    pub fn from_be_bytes(bytes: &[u8], scale: u8) -> Option<Decimal> {
        if bytes.is_empty() || bytes.len() > 16 {
            return None;
        }
        let fill = if bytes[0] & 0x80 != 0 { 0xff } else { 0 };
        let mut buf = [fill; 16];
        buf[16 - bytes.len()..].copy_from_slice(bytes);
        Some(Decimal {
            mantissa: i128::from_be_bytes(buf),
            scale,
        })
    }

    /// The same value written at `scale`: trailing zeros added (when the mantissa
    /// holds them) or dropped (down to `scale`, where there are more digits). Two
    /// sides' decimals of a column declared at one scale are then written alike
    /// (`345.4` from a replica's JSON number, `345.40` from the source's bytes) and
    /// compare as equal bytes.
    pub fn at_scale(self, scale: u8) -> Decimal {
        let mut d = self;
        if d.scale < scale {
            let up = POW10.get(usize::from(scale - d.scale));
            if let Some(m) = up.and_then(|&p| d.mantissa.checked_mul(p)) {
                return Decimal { mantissa: m, scale };
            }
        }
        while d.scale > scale && d.mantissa % 10 == 0 {
            d.mantissa /= 10;
            d.scale -= 1;
        }
        d
    }

    /// An approximation as a float.
    pub fn to_f64(self) -> f64 {
        self.mantissa as f64 / 10f64.powi(i32::from(self.scale))
    }

    /// Both mantissas at the larger scale, if that fits.
    fn aligned(self, other: Decimal) -> Option<(i128, i128)> {
        let scale = self.scale.max(other.scale);
        let up = |d: Decimal| {
            let shift = usize::from(scale - d.scale);
            // The common case without 128-bit overflow checks (a replica's amounts
            // compared with a tolerance ran them for every other event): a 64-bit
            // mantissa times at most 10^18 is under 2^123.
            if shift <= 18 && i64::try_from(d.mantissa).is_ok() {
                return Some(d.mantissa * POW10[shift]);
            }
            d.mantissa.checked_mul(*POW10.get(shift)?)
        };
        Some((up(self)?, up(other)?))
    }

    /// Exact comparison; `None` when the alignment overflows.
    pub fn exact_cmp(self, other: Decimal) -> Option<Ordering> {
        self.aligned(other).map(|(a, b)| a.cmp(&b))
    }

    /// Whether `|self - other| <= tolerance`, exactly; `None` on overflow.
    pub fn within(self, other: Decimal, tolerance: Decimal) -> Option<bool> {
        let (a, b) = self.aligned(other)?;
        let scale = self.scale.max(other.scale);
        let diff = Decimal {
            mantissa: a.checked_sub(b)?.checked_abs()?,
            scale,
        };
        diff.exact_cmp(tolerance).map(|o| o != Ordering::Greater)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.mantissa.unsigned_abs().to_string();
        let scale = usize::from(self.scale);
        if self.mantissa < 0 {
            f.write_str("-")?;
        }
        if scale == 0 {
            return f.write_str(&digits);
        }
        if digits.len() <= scale {
            write!(f, "0.{}{}", "0".repeat(scale - digits.len()), digits)
        } else {
            let (i, d) = digits.split_at(digits.len() - scale);
            write!(f, "{i}.{d}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Decimal;
    use proptest::prelude::*;

    proptest! {
        /// At any scale a decimal keeps its value, reaches the scale where its zeros
        /// (or its room) allow, and two equal values end written alike.
        #[test]
        fn a_decimal_at_a_scale_keeps_its_value(
            mantissa in -1_000_000_000_000i64..1_000_000_000_000,
            zeros in 0u32..6,
            scale in 0u8..12,
            to in 0u8..12,
        ) {
            let d = Decimal { mantissa: i128::from(mantissa), scale };
            let padded = Decimal {
                mantissa: d.mantissa * 10i128.pow(zeros),
                scale: scale + zeros as u8,
            };
            let (a, b) = (d.at_scale(to), padded.at_scale(to));
            prop_assert_eq!(a.exact_cmp(d), Some(std::cmp::Ordering::Equal));
            prop_assert_eq!(a, b);
            prop_assert!(a.scale >= to);
            if a.scale > to {
                prop_assert!(a.mantissa % 10 != 0);
            }
        }

        #[test]
        fn a_float_converts_as_its_shortest_text_does(
            bits in any::<u64>(),
            mantissa in -10_000_000_000i64..10_000_000_000,
            scale in 0u32..12,
        ) {
            let short = mantissa as f64 / 10f64.powi(scale as i32);
            for f in [f64::from_bits(bits), short, -short, short * 3.0, short / 7.0] {
                prop_assert_eq!(Decimal::from_f64(f), Decimal::from_f64_text(f), "{}", f);
            }
        }
    }

    #[test]
    fn floats_at_the_edges_convert_as_their_shortest_text_does() {
        for f in [
            0.0,
            -0.0,
            0.1,
            0.2,
            0.3,
            1.5,
            5.0,
            1e15,
            999_999_999_999_999.9,
            1e-7,
            0.1 + 0.2,
            123.45,
            9_007_199_254_740_991.0,
            4.35,
            1.005,
            2.675,
            1e-17,
            5e-324,
            f64::MAX,
            f64::NAN,
            f64::INFINITY,
        ] {
            assert_eq!(Decimal::from_f64(f), Decimal::from_f64_text(f), "{f}");
        }
    }

    /// The two-pass parser the one-pass one replaced: the oracle.
    fn parse_oracle(text: &str) -> Option<Decimal> {
        let (neg, digits) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if (int.is_empty() && frac.is_empty())
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
            || frac.len() > 38
        {
            return None;
        }
        let mut mantissa: i128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            mantissa = mantissa
                .checked_mul(10)?
                .checked_add(i128::from(b - b'0'))?;
        }
        Some(Decimal {
            mantissa: if neg { -mantissa } else { mantissa },
            scale: u8::try_from(frac.len()).ok()?,
        })
    }

    proptest::proptest! {
        /// Decimals of every size and scale align, compare and test their distance as
        /// by the powers and products checked for overflow that the table replaced.
        #[test]
        fn alignment_is_the_checked_alignment(
            a in proptest::prop_oneof![-1000i128..1000, (i64::MIN as i128)..=(i64::MAX as i128), proptest::num::i128::ANY],
            b in proptest::prop_oneof![-1000i128..1000, (i64::MIN as i128)..=(i64::MAX as i128), proptest::num::i128::ANY],
            sa in 0u8..45,
            sb in 0u8..45,
        ) {
            let (x, y) = (Decimal { mantissa: a, scale: sa }, Decimal { mantissa: b, scale: sb });
            let scale = sa.max(sb);
            let up = |d: Decimal| d.mantissa.checked_mul(10i128.checked_pow(u32::from(scale - d.scale))?);
            let want = up(x).zip(up(y));
            proptest::prop_assert_eq!(x.aligned(y), want);
            proptest::prop_assert_eq!(x.exact_cmp(y), want.map(|(p, q)| p.cmp(&q)));
        }
    }

    #[test]
    fn parse_edges_are_the_two_pass_parse() {
        let long = |zeros: usize| format!("0.{}1", "0".repeat(zeros));
        let edges = [
            "", "-", "+", ".", "-.", "+.", "5.", ".5", "-.5", "1..2", "1.2.3", "--1", "+-1",
        ];
        let nines = "9".repeat(39);
        let mut texts: Vec<String> = edges.iter().map(|e| e.to_string()).collect();
        texts.extend([long(36), long(37), long(38), nines[1..].into(), nines]);
        for text in &texts {
            assert_eq!(Decimal::parse(text), parse_oracle(text), "{text:?}");
        }
    }

    proptest::proptest! {
        /// Texts of digits, points and signs of every length (past 38 digits and the
        /// 39 of an i128), and others, parse as the two-pass parser parses them.
        #[test]
        fn parse_is_the_two_pass_parse(
            text in proptest::prop_oneof![
                "[-+]?[0-9]{0,42}(\\.[0-9]{0,42})?",
                "[-+.0-9]{0,8}",
                "[-+.0-9a-zA-Z=/ ]{0,12}",
                ".*",
            ]
        ) {
            proptest::prop_assert_eq!(Decimal::parse(&text), parse_oracle(&text));
        }
    }

    #[test]
    fn parse_print_compare() {
        let d = Decimal::parse("-12.50").unwrap();
        assert_eq!((d.mantissa, d.scale), (-1250, 2));
        assert_eq!(d.to_string(), "-12.50");
        assert_eq!(Decimal::parse("0.05").unwrap().to_string(), "0.05");
        assert_eq!(
            Decimal::parse("12.5").unwrap().exact_cmp(d),
            Some(std::cmp::Ordering::Greater)
        );
        assert_eq!(
            Decimal::parse("-12.5").unwrap().exact_cmp(d),
            Some(std::cmp::Ordering::Equal)
        );
        assert!(
            Decimal::parse("1e5").is_none()
                && Decimal::parse("").is_none()
                && Decimal::parse(".").is_none()
        );
        let tol = Decimal::parse("0.005").unwrap();
        assert_eq!(
            Decimal::parse("10.005")
                .unwrap()
                .within(Decimal::parse("10").unwrap(), tol),
            Some(true)
        );
        assert_eq!(
            Decimal::parse("10.0051")
                .unwrap()
                .within(Decimal::parse("10").unwrap(), tol),
            Some(false)
        );
        // 0x3039 = 12345, scale 2 → 123.45; 0xCFC7 = -12345
        assert_eq!(
            Decimal::from_be_bytes(&[0x30, 0x39], 2)
                .unwrap()
                .to_string(),
            "123.45"
        );
        assert_eq!(
            Decimal::from_be_bytes(&[0xCF, 0xC7], 2)
                .unwrap()
                .to_string(),
            "-123.45"
        );
        assert_eq!(Decimal::from_f64(0.1).unwrap().to_string(), "0.1");
    }
}
