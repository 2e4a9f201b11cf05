//! A strict byte scanner for the bare envelope's common case: the fastest path.
//!
//! serde_json's machinery (a visitor call per token, keys and values dispatched through
//! `MapAccess`) cost much of the one-pass decoder's instructions. This scanner reads the
//! envelope directly: a string is searched 16 or 32 bytes at a time and borrowed (built
//! only when it has an escape), a number is checked against JSON's grammar and
//! converted as serde_json converts it, and the parts the decoder does not need are
//! skipped while still being checked; and an event is read against the last one's
//! shape (`shape`): a key or a passed-over value byte for byte the one at its place last
//! time is matched by one comparison. It accepts only what it is sure of: a nested
//! column value, a surrogate escape, a path deeper than `source.x`, a wrapped envelope
//! (anything else) returns `None`, and the serde one-pass decoder (then the general
//! one) decides, with its messages. So it never accepts what they would refuse; tests
//! hold it to their answers on edge cases and on randomly mutated events.

use super::super::column::Image;
use super::super::json::Scalar;
use super::super::Decoder;
use super::one_pass::{Found, Role};
use crate::row::{Key, Row, ValueRef};
pub(crate) use shape::token;
use shape::{same, Member, Passed, Shape};
use std::borrow::Cow;

mod number;
mod shape;

/// How deep a skipped value may nest before the scanner gives up.
const MAX_DEPTH: usize = 64;

/// The index of the first `"`, `\\` or control character in `b`: 32 bytes at a time
/// with AVX2 where the processor has it, else sixteen with SSE2 (every x86-64 has it),
/// then eight at a time (the bit trick finds a zero byte: the lowest flagged byte is
/// exact), then one by one. Strings are a fifth of the decoder's instructions, most of
/// them in the long text columns.
#[inline]
fn special(b: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    let i = {
        if b.len() >= 32 && std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the processor has AVX2 (checked just above).
            match unsafe { special_avx2(b) } {
                Ok(found) => return Some(found),
                Err(from) => from,
            }
        } else {
            0
        }
    };
    #[cfg(target_arch = "x86_64")]
    let i = {
        use std::arch::x86_64::*;
        let mut i = i;
        while let Some(chunk) = b.get(i..i + 16) {
            // SAFETY: SSE2 is part of x86-64; the load reads the 16 bytes of `chunk`.
            let hits = unsafe {
                let v = _mm_loadu_si128(chunk.as_ptr().cast());
                let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
                let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
                // A byte below 0x20: the unsigned minimum with 0x1F is the byte itself.
                let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1F)), v);
                _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control))
            };
            if hits != 0 {
                return Some(i + hits.trailing_zeros() as usize);
            }
            i += 16;
        }
        i
    };
    #[cfg(not(target_arch = "x86_64"))]
    let i = 0;
    special_from(b, i)
}

/// [`special`] over whole 32-byte chunks: the index found, or where the chunks ended.
///
/// # Safety
/// The processor must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn special_avx2(b: &[u8]) -> Result<usize, usize> {
    use std::arch::x86_64::*;
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 32) {
        let v = _mm256_loadu_si256(chunk.as_ptr().cast());
        let quote = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'"' as i8));
        let backslash = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'\\' as i8));
        let control = _mm256_cmpeq_epi8(_mm256_min_epu8(v, _mm256_set1_epi8(0x1F)), v);
        let hits =
            _mm256_movemask_epi8(_mm256_or_si256(_mm256_or_si256(quote, backslash), control));
        if hits != 0 {
            return Ok(i + hits.trailing_zeros() as usize);
        }
        i += 32;
    }
    Err(i)
}

/// [`special`] from `i` on, eight bytes at a time.
#[inline]
fn special_from(b: &[u8], mut i: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    while let Some(chunk) = b.get(i..i + 8) {
        let v = u64::from_le_bytes(chunk.try_into().ok()?);
        let hits = zero(v ^ (ONES * u64::from(b'"')))
            | zero(v ^ (ONES * u64::from(b'\\')))
            | (v.wrapping_sub(ONES * 0x20) & !v & HIGH);
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| i + p)
}

/// A position in a JSON text.
struct Scan<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scan<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The next byte after whitespace, not consumed.
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        // Compact JSON: the next byte is no whitespace (all of which is at most b' ').
        match self.bytes().get(self.at) {
            Some(&c) if c > b' ' => Some(c),
            _ => self.peek_past_whitespace(),
        }
    }

    fn peek_past_whitespace(&mut self) -> Option<u8> {
        let b = self.bytes();
        while let Some(&c) = b.get(self.at) {
            if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(c);
            }
            self.at += 1;
        }
        None
    }

    /// Consumes `c` (after whitespace).
    #[inline]
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.at += 1)
    }

    /// A string: borrowed when it has no escape, else unescaped into an owned one.
    #[inline]
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.string_as(true)
    }

    /// A string read (and checked) for its text (`keep`) or only to pass it: then an
    /// escaped one is not built, and the answer is an empty string.
    #[inline]
    fn string_as(&mut self, keep: bool) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.at;
        let n = special(&self.bytes()[start..])?;
        self.at = start + n + 1;
        if self.bytes()[start + n] == b'"' {
            // The common case: no escape. Both ends are ASCII quotes, so the slice is
            // on character boundaries.
            return Some(Cow::Borrowed(if keep {
                self.part(start, start + n)
            } else {
                ""
            }));
        }
        self.escaped(start, n, keep)
    }

    /// `text[from..to]`, where both ends are next to ASCII bytes.
    #[inline]
    fn part(&self, from: usize, to: usize) -> &'a str {
        debug_assert!(self.text.is_char_boundary(from) && self.text.is_char_boundary(to));
        // SAFETY: `from` and `to` are in bounds and each is at an ASCII byte (a quote,
        // a backslash, a control character) or next to one, so on character
        // boundaries of the valid UTF-8 `text`.
        unsafe { std::str::from_utf8_unchecked(self.bytes().get_unchecked(from..to)) }
    }

    /// The rest of a string whose first `n` bytes from `start` are plain and the next
    /// byte (already passed) is a `\\` or a control character.
    #[cold]
    fn escaped(&mut self, start: usize, n: usize, keep: bool) -> Option<Cow<'a, str>> {
        if !keep {
            return self.pass_escaped(start + n).map(|()| Cow::Borrowed(""));
        }
        let mut owned = String::new();
        let (mut start, mut n) = (start, n);
        loop {
            let part = self.part(start, start + n);
            match self.bytes()[start + n] {
                b'"' => {
                    owned.push_str(part);
                    return Some(Cow::Owned(owned));
                }
                b'\\' => {
                    let c = self.escape()?;
                    owned.push_str(part);
                    owned.push(c);
                }
                // A control character must be escaped.
                _ => return None,
            }
            start = self.at;
            n = special(&self.bytes()[start..])?;
            self.at = start + n + 1;
        }
    }

    /// Passes the rest of a string from `i`, its first `\\` or control character,
    /// checking each escape with [`Scan::escape`] but building nothing: byte by byte,
    /// as the strings passed with escapes are short (`source.sequence`'s
    /// `"[null,\"1081352\"]"` cost 340 instructions an event, one search per part),
    /// at a local index (kept in a register, not stored back byte by byte).
    fn pass_escaped(&mut self, i: usize) -> Option<()> {
        let b = self.bytes();
        let mut at = i;
        loop {
            match *b.get(at)? {
                b'"' => {
                    self.at = at + 1;
                    return Some(());
                }
                b'\\' => {
                    self.at = at + 1;
                    self.escape()?;
                    at = self.at;
                }
                // A control character must be escaped.
                c if c < 0x20 => return None,
                _ => at += 1,
            }
        }
    }

    /// The character an escape (after its `\\`) stands for. A surrogate is left to
    /// serde_json, which knows how to pair or refuse it.
    fn escape(&mut self) -> Option<char> {
        let c = *self.bytes().get(self.at)?;
        self.at += 1;
        Some(match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hex = self.text.get(self.at..self.at + 4)?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                self.at += 4;
                char::from_u32(u32::from_str_radix(hex, 16).ok()?)?
            }
            _ => return None,
        })
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        self.text[self.at..]
            .starts_with(word)
            .then(|| self.at += word.len())
    }

    /// A scalar value; `None` for an object or an array.
    fn scalar(&mut self) -> Option<Scalar<'a>> {
        match self.peek()? {
            b'"' => self.string().map(Scalar::Str),
            b'n' => self.literal("null").map(|()| Scalar::Null),
            b't' => self.literal("true").map(|()| Scalar::Bool(true)),
            b'f' => self.literal("false").map(|()| Scalar::Bool(false)),
            _ => self.number(),
        }
    }

    /// Skips any value, checking it; returns its text.
    fn skip(&mut self, depth: usize) -> Option<&'a str> {
        let c = self.peek()?;
        let start = self.at;
        match c {
            b'{' => {
                self.at += 1;
                self.object(depth + 1, |s, _| s.skip(depth + 1).map(drop))?;
            }
            b'[' => {
                if depth >= MAX_DEPTH {
                    return None;
                }
                self.at += 1;
                if self.eat(b']').is_none() {
                    loop {
                        self.skip(depth + 1)?;
                        match self.peek()? {
                            b',' => self.at += 1,
                            b']' => break self.at += 1,
                            _ => return None,
                        }
                    }
                }
            }
            b'"' => {
                self.string_as(false)?;
            }
            b'-' | b'0'..=b'9' => self.pass_number()?,
            _ => {
                self.scalar()?;
            }
        }
        Some(&self.text[start..self.at])
    }

    /// The members of an object whose `{` is consumed, each handed to `member` with its
    /// key (the value is `member`'s to read).
    fn object(
        &mut self,
        depth: usize,
        mut member: impl FnMut(&mut Self, &str) -> Option<()>,
    ) -> Option<()> {
        if !self.open(depth)? {
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            member(self, &key)?;
            if !self.more()? {
                break Some(());
            }
        }
    }

    /// [`Scan::object`] with the object's shape as the last event had it: a key the same
    /// as the one at its position then is read by one comparison, and `member` gets the
    /// role `role` gave it then. `member` answers whether it passed the value over as
    /// the same bytes as last time (see [`Scan::pass`]): two or more such members in a
    /// row, each followed by a comma, are learned as a run, which the next event passes
    /// by one comparison. Equal bytes at the same place are members already checked,
    /// of the same keys and roles, which their reader only passed over.
    fn object_shaped<R: Copy>(
        &mut self,
        depth: usize,
        shape: &mut Shape<R>,
        role: impl Fn(&str) -> R,
        mut member: impl FnMut(&mut Self, &mut Member<R>) -> Option<bool>,
    ) -> Option<()> {
        if !self.open(depth)? {
            return Some(());
        }
        let mut i = 0;
        // The run being read: where its first key began, and that member's position.
        let mut run: Option<(usize, usize)> = None;
        loop {
            if let Some((text, members)) = shape.run(i) {
                if self.known(text) {
                    // A member follows the run's last comma.
                    i += members;
                    continue;
                }
                shape.forget_run(i);
            }
            let key_start = self.at;
            let m = match self.member_key(shape.token(i))? {
                None => shape.at(i),
                Some(key) => shape.learn(i, &key, matches!(key, Cow::Borrowed(_)), role(&key)),
            };
            let same = member(self, m)?;
            let more = self.more()?;
            if same && more {
                run.get_or_insert((key_start, i));
            } else if let Some((start, first)) = run.take() {
                if i - first >= 2 {
                    shape.learn_run(first, i - first, &self.bytes()[start..key_start]);
                }
            }
            i += 1;
            if !more {
                break Some(());
            }
        }
    }

    /// A member's key and its colon: `None` when the text here is `token` (the key
    /// known at this place, see [`Scan::known`]), else the key as read. Always inlined:
    /// as a call it cost 5% more instructions a run.
    #[inline(always)]
    fn member_key(&mut self, token: Option<&[u8]>) -> Option<Option<Cow<'a, str>>> {
        if token.is_some_and(|t| self.known(t)) {
            return Some(None);
        }
        let key = self.string()?;
        self.eat(b':')?;
        Some(Some(key))
    }

    /// After an object's `{`: whether a member follows (else the `}` is consumed).
    #[inline]
    fn open(&mut self, depth: usize) -> Option<bool> {
        if depth > MAX_DEPTH {
            return None;
        }
        Some(self.eat(b'}').is_none())
    }

    /// After a member's value: whether another follows (its `,` consumed) or the object
    /// ended (its `}` consumed).
    #[inline]
    fn more(&mut self) -> Option<bool> {
        match self.peek()? {
            b',' => {
                self.at += 1;
                Some(true)
            }
            b'}' => {
                self.at += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// Passes a plain key's token (`"key":`, see [`shape::token`]) when the text is
    /// exactly that here.
    #[inline]
    fn known(&mut self, token: &[u8]) -> bool {
        let hit = self
            .bytes()
            .get(self.at..self.at + token.len())
            .is_some_and(|t| same(t, token));
        if hit {
            self.at += token.len();
        }
        hit
    }

    /// Passes a value (checked, as [`Scan::skip`]), by one comparison when the text
    /// here starts with `last` (the value last passed at this place); else `last`
    /// learns it, unless it changes with every event (then it is only read). `last` is
    /// a whole value, so what follows it is checked as what follows a value: were the
    /// value here longer (`12` of `123`, `null` of `nullx`), the rest is no `,` or `}`
    /// and the member's end refuses it.
    #[inline]
    fn pass(&mut self, last: &mut Passed, depth: usize) -> Option<bool> {
        if last.changed >= Passed::CHANGING {
            return self.skip(depth).map(|_| false);
        }
        let n = last.text.len();
        if let Some(t) = self.bytes().get(self.at..self.at + n) {
            if n > 0 && same(t, &last.text) {
                self.at += n;
                last.changed = 0;
                return Some(true);
            }
        }
        let v = self.skip(depth)?;
        if n > 0 {
            last.changed += 1;
        }
        last.text.clear();
        last.text.extend_from_slice(v.as_bytes());
        Some(false)
    }
}

/// Reads a bare envelope into `found`, as the serde one-pass decoder would; `None`
/// when it is not sure.
pub(super) fn envelope<'a>(d: &mut Decoder, text: &'a str, found: &mut Found<'a>) -> Option<()> {
    if d.paths.iter().any(|p| p.len() != 2) {
        return None;
    }
    let mut shapes = std::mem::take(&mut d.shapes);
    let read = envelope_shaped(d, &mut shapes, text, found);
    d.shapes = shapes;
    read
}

/// The envelope's and its `source` block's shapes in the last event.
#[derive(Default)]
pub(crate) struct Shapes {
    envelope: Shape<Role>,
    /// Roles as [`source`] gives them.
    source: Shape<u16>,
}

fn envelope_shaped<'a>(
    d: &mut Decoder,
    shapes: &mut Shapes,
    text: &'a str,
    found: &mut Found<'a>,
) -> Option<()> {
    let mut s = Scan { text, at: 0 };
    s.eat(b'{')?;
    let Shapes {
        envelope,
        source: source_shape,
    } = shapes;
    s.object_shaped(0, envelope, Role::of, |s, m| {
        if found.seen(m.role) {
            return None;
        }
        match m.role {
            Role::After => {
                let (row, key) = image(s, d)?;
                found.after = Some(row);
                found.key = key;
            }
            Role::Source => {
                found.source = true;
                source(s, d, source_shape, found)?;
            }
            Role::Op => {
                found.op = match s.peek()? {
                    b'n' => s.literal("null").map(|()| None)?,
                    _ => Some(s.string()?),
                }
            }
            Role::Before => {
                found.before = match s.peek()? {
                    b'n' => s.literal("null").map(|()| None)?,
                    _ => Some(s.skip(0)?),
                }
            }
            Role::Refused => return None,
            Role::Other => return s.pass(&mut m.last, 0),
        }
        Some(false)
    })?;
    (s.peek().is_none()).then_some(())
}

/// How many key columns the scanner copies from the image as it builds the row (a
/// longer key is read from the row).
const KEY_PARTS: usize = 4;

/// A row image (`null`: no row), every column a scalar; with its key when the scanner
/// saw all its columns.
fn image(s: &mut Scan<'_>, d: &mut Decoder) -> Option<(Option<Row>, Option<Key>)> {
    if s.peek()? == b'n' {
        s.literal("null")?;
        return Some((None, None));
    }
    s.eat(b'{')?;
    let image = Image {
        columns: &d.columns,
        schema: None,
        placeholders: d.columns.placeholders.as_ref(),
    };
    let builder = &mut d.builder;
    let cache = &mut d.resolved;
    builder.clear();
    if !s.open(1)? {
        return Some((Some(builder.finish_row()), None));
    }
    let mut key = [None; KEY_PARTS];
    // Like `Scan::object`, but a column name the same as the last image's at its
    // position is read by one comparison, and resolved as it was then.
    let mut at = 0;
    loop {
        let r = match s.member_key(cache.token(at))? {
            None => cache.at(at),
            Some(wire) => {
                let plain = matches!(wire, Cow::Borrowed(_));
                image.resolve(cache, at, (&wire, plain), &d.key_fields)
            }
        };
        at += 1;
        if r.drop {
            s.skip(1)?;
        } else {
            match s.peek()? {
                b'-' | b'0'..=b'9' if r.is_decimal() => match s.exact_decimal() {
                    Some(d) => image
                        .push_converted(builder, r, ValueRef::Decimal(d))
                        .ok()?,
                    None => image.push_resolved(builder, r, s.scalar()?).ok()?,
                },
                // The common columns, pushed without the conversion's dispatch.
                b'"' if r.is_plain() => image.push_text(builder, r, &s.string()?).ok()?,
                b'-' | b'0'..=b'9' if r.is_plain() => match s.number()? {
                    Scalar::I64(i) => image.push_converted(builder, r, ValueRef::Int(i)).ok()?,
                    other => image.push_resolved(builder, r, other).ok()?,
                },
                _ => image.push_resolved(builder, r, s.scalar()?).ok()?,
            }
            if let Some(part) = r.key.and_then(|k| key.get_mut(k)) {
                *part = builder.last_column();
            }
        }
        if !s.more()? {
            break;
        }
    }
    let row = builder.finish_row();
    // The key's columns as pushed (the last of a repeated name, as in the row).
    let key = key
        .get(..d.key_fields.len())
        .and_then(|parts| builder.key_of(parts));
    Some((Some(row), key))
}

/// The `source` block's values at the version's and the event time's paths (the first
/// of each; a value that is not an object holds none). A member's role is the set of
/// paths (bits) that end in its key.
fn source<'a>(
    s: &mut Scan<'a>,
    d: &Decoder,
    shape: &mut Shape<u16>,
    found: &mut Found<'a>,
) -> Option<()> {
    if s.peek()? != b'{' {
        return s.skip(0).map(drop);
    }
    s.at += 1;
    let paths = &d.paths;
    let positions = &mut found.positions;
    let role = |key: &str| {
        (0..paths.len())
            .filter(|&i| paths[i][1] == key)
            .fold(0u16, |bits, i| bits | 1 << i)
    };
    s.object_shaped(1, shape, role, |s, m| {
        // Most members hold neither path: nothing to look for.
        let wanted = match m.role {
            0 => 0,
            role => (0..paths.len())
                .filter(|&i| role & 1 << i != 0 && positions[i].is_none())
                .fold(0u16, |bits, i| bits | 1 << i),
        };
        if wanted == 0 {
            return s.pass(&mut m.last, 1);
        }
        let value = s.scalar()?;
        for (i, p) in positions.iter_mut().enumerate() {
            if wanted & 1 << i != 0 {
                *p = Some(value.clone());
            }
        }
        Some(false)
    })
}

#[cfg(test)]
mod tests {
    use super::super::super::{Decoded, Decoder, SideId};
    use super::super::one_pass::tests::both;
    use super::{special, special_from};
    use crate::demo::generator::{generate, GenConfig};
    use proptest::prelude::*;

    fn lines() -> Vec<String> {
        let g = generate(&GenConfig {
            events: 200,
            keys: 50,
            note_len: 40,
            wrapped: false,
            ..GenConfig::default()
        });
        g.source.into_iter().chain(g.target).collect()
    }

    fn decoder() -> Decoder {
        let spec = crate::spec::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dataflows/orders.toml"),
        )
        .unwrap();
        Decoder::new(&spec, SideId::Source)
    }

    #[test]
    fn special_finds_the_first_quote_backslash_or_control_character_at_every_offset() {
        let plain = |c: u8| c != b'"' && c != b'\\' && c >= 0x20;
        for len in 0..70 {
            for at in 0..=len {
                for c in [b'"', b'\\', 0x00, 0x1F, b' ', 0x7F, 0x80, 0xFF] {
                    let mut b: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                    if at < len {
                        b[at] = c;
                    }
                    let want = b.iter().position(|&c| !plain(c));
                    assert_eq!(special(&b), want, "len {len}, byte {c:#x} at {at}");
                    assert_eq!(special_from(&b, 0), want);
                }
            }
        }
    }

    /// One `source` member that is both the version's and the event time's path gives
    /// both, event after event, read by the scanner itself.
    #[test]
    fn one_member_can_be_the_version_and_the_event_time() {
        let side = r#"format = "debezium"
version = "source.ts_ms"
event_time = "source.ts_ms"
input = { files = ["unused"] }"#;
        let spec = crate::spec::load_str(&format!(
            "entity = \"t\"\nkey = [\"id\"]\n[source]\n{side}\n[target]\n{side}\n"
        ))
        .unwrap();
        let mut d = Decoder::new(&spec, SideId::Source);
        for ts in [1_772_323_200_004u64, 1_772_323_200_009, 1_772_323_200_013] {
            let line = format!(
                r#"{{"before":null,"after":{{"id":1}},"source":{{"lsn":7,"ts_ms":{ts}}},"op":"c"}}"#
            );
            let Decoded::Change(c) = both(&mut d, None, &line) else {
                panic!("no change from {line}");
            };
            assert_eq!(c.version, Some(crate::cdc::Version::Num(ts)));
            assert_eq!(c.time_ms, Some(ts));
            // The scanner itself read it (not the paths it leaves the event to).
            let mut found = super::super::one_pass::Found::default();
            assert!(super::envelope(&mut d, &line, &mut found).is_some());
            let want = Some(crate::cdc::json::Scalar::I64(ts as i64));
            assert_eq!(found.positions[..2], [want.clone(), want]);
        }
    }

    /// Columns are resolved by position and rechecked by name: rows whose columns come
    /// in another order, with one more or one fewer, decode as the general decoder
    /// decodes them (renamed, dropped and typed columns included).
    #[test]
    fn columns_resolved_by_position_follow_a_changing_order() {
        let spec = crate::spec::load_str(
            r#"
entity = "t"
key = ["id"]
[source]
format = "debezium"
version = "source.lsn"
event_time = "source.ts_ms"
input = { files = ["unused"] }
[target]
format = "debezium"
version = "source.lsn"
event_time = "source.ts_ms"
input = { files = ["unused"] }
[compare]
ignore = ["_synced_at"]
[fields.total]
type = "decimal"
scale = 2
target = "total_amount"
[fields.ts]
type = "timestamp"
unit = "us"
"#,
        )
        .unwrap();
        let columns = [
            r#""id":1"#,
            r#""total_amount":"AK8r""#,
            r#""ts":1772323200004653"#,
            r#""_synced_at":5"#,
            r#""note":"x""#,
        ];
        let mut d = Decoder::new(&spec, SideId::Target);
        let mut orders: Vec<Vec<usize>> = vec![
            vec![0, 1, 2, 3, 4],
            vec![0, 1, 2, 3, 4],
            vec![0, 2, 1, 3, 4],
            vec![0, 1, 2, 4],
            vec![0, 3, 1, 2, 4],
            vec![4, 3, 2, 1, 0],
            vec![0, 1, 2, 3, 4],
        ];
        orders.push(vec![0, 1, 1, 2]);
        for order in orders {
            let after: Vec<&str> = order.iter().map(|&i| columns[i]).collect();
            let line = format!(
                r#"{{"before":null,"after":{{{}}},"source":{{"lsn":7,"ts_ms":9}},"op":"c"}}"#,
                after.join(",")
            );
            let Decoded::Change(c) = both(&mut d, None, &line) else {
                panic!("no change from {line}");
            };
            let row = c.row.unwrap();
            assert!(row.get("total").is_some() && row.get("_synced_at").is_none());
        }
    }

    #[test]
    fn the_scanner_agrees_on_escapes_numbers_whitespace_and_nesting() {
        let mut d = decoder();
        let line = &lines()[0];
        assert!(line.contains(r#""status":"pending""#) && line.contains(r#""items":"#));
        let status =
            |v: &str| line.replacen(r#""status":"pending""#, &format!(r#""status":{v}"#), 1);
        let items = |v: &str| {
            let at = line.find(r#""items":"#).unwrap() + 8;
            let end = at + line[at..].find(',').unwrap();
            format!("{}{v}{}", &line[..at], &line[end..])
        };
        let mut variants: Vec<String> = [
            r#""a \"quoted\" word""#,
            r#""line\nbreak\ttab""#,
            r#""caf\u00e9""#,
            r#""\ud83d\ude00 smile""#,
            r#""lone \ud800 surrogate""#,
            r#""bad \x escape""#,
            "\"raw\ttab\"",
            r#""\/\b\f\r\\""#,
            r#""\u00""#,
            r#""""#,
            "null",
            "true",
            r#"{"a":[1,{"b":null}]}"#,
            "[]",
            r#"["pending"]"#,
        ]
        .iter()
        .map(|v| status(v))
        .collect();
        for n in [
            "-0",
            "0",
            "1e3",
            "1E+3",
            "-1.5e-3",
            "0.1",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "01",
            "1.",
            ".5",
            "-",
            "+1",
            "1e",
            "2.50",
            "1e400",
        ] {
            variants.push(items(n));
        }
        // The key column, which the scanner copies as it builds the row.
        let id = |v: &str| {
            line.replacen(
                r#""after":{"id":"#,
                &format!(r#""after":{{"id":{v},"x":"#),
                1,
            )
        };
        for v in [
            "null",
            "1.5",
            r#""a""#,
            "-7",
            r#"{"a":1}"#,
            r#"[1]"#,
            "true",
        ] {
            variants.push(id(v));
        }
        variants.extend([
            line.replacen(r#""after":{"id":"#, r#""after":{"i":"#, 1),
            line.replacen(r#""after":{"id":"#, r#""after":{"id":5,"id":"#, 1),
            line.replacen(r#""items":"#, r#""id":null,"items":"#, 1),
            line.replace(':', " : ").replace(',', " ,\n\t"),
            format!(" \r\n{line}\n "),
            line.replacen(r#""status""#, r#""st\u0061tus""#, 1),
            line.replacen(
                r#""status":"pending","#,
                r#""status":"pending","status":"x","#,
                1,
            ),
            line.replacen(r#""after":{"#, r#""after":{},"x":{"#, 1),
            line.replacen(
                r#""transaction":null"#,
                r#""transaction":{"a":[[[[{"b":[]}]]]]}"#,
                1,
            ),
            line.replacen(
                r#""transaction":null"#,
                &format!("\"transaction\":{}1{}", "[".repeat(100), "]".repeat(100)),
                1,
            ),
            line.replacen(r#""lsn":"#, r#""lsn":"1","lsn":"#, 1),
            line.replacen(r#""ts_ms":"#, r#""ts_ms" "#, 1),
            line.replacen('}', ",}", 1),
            line.replacen(r#""op":"c""#, r#""op":null"#, 1),
            line.replacen(r#""op":"c""#, r#""op":"\u0064""#, 1),
            line[..line.len() - 10].to_string(),
            line.replacen(r#""source":{"#, r#""source":null,"y":{"#, 1),
        ]);
        // A value passed over (`source.db`) with escapes, good and bad: checked as the
        // general decoder checks it, though nothing is built.
        assert!(line.contains(r#""db":"shop""#));
        for v in [
            r#""sh\"op""#,
            r#""sh\u00f6p""#,
            r#""\ud83d\ude00""#,
            r#""lone \ud800""#,
            r#""sh\xop""#,
            r#""sh\u12""#,
            r#""sh\u12g4""#,
            r#""sh\\op""#,
            r#""sh\\""#,
            "\"sh\\\top\"",
            "\"sh\\\\op\tx\"",
        ] {
            variants.push(line.replacen(r#""db":"shop""#, &format!(r#""db":{v}"#), 1));
        }
        for v in &variants {
            assert_ne!(v, line, "a variant did not apply: {v}");
            both(&mut d, None, v);
            both(&mut d, Some(br#"{"id":77}"#), v);
        }
        // A quoted word, a non-ASCII escape and a float are read by the scanner itself.
        for v in [&variants[0], &variants[2], &variants[19]] {
            let mut found = super::super::one_pass::Found::default();
            assert!(super::envelope(&mut d, v, &mut found).is_some(), "{v}");
            assert!(matches!(both(&mut d, None, v), Decoded::Change(_)));
        }
    }

    /// After a shape is learned, an event that differs from it just past a matched key
    /// or value, or in a key's escapes, decodes as a cold read does (and as the
    /// general decoder does).
    #[test]
    fn a_learned_shape_never_accepts_what_a_cold_read_refuses() {
        let line = &lines()[0];
        let edits: &[(&str, &str, &str)] = &[
            // (what the teaching event has instead, if anything; the text; the variant)
            ("", r#""xmin":null"#, r#""xmin":nullx"#),
            ("", r#""transaction":null"#, r#""transaction":null5"#),
            ("", r#""db":"shop""#, r#""db":"shop"x"#),
            ("", r#""db":"shop""#, r#""db": "shop""#),
            ("", r#""db":"shop""#, r#""db":"shop" "#),
            ("", r#""version":"2.7.0.Final""#, r#""version":{"v":2}"#),
            ("", r#""op":"#, r#""o\u0070":"#),
            ("", r#""op":"#, r#""op" :"#),
            ("", r#""after":{"id":"#, r#""after":{"i\u0064":"#),
            ("", r#""after":{"id":"#, r#""after":{"idx":"#),
            (r#""con\"nector":"#, r#""connector":"#, r#""con"nector":"#),
            (r#""i\"d":"#, r#""id":"#, r#""i"d":"#),
            (r#""tx\u0049d":"#, r#""txId":"#, r#""txId":"#),
        ];
        for &(teach, from, to) in edits {
            assert!(line.contains(from), "{from} is not in the line");
            let taught = match teach {
                "" => line.clone(),
                t => line.replacen(from, t, 1),
            };
            let variant = line.replacen(from, to, 1);
            let mut d = decoder();
            both(&mut d, None, &taught);
            both(&mut d, None, &taught);
            let warm = both(&mut d, None, &variant);
            assert_eq!(warm, both(&mut decoder(), None, &variant), "{variant}");
        }
    }

    /// A decimal column's JSON numbers (the replica's amounts) decode to the same exact
    /// decimal whichever path reads them: the scanner's exact reading of short numbers,
    /// and the float path (correctly rounded, then the float's shortest text) for the
    /// rest; then written at the column's declared scale (2), as the source's bytes
    /// write it, down to where the digits allow. `360300000000.24100` came out as
    /// `360300000000.24097` before serde_json rounded floats correctly (its faster
    /// default is off by one unit in the last place for such numbers), which the exact
    /// reading exposed.
    #[test]
    fn decimal_numbers_decode_alike_on_every_path() {
        let line = lines()
            .into_iter()
            .find(|l| l.contains(r#""_synced_at""#) && l.contains(r#""amount":"#))
            .expect("a replica event");
        let start = line.find(r#""amount":"#).unwrap() + r#""amount":"#.len();
        let end = start + line[start..].find(',').unwrap();
        let cases = [
            ("360300000000.24100", Some((360_300_000_000_241, 3))),
            ("230.50", Some((23050, 2))),
            ("-0.0", Some((0, 2))),
            ("0.000123", Some((123, 6))),
            ("7", Some((700, 2))),
            ("123456789012345678", Some((12_345_678_901_234_567_800, 2))),
            ("1.5e2", Some((15000, 2))),
            ("0.1000000000000000055511151231257827", Some((10, 2))),
            ("12345678901234567.25", None),
        ];
        let mut d = decoder();
        for (number, want) in cases {
            let text = format!("{}{number}{}", &line[..start], &line[end..]);
            let Decoded::Change(c) = both(&mut d, None, &text) else {
                panic!("{number}: not a change");
            };
            let got = c.row.unwrap().get("amount").map(|v| v.to_owned());
            if let Some((mantissa, scale)) = want {
                let decimal = crate::row::Decimal { mantissa, scale };
                assert_eq!(got, Some(crate::row::Value::Decimal(decimal)), "{number}");
            }
        }
    }

    /// Members passed over as the same bytes two events running are learned as runs,
    /// passed by one comparison; a change anywhere in a run's text (a value, a key, an
    /// escape, a repeated member, a run cut short) is read member by member, as the
    /// general decoder reads it.
    #[test]
    fn runs_of_unchanged_members_serve_until_one_changes() {
        let all = lines();
        let runs = |d: &Decoder| {
            (0..16)
                .filter(|&i| d.shapes.source.run(i).is_some())
                .count()
        };
        let edits = [
            (r#""connector":"postgresql""#, r#""connector":"mysql""#),
            // Changes that keep the run's length.
            (r#""connector":"postgresql""#, r#""connector":"postgresqx""#),
            (r#""name":"#, r#""nama":"#),
            (r#""db":"shop""#, r#""db":"shoq""#),
            (r#""table":"orders""#, r#""table":"order\""#),
            (r#""connector":"#, r#""conn\u0065ctor":"#),
            (
                r#""version":"2.7.0.Final""#,
                r#""version":"2.7.0.Fin\u0061l""#,
            ),
            (r#""db":"shop""#, r#""db":"shop","db":"shop""#),
            (r#""db":"shop""#, r#""db":"shop","lsn":5"#),
            (r#""schema":"public","#, ""),
            (r#""snapshot":"false""#, r#""snapshot":"false"  "#),
            (r#""table":"orders""#, r#""table":"orders"}"#),
        ];
        for (from, to) in edits {
            for at in 2..6 {
                let mut d = decoder();
                both(&mut d, None, &all[0]);
                assert_eq!(runs(&d), 0, "a run is learned from the event before");
                both(&mut d, None, &all[1]);
                assert!(runs(&d) >= 2, "only {} runs in {}", runs(&d), all[1]);
                let edited = all[at].replacen(from, to, 1);
                assert_ne!(edited, all[at], "{from} is not in {}", all[at]);
                both(&mut d, None, &edited);
                both(&mut d, None, &all[at]);
                both(&mut d, None, &all[at + 1]);
                assert!(runs(&d) >= 1, "no run after {to}");
            }
        }
    }

    proptest! {
        #[test]
        fn mutated_envelopes_decode_as_the_general_decoder_does(
            line in 0usize..400,
            edits in proptest::collection::vec((0usize..700, 0usize..4, proptest::sample::select(vec![
                "\"", "\\", "{", "}", "[", "]", ",", ":", " ", "-", "0", "1", "e", ".", "n", "t",
                "\\u00e9", "\\ud800", "\u{1}", "é", "null", "\"x\":1,",
            ])), 1..4),
        ) {
            let all = lines();
            let original = &all[line % all.len()];
            let mut text = original.clone();
            for (at, cut, insert) in edits {
                let mut at = at.min(text.len());
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                let mut end = (at + cut).min(text.len());
                while !text.is_char_boundary(end) {
                    end += 1;
                }
                text.replace_range(at..end, insert);
            }
            let mut d = decoder();
            // Others and the original first, so the mutated event is read against the
            // shape they left (keys and passed-over values matched by comparison, the
            // values that changed from one to the next only read), then cold.
            for other in all.iter().cycle().skip(line % all.len() + 1).take(3) {
                both(&mut d, None, other);
            }
            both(&mut d, None, original);
            both(&mut d, None, &text);
            both(&mut decoder(), None, &text);
        }
    }
}
