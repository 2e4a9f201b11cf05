//! JSON numbers, their digits read eight at a time.
//!
//! An event carries a dozen numbers, most of them long (event times in ms or µs, log
//! positions, transaction ids): a byte-by-byte loop spent about eight instructions a
//! digit. Up to eight ASCII digits are found and converted as one `u64` (the method
//! of simdjson's `parse_eight_digits_unrolled`); the last seven bytes of a text byte
//! by byte.

use super::super::super::json::Scalar;
use super::Scan;
use crate::row::Decimal;

/// Powers of ten up to the eighth.
const TENS: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// The ASCII digits that lead the 8 bytes at `at`: how many (0 to 8) and the number
/// they spell; `None` when fewer than 8 bytes are left.
fn leading_digits(b: &[u8], at: usize) -> Option<(usize, u64)> {
    let x = chunk_at(b, at)?;
    let n = digit_count(x);
    if n == 0 {
        return Some((0, 0));
    }
    // The digits moved to the top (the first digit is the lowest byte), zeros below
    // them, then pairs, fours and the eight.
    let x = (x & 0x0F0F_0F0F_0F0F_0F0F) << (64 - 8 * n);
    let v = x.wrapping_mul(2561) >> 8;
    let v = (v & 0x00FF_00FF_00FF_00FF).wrapping_mul(6_553_601) >> 16;
    Some((
        n,
        (v & 0x0000_FFFF_0000_FFFF).wrapping_mul(42_949_672_960_001) >> 32,
    ))
}

/// How many ASCII digits lead the 8 bytes at `at` ([`leading_digits`] without the
/// number); `None` when fewer than 8 bytes are left.
fn leading_digit_count(b: &[u8], at: usize) -> Option<usize> {
    chunk_at(b, at).map(digit_count)
}

/// The 8 bytes at `at`, the first the lowest; `None` when fewer are left.
#[inline]
fn chunk_at(b: &[u8], at: usize) -> Option<u64> {
    let chunk: [u8; 8] = b.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(chunk))
}

/// How many ASCII digits lead the 8 bytes of `x`, the first the lowest.
#[inline]
fn digit_count(x: u64) -> usize {
    // A digit's high nibble is 3, and stays 3 when 6 is added (0x3A..0x3F become 4):
    // a byte of `not` is zero exactly when its byte is a digit. Adding 6 carries out
    // of a byte only from 0xFA up, into the bytes after it: the first non-digit and
    // those before it are read right.
    let high = 0xF0F0_F0F0_F0F0_F0F0;
    let threes = 0x3030_3030_3030_3030;
    let not = ((x & high) ^ threes) | ((x.wrapping_add(0x0606_0606_0606_0606) & high) ^ threes);
    (not.trailing_zeros() / 8) as usize
}

impl<'a> Scan<'a> {
    /// Passes the digits from the position on; how many there were.
    fn digit_span(&mut self) -> usize {
        let b = self.bytes();
        let start = self.at;
        while let Some(n) = leading_digit_count(b, self.at) {
            self.at += n;
            if n < 8 {
                return self.at - start;
            }
        }
        while b.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        self.at - start
    }

    /// Passes a number, checked against JSON's grammar as [`Scan::number`] checks it
    /// but not converted: a passed-over value that changes with every event (a
    /// transaction id, an event time) cost a conversion each time.
    pub(super) fn pass_number(&mut self) -> Option<()> {
        let b = self.bytes();
        if b.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        match b.get(self.at)? {
            b'0' => self.at += 1,
            b'1'..=b'9' => {
                self.digit_span();
            }
            _ => return None,
        }
        if b.get(self.at) == Some(&b'.') {
            self.at += 1;
            (self.digit_span() > 0).then_some(())?;
        }
        if matches!(b.get(self.at), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(b.get(self.at), Some(b'+' | b'-')) {
                self.at += 1;
            }
            (self.digit_span() > 0).then_some(())?;
        }
        Some(())
    }

    /// Digits from the position on, accumulated into `value` (wrapping: the caller
    /// trusts it up to 18 digits); how many there were.
    fn digit_run(&mut self, value: &mut u64) -> usize {
        let b = self.bytes();
        let start = self.at;
        while let Some((n, v)) = leading_digits(b, self.at) {
            *value = value.wrapping_mul(TENS[n]).wrapping_add(v);
            self.at += n;
            if n < 8 {
                return self.at - start;
            }
        }
        while let Some(d) = b.get(self.at).filter(|c| c.is_ascii_digit()) {
            *value = value.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
            self.at += 1;
        }
        self.at - start
    }

    /// Digits from the position on; at least one.
    fn digits(&mut self) -> Option<()> {
        (self.digit_run(&mut 0) > 0).then_some(())
    }

    /// A number, converted as serde_json converts it: an integer within `i64` (or up
    /// to `u64::MAX` when positive) exactly, `-0` and anything else as a float parsed
    /// by serde_json itself (so the rounding is the same).
    pub(super) fn number(&mut self) -> Option<Scalar<'a>> {
        let start = self.at;
        let b = self.bytes();
        let negative = b.get(self.at) == Some(&b'-');
        if negative {
            self.at += 1;
        }
        let mut value: u64 = 0;
        let digits = match b.get(self.at)? {
            b'0' => {
                self.at += 1;
                1
            }
            b'1'..=b'9' => self.digit_run(&mut value),
            _ => return None,
        };
        let mut integer = true;
        if b.get(self.at) == Some(&b'.') {
            self.at += 1;
            self.digits()?;
            integer = false;
        }
        if matches!(b.get(self.at), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(b.get(self.at), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.digits()?;
            integer = false;
        }
        // Up to 18 digits cannot overflow: exact as it was accumulated.
        if integer && digits <= 18 && !(negative && value == 0) {
            let v = value as i64;
            return Some(Scalar::I64(if negative { -v } else { v }));
        }
        let text = &self.text[start..self.at];
        if integer && text != "-0" {
            if let Ok(i) = text.parse::<i64>() {
                return Some(Scalar::I64(i));
            }
            if let Ok(u) = text.parse::<u64>() {
                return Some(Scalar::U64(u));
            }
        }
        serde_json::from_str::<f64>(text).ok().map(Scalar::F64)
    }

    /// A decimal column's number read as an exact decimal, when that is what the
    /// float path makes of it (a replica's amounts come as JSON numbers: parsing each
    /// as a float, then finding the float's shortest decimal, cost about 450
    /// instructions): no exponent, at most 15 significant digits (every float
    /// round-trips those, so the float's shortest text is the number's own, less its
    /// fraction's trailing zeros) and a scale of at most 17. `None`, with nothing
    /// consumed, for anything else: the caller reads it as a scalar.
    pub(in crate::cdc::debezium) fn exact_decimal(&mut self) -> Option<Decimal> {
        let start = self.at;
        let read = self.exact_decimal_from();
        if read.is_none() {
            self.at = start;
        }
        read
    }

    fn exact_decimal_from(&mut self) -> Option<Decimal> {
        let b = self.bytes();
        let negative = b.get(self.at) == Some(&b'-');
        if negative {
            self.at += 1;
        }
        let mut m: u64 = 0;
        let mut digits = match b.get(self.at)? {
            // A leading zero is not significant (and no digit may follow it).
            b'0' => {
                self.at += 1;
                0
            }
            b'1'..=b'9' => self.digit_run(&mut m),
            _ => return None,
        };
        let mut scale = 0;
        if b.get(self.at) == Some(&b'.') {
            self.at += 1;
            let n = self.digit_run(&mut m);
            if n == 0 {
                return None;
            }
            digits += n;
            scale = n;
        }
        // Up to 18 digits accumulated exactly; an exponent is left to the float path.
        if digits > 18 || matches!(b.get(self.at), Some(b'e' | b'E')) {
            return None;
        }
        while scale > 0 && m.is_multiple_of(10) {
            m /= 10;
            scale -= 1;
        }
        if m >= 1_000_000_000_000_000 || scale > 17 {
            return None;
        }
        let m = i128::from(m);
        Some(Decimal {
            mantissa: if negative { -m } else { m },
            scale: scale as u8,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Scan;
    use super::leading_digits;
    use crate::cdc::json::Scalar;
    use crate::row::Decimal;
    use proptest::prelude::*;

    /// What serde_json makes of `text`: the number it starts with and where that ends,
    /// or `None` when it does not start with one.
    fn oracle(text: &str) -> Option<(Scalar<'static>, usize)> {
        let mut stream = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
        let value = stream.next()?.ok()?;
        let n = value.as_number()?.clone();
        let scalar = if let Some(i) = n.as_i64() {
            Scalar::I64(i)
        } else if let Some(u) = n.as_u64() {
            Scalar::U64(u)
        } else {
            Scalar::F64(n.as_f64()?)
        };
        Some((scalar, stream.byte_offset()))
    }

    proptest! {
        /// The digits leading any eight bytes are counted and converted.
        #[test]
        fn leading_digits_are_counted_and_converted(
            bytes in prop::collection::vec(prop_oneof![b'0'..=b'9', any::<u8>()], 8)
        ) {
            let n = bytes.iter().take_while(|c| c.is_ascii_digit()).count();
            let v = std::str::from_utf8(&bytes[..n]).unwrap().parse::<u64>().unwrap_or(0);
            prop_assert_eq!(leading_digits(&bytes, 0), Some((n, v)));
            prop_assert_eq!(leading_digits(&bytes[1..], 0), None);
        }

        /// Numbers of every length, sign, fraction and exponent, followed by a
        /// delimiter, read as serde_json reads them and end where it ends.
        #[test]
        fn numbers_read_as_serde_json_reads_them(
            text in "-?(0|[1-9][0-9]{0,30})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?",
            delimiter in prop::sample::select(vec![",", "}", "]", " "]),
        ) {
            let line = format!("{text}{delimiter}");
            let mut scan = Scan { text: &line, at: 0 };
            let got = scan.number().map(|s| (s, scan.at));
            prop_assert_eq!(got, oracle(&line));
        }
    }

    proptest! {
        /// A number passed over ends where it ends when read, and is refused where
        /// reading it is, however it is cut or mangled; but for one beyond a float's
        /// range, which JSON's grammar allows and serde_json passes over as well.
        #[test]
        fn numbers_pass_where_they_read(
            text in "-?(0|[1-9][0-9]{0,30})?(\\.[0-9]{0,20})?([eE][+-]?[0-9]{0,3})?[-+.eE0-9x]?",
            delimiter in prop::sample::select(vec!["", ",", "}", " "]),
        ) {
            let line = format!("{text}{delimiter}");
            let mut read = Scan { text: &line, at: 0 };
            let mut passed = Scan { text: &line, at: 0 };
            let want = read.number().map(|_| read.at);
            let got = passed.pass_number().map(|()| passed.at);
            match (got, want) {
                (Some(end), None) => {
                    let number = &line[..end];
                    prop_assert!(serde_json::from_str::<serde::de::IgnoredAny>(number).is_ok());
                    prop_assert!(serde_json::from_str::<f64>(number).is_err(), "{}", number);
                }
                _ => prop_assert_eq!(got, want),
            }
        }
    }

    proptest! {
        // Numbers of 16 to 18 digits, where a float's shortest text stops being the
        // number's own, are a small share of these: enough cases to meet them.
        #![proptest_config(ProptestConfig::with_cases(8192))]

        /// A number read as an exact decimal is the decimal the float path makes of
        /// it (an integer exactly, a float by its shortest text) and ends where the
        /// number ends; one that is not left untouched.
        #[test]
        fn exact_decimals_are_what_the_float_path_makes(
            text in "-?(0|[1-9][0-9]{0,19})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,2})?",
            delimiter in prop::sample::select(vec![",", "}"]),
        ) {
            let line = format!("{text}{delimiter}");
            let mut scan = Scan { text: &line, at: 0 };
            let got = scan.exact_decimal().map(|d| (d, scan.at));
            match got {
                Some((d, at)) => {
                    let mut general = Scan { text: &line, at: 0 };
                    let want = match general.number().unwrap() {
                        Scalar::I64(i) => Decimal { mantissa: i.into(), scale: 0 },
                        Scalar::U64(u) => Decimal { mantissa: u.into(), scale: 0 },
                        Scalar::F64(f) => Decimal::from_f64(f).unwrap(),
                        other => panic!("{other:?}"),
                    };
                    prop_assert_eq!(d, want);
                    prop_assert_eq!(at, general.at);
                }
                None => prop_assert_eq!(scan.at, 0),
            }
        }

        /// Short plain numbers, the common case, are all read as exact decimals.
        #[test]
        fn short_plain_numbers_are_read_as_exact_decimals(
            text in "-?(0|[1-9][0-9]{0,8})(\\.[0-9]{1,6})?",
        ) {
            let line = format!("{text},");
            let mut scan = Scan { text: &line, at: 0 };
            prop_assert!(scan.exact_decimal().is_some());
            prop_assert_eq!(scan.at, text.len());
        }
    }
}
