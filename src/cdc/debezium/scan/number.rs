//! JSON numbers, their digits read eight at a time.
//!
//! An event carries a dozen numbers, most of them long (event times in ms or µs, log
//! positions, transaction ids): a byte-by-byte loop spent about eight instructions a
//! digit. Up to eight ASCII digits are found and converted as one `u64` (the method
//! of simdjson's `parse_eight_digits_unrolled`); the last seven bytes of a text byte
//! by byte.

use super::super::super::json::Scalar;
use super::Scan;

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
    let chunk: [u8; 8] = b.get(at..at.checked_add(8)?)?.try_into().ok()?;
    let x = u64::from_le_bytes(chunk);
    // A digit's high nibble is 3, and stays 3 when 6 is added (0x3A..0x3F become 4):
    // a byte of `not` is zero exactly when its byte is a digit. Adding 6 carries out
    // of a byte only from 0xFA up, into the bytes after it: the first non-digit and
    // those before it are read right.
    let high = 0xF0F0_F0F0_F0F0_F0F0;
    let threes = 0x3030_3030_3030_3030;
    let not = ((x & high) ^ threes) | ((x.wrapping_add(0x0606_0606_0606_0606) & high) ^ threes);
    let n = (not.trailing_zeros() / 8) as usize;
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

impl<'a> Scan<'a> {
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
}

#[cfg(test)]
mod tests {
    use super::super::Scan;
    use super::leading_digits;
    use crate::cdc::json::Scalar;
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
}
