//! Instants and dates: RFC 3339 parsing and printing without allocation on the parse path.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn digits(b: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// Parses `YYYY-MM-DD` into days since the epoch.
pub fn parse_date(text: &str) -> Option<i32> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    i32::try_from(days_from_civil(i64::from(y), m, d)).ok()
}

/// Parses an RFC 3339 / ISO 8601 instant (`2026-03-01T12:00:00.5+02:00`, `…Z`, a space
/// instead of `T`, or no offset meaning UTC) into nanoseconds since the epoch.
///
/// The form a replica's connector writes (`2026-03-01T12:00:00.000195Z`: UTC, up to
/// nine fraction digits) is read by [`parse_utc`]: 294 instructions a call where the
/// general parser spent 352 (1.7% of a file-mode run's instructions, BENCHMARKS.md
/// issue 14). Anything else, or anything it doubts, is the general parser's.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    parse_utc(text.as_bytes()).or_else(|| parse_timestamp_general(text))
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` with a fraction of one to nine digits, read as
/// [`parse_timestamp_general`] reads it; `None` for anything else (which the general
/// parser then decides), so it never answers differently.
#[inline]
fn parse_utc(b: &[u8]) -> Option<i64> {
    let n = b.len();
    if !(20..=30).contains(&n)
        || b[n - 1] != b'Z'
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let head: &[u8; 19] = b[..19].try_into().ok()?;
    let word = |at: usize| u64::from_le_bytes(*head[at..].first_chunk::<8>().unwrap_or(&[0; 8]));
    // The 14 digits' places checked eight at a time: a byte XOR 0x30 is a digit's value
    // when neither it nor it plus 6 reaches 0x10 (a carry out of a byte only comes from
    // a non-digit, itself refused, and at worst refuses a digit: the general parser
    // then reads it).
    let not_digits = |w: u64, places: u64| {
        let y = w ^ 0x3030_3030_3030_3030;
        (y | y.wrapping_add(0x0606_0606_0606_0606)) & 0xF0F0_F0F0_F0F0_F0F0 & places != 0
    };
    if not_digits(word(0), 0x00FF_FF00_FFFF_FFFF)
        | not_digits(word(8), 0xFFFF_00FF_FF00_FFFF)
        | not_digits(word(11), 0xFFFF_0000_0000_0000)
    {
        return None;
    }
    let d = |i: usize| u32::from(head[i].wrapping_sub(b'0'));
    let two = |i: usize| d(i) * 10 + d(i + 1);
    let (y, m, day) = (two(0) * 100 + two(2), two(5), two(8));
    let (h, mi, s) = (two(11), two(14), two(17));
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut nanos: i64 = 0;
    if n > 20 {
        // A dot, then 1 to 9 digits before the `Z` (under 10^9: a `u32`).
        let fraction = &b[20..n - 1];
        if b[19] != b'.' || fraction.is_empty() {
            return None;
        }
        nanos = i64::from(digits(fraction)?) * 10i64.pow(9 - fraction.len() as u32);
    }
    let days = days_from_civil(i64::from(y), m, day);
    let secs = days * 86_400 + i64::from(h * 3600 + mi * 60 + s);
    // Beyond 292 years of 1970 the nanoseconds overflow: refused, as the general parser does.
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// [`parse_timestamp`] for every form it takes.
fn parse_timestamp_general(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 19
        || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let days = i64::from(parse_date(&text[..10])?);
    let (h, mi, s) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n.min(9)..9 {
            nanos *= 10;
        }
    }
    let offset_secs: i64 = match &b[i..] {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (oh, om) = match rest {
                [a, b2, b':', c, d] => (digits(&[*a, *b2])?, digits(&[*c, *d])?),
                [a, b2, c, d] => (digits(&[*a, *b2])?, digits(&[*c, *d])?),
                [a, b2] => (digits(&[*a, *b2])?, 0),
                _ => return None,
            };
            let o = i64::from(oh * 3600 + om * 60);
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    let secs = days * 86_400 + i64::from(h * 3600 + mi * 60 + s) - offset_secs;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Prints nanoseconds since the epoch as RFC 3339 UTC with as few fraction digits as exact.
///
/// Digits are written into a buffer: `format!` spent about 3,400 instructions a
/// timestamp (two formatted strings), about a quarter of the sink's rendering on its
/// worker (BENCHMARKS.md, issue 14). Years outside 0–9999, which `format!`
/// pads and signs its own way, take [`format_timestamp_slow`].
pub fn format_timestamp(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000) as u32;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    if !(0..=9999).contains(&y) {
        return format_timestamp_slow(nanos);
    }
    let sod = secs.rem_euclid(86_400) as u32;
    let mut out = [0u8; 30];
    let mut put = |at: usize, value: u32, width: usize| {
        let mut v = value;
        for i in (at..at + width).rev() {
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, y as u32, 4);
    put(5, m, 2);
    put(8, d, 2);
    put(11, sod / 3600, 2);
    put(14, sod % 3600 / 60, 2);
    put(17, sod % 60, 2);
    let mut len = 19;
    if frac != 0 {
        put(20, frac, 9);
        len = 29;
        while out[len - 1] == b'0' {
            len -= 1;
        }
        out[19] = b'.';
    }
    for (at, sep) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
        out[at] = sep;
    }
    out[len] = b'Z';
    // Every byte written is an ASCII digit or separator.
    String::from_utf8_lossy(&out[..=len]).into_owned()
}

/// [`format_timestamp`] by `format!`, for every year.
fn format_timestamp_slow(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    );
    if frac != 0 {
        let f = format!("{frac:09}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Nanoseconds in a day.
const DAY_NS: i64 = 86_400_000_000_000;

/// Parses a time of day (`HH:MM:SS[.fraction][Z|±HH:MM]`, as Debezium's `ZonedTime` and
/// ISO strings spell it) into nanoseconds since midnight, in UTC when it has an offset.
pub fn parse_time(text: &str) -> Option<i64> {
    if text.len() < 8 || text.len() > 40 {
        return None;
    }
    parse_timestamp(&format!("1970-01-01T{text}")).map(|ns| ns.rem_euclid(DAY_NS))
}

/// Prints nanoseconds since midnight as `HH:MM:SS` with as few fraction digits as exact.
pub fn format_time(nanos: i64) -> String {
    let text = format_timestamp(nanos.rem_euclid(DAY_NS));
    text[11..text.len() - 1].to_string()
}

/// Prints days since the epoch as `YYYY-MM-DD`.
pub fn format_date(days: i32) -> String {
    let (y, m, d) = civil_from_days(i64::from(days));
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The buffer-writing path prints what `format!` prints, at every instant
        /// (years before 0 and after 9999 included, which it leaves to `format!`).
        #[test]
        fn timestamps_print_as_format_prints_them(nanos in any::<i64>(), secs in -1i64 << 36..1 << 36, frac in 0i64..1_000_000_000, tens in 0u32..9) {
            prop_assert_eq!(format_timestamp(nanos), format_timestamp_slow(nanos));
            // Instants near today, and fractions with trailing zeros.
            let frac = frac - frac % 10i64.pow(tens);
            let n = secs.saturating_mul(1_000_000_000).saturating_add(frac);
            prop_assert_eq!(format_timestamp(n), format_timestamp_slow(n));
        }
    }

    proptest! {
        // Cheap cases, and a mutation must land on each of some 30 places.
        #![proptest_config(ProptestConfig::with_cases(4096))]
        /// The fixed-form path answers as the general parser does: on instants it
        /// writes, with any fraction, and on their mutations (a byte changed, cut, or
        /// added), which it must refuse or read alike.
        #[test]
        fn the_utc_form_parses_as_the_general_parser_parses_it(
            secs in -9_223_372_036i64..9_223_372_036,
            frac in 0u32..1_000_000_000,
            digits in 0usize..12,
            at in 0usize..32,
            byte in any::<u8>(),
            how in 0u8..4,
        ) {
            let mut text = format_timestamp(secs * 1_000_000_000)
                .trim_end_matches('Z')
                .to_string();
            if digits > 0 {
                let f = format!("{frac:09}000");
                text.push('.');
                text.push_str(&f[..digits]);
            }
            text.push('Z');
            let (fast, general) = (parse_utc(text.as_bytes()), parse_timestamp_general(&text));
            // Ten digits or more are the general parser's.
            prop_assert!(general.is_some(), "{}", text);
            prop_assert_eq!(fast, if digits <= 9 { general } else { None }, "{}", text);
            let mut b = text.into_bytes();
            let at = at.min(b.len() - 1);
            match how {
                0 => b[at] = byte,
                1 => b.truncate(at),
                2 => b.insert(at, byte),
                _ => b[at] = b"0123456789:-.TZ tz"[usize::from(byte) % 18],
            }
            if let Ok(t) = std::str::from_utf8(&b) {
                let fast = parse_utc(t.as_bytes());
                prop_assert!(fast.is_none() || fast == parse_timestamp_general(t), "{}", t);
            }
        }
    }

    #[test]
    fn instants_compare_whatever_the_spelling() {
        let a = parse_timestamp("2026-03-01T12:00:00Z").unwrap();
        assert_eq!(parse_timestamp("2026-03-01T14:00:00+02:00"), Some(a));
        assert_eq!(parse_timestamp("2026-03-01 12:00:00"), Some(a));
        assert_eq!(parse_timestamp("2026-03-01T12:00:00.000000Z"), Some(a));
        assert_eq!(parse_timestamp("2026-03-01T07:00:00-0500"), Some(a));
        assert_eq!(a, 1_772_366_400 * 1_000_000_000);
        assert_eq!(format_timestamp(a + 500_000_000), "2026-03-01T12:00:00.5Z");
        assert_eq!(
            parse_timestamp("2026-03-01T12:00:00.123456789Z").unwrap() - a,
            123_456_789
        );
        for bad in [
            "2026-03-01",
            "2026-13-01T00:00:00Z",
            "2026-03-01T12:00:00+2",
            "yesterday",
            "2026-03-01T12:00:00.Z",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
        // Edges of the fixed form, read as the general parser reads them.
        for text in [
            "2026-03-01T23:59:60Z",
            "2026-02-31T00:00:00Z",
            "2026-03-01T12:00:00.123456789Z",
            "2262-04-11T23:47:16.854775807Z",
            "2262-04-11T23:47:16.854775808Z",
            "9999-12-31T23:59:59Z",
            "0000-01-01T00:00:00.5Z",
        ] {
            assert_eq!(
                parse_utc(text.as_bytes()),
                parse_timestamp_general(text),
                "{text}"
            );
        }
        assert_eq!(parse_date("1970-01-02"), Some(1));
        assert_eq!(format_date(20_000), "2024-10-04");
        assert_eq!(format_timestamp(-1_000_000_000), "1969-12-31T23:59:59Z");
        let t = parse_time("12:30:00.25").unwrap();
        assert_eq!(t, (12 * 3600 + 30 * 60) * 1_000_000_000 + 250_000_000);
        assert_eq!(parse_time("14:30:00.25+02:00"), Some(t));
        assert_eq!(parse_time("12:30:00.250000Z"), Some(t));
        assert_eq!(format_time(t), "12:30:00.25");
        assert_eq!(parse_time("01:00:00+02:00"), parse_time("23:00:00"));
        assert_eq!(parse_time("25:00:00"), None);
    }
}
