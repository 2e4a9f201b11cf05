//! The byte encoding of rows and keys: `[name_len][name][tag][payload]…`, names sorted;
//! a row's bytes open with a flags byte.

use super::{Decimal, ValueRef};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smallvec::SmallVec;
use triomphe::ThinArc;

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
/// An integer, zigzag varint: ids and counts take one to four bytes, not eight.
const INT: u8 = 3;
const FLOAT: u8 = 4;
/// A decimal whose mantissa fits 64 bits: the mantissa zigzag varint, then the scale
/// byte (an amount takes four bytes, not seventeen).
const DECIMAL: u8 = 5;
const STR: u8 = 6;
/// Nanoseconds, fixed eight bytes (as a varint, an instant of this century takes nine).
const TIMESTAMP: u8 = 7;
/// Days since the epoch, zigzag varint.
const DATE: u8 = 8;
const JSON: u8 = 9;
const TIME: u8 = 10;
const BYTES: u8 = 11;
/// An unknown value (no payload).
const UNKNOWN: u8 = 12;
/// A decimal whose mantissa does not fit 64 bits: sixteen bytes, then the scale byte.
/// Each value has one encoding (equal values, equal bytes), which comparisons rely on.
const WIDE_DECIMAL: u8 = 13;

/// A row's first byte: it holds an unknown value. Every applied change asks, and the
/// flag answers without a search of the bytes (that search was 3% of a run).
const HAS_UNKNOWN: u8 = 1;
/// A row's first byte: it holds no float, so each of its columns is the same as
/// itself under every rule (a float's NaN is not), and a row byte for byte identical
/// to it is equal to it under every rule: one comparison instead of a walk per column
/// (comparing rows was 13% of a run's instructions). Always the columns' own answer:
/// [`Row::from_encoded`] works it out again for bytes from elsewhere.
const NO_FLOAT: u8 = 2;

/// A row: its columns sorted by name. Cloning shares the bytes; a thin pointer (the
/// length lives with the bytes), so a key's state holds its two rows in 16 bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Row(ThinArc<(), u8>);

/// An entity key: the key columns in the spec's order. Up to 16 bytes (an id and
/// its name, or two) are held inline: no allocation per event, and a key compared in
/// a hash table's look-up is in its bucket, not behind a pointer (a cache miss).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(SmallVec<[u8; 16]>);

/// Debezium's placeholder for a column it did not read (a TOASTed value left unchanged
/// by an update, under REPLICA IDENTITY DEFAULT): the column did not change.
pub const UNAVAILABLE: &str = "__debezium_unavailable_value";

/// `row` with every unknown column ([`ValueRef::Unavailable`]: a placeholder the
/// decoder recognised) given its value in `previous` (the side's row before this
/// change); `None` when `row` holds no unknown column. Where `previous` has no value, the
/// column stays unknown.
pub fn fill_unavailable(row: &Row, previous: Option<&Row>) -> Option<Row> {
    // Every applied change passes here: a byte search rules nearly all rows out before
    // any column is decoded.
    if !row.has_unavailable() {
        return None;
    }
    let mut b = RowBuilder::default();
    for (name, value) in row.fields() {
        let value = match (value, previous.and_then(|p| p.get(name))) {
            (ValueRef::Unavailable, Some(old)) => old,
            _ => value,
        };
        b.push(name, value).ok()?;
    }
    Some(b.finish_row())
}

impl Row {
    /// Whether a column holds an unknown value ([`ValueRef::Unavailable`]).
    pub fn has_unavailable(&self) -> bool {
        // The flag, then the columns: bytes from elsewhere (a checkpoint) may lie.
        self.0.slice.first().is_some_and(|f| f & HAS_UNKNOWN != 0)
            && self.fields().any(|(_, v)| v == ValueRef::Unavailable)
    }
    /// Whether every column is the same as itself under every rule (no float): then
    /// a row with the same bytes is equal to this one.
    pub(crate) fn reflexive(&self) -> bool {
        self.0.slice.first().is_some_and(|f| f & NO_FLOAT != 0)
    }
    /// The columns, in name order.
    pub fn fields(&self) -> Fields<'_> {
        Fields {
            bytes: self.0.slice.get(1..).unwrap_or_default(),
        }
    }
    /// Asks for the row's first 320 bytes (a typical row's whole) to be fetched into the
    /// cache, without reading them (its length is in its first line, itself not yet in
    /// the cache). Three lines left the bench's rows (about 280 bytes with the header)
    /// to be finished by the compare's `memcmp`, 4.4% of a `-w 1` run (BENCHMARKS.md,
    /// issue 14).
    pub(crate) fn prefetch(&self) {
        let p = self.0.ptr().cast::<u8>();
        for line in 0..5 {
            prefetch(p.wrapping_add(64 * line));
        }
    }

    /// The value of column `name`, if present.
    pub fn get(&self, name: &str) -> Option<ValueRef<'_>> {
        // Names are sorted: the search decodes only the value it finds, and stops at
        // the first name past `name` (a key is read from every row this way).
        let mut fields = self.fields();
        while let Some((n, raw)) = fields.next_raw() {
            match n.cmp(name) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return raw_value(raw),
                std::cmp::Ordering::Greater => return None,
            }
        }
        None
    }
    /// The key of columns `names`, in that order, copied as the row encodes them (a
    /// key's encoding is its columns'): no value decoded and encoded again. `None`
    /// when a column is missing or holds what cannot be a key (null, a float, JSON),
    /// for the caller's message.
    pub fn key_of(&self, names: &[String]) -> Option<Key> {
        let all = self.fields().bytes;
        let mut key = SmallVec::new();
        for name in names {
            let mut fields = self.fields();
            loop {
                let from = all.len() - fields.bytes.len();
                let (n, raw) = fields.next_encoded()?;
                if n == name.as_bytes() {
                    if !keyable(*raw.first()?) {
                        return None;
                    }
                    key.extend_from_slice(&all[from..all.len() - fields.bytes.len()]);
                    break;
                }
            }
        }
        Some(Key(key))
    }

    /// Size of the encoding in bytes.
    pub fn encoded_len(&self) -> usize {
        self.0.slice.len()
    }
}

impl Row {
    /// A row from its encoded bytes (as [`Row::as_bytes`] gave them, e.g. from a
    /// checkpoint). Malformed bytes read as fewer columns, never as a panic.
    pub fn from_encoded(bytes: &[u8]) -> Row {
        let Some((&flags, columns)) = bytes.split_first() else {
            return Row(ThinArc::from_header_and_slice((), bytes));
        };
        let mut fields = Fields { bytes: columns };
        let reflexive =
            std::iter::from_fn(|| fields.next_encoded()).all(|(_, raw)| raw_reflexive(raw));
        let right = if reflexive {
            flags | NO_FLOAT
        } else {
            flags & !NO_FLOAT
        };
        if right == flags {
            return Row(ThinArc::from_header_and_slice((), bytes));
        }
        let mut all = Vec::with_capacity(bytes.len());
        all.push(right);
        all.extend_from_slice(columns);
        Row(ThinArc::from_header_and_slice((), &all))
    }
    /// A row from the bytes of a row made in this process ([`Row::as_bytes`]), whose
    /// flags are right: no column is read.
    pub(crate) fn from_own(bytes: &[u8]) -> Row {
        Row(ThinArc::from_header_and_slice((), bytes))
    }
    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0.slice
    }
}

impl Key {
    /// A key from its encoded bytes (as [`Key::as_bytes`] gave them).
    pub fn from_encoded(bytes: &[u8]) -> Key {
        Key(SmallVec::from_slice(bytes))
    }

    /// The key columns, in the spec's order.
    pub fn fields(&self) -> Fields<'_> {
        Fields { bytes: &self.0 }
    }
    /// The encoded bytes (stable across processes: used for hashing and ordering).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.fields()).finish()
    }
}
impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.fields()).finish()
    }
}

impl Serialize for Row {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.as_bytes())
    }
}
impl<'de> Deserialize<'de> for Row {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        Ok(Row::from_encoded(&bytes))
    }
}

impl Serialize for Key {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.as_bytes())
    }
}
impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        Ok(Key::from_encoded(&bytes))
    }
}

/// Iterator over encoded columns. Stops (rather than panics) at malformed bytes.
#[derive(Clone)]
pub struct Fields<'a> {
    bytes: &'a [u8],
}

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            self.bytes = &[];
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }
    fn fixed<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|b| b.try_into().ok())
    }
    fn varint(&mut self) -> Option<usize> {
        usize::try_from(self.varint64(5)?).ok()
    }
    /// A varint of at most `max` (≤ 10) bytes.
    #[inline]
    fn varint64(&mut self, max: usize) -> Option<u64> {
        let (&first, rest) = self.bytes.split_first()?;
        if first < 0x80 {
            self.bytes = rest;
            return Some(u64::from(first));
        }
        let mut v = 0u64;
        for (i, &b) in self.bytes.iter().take(max).enumerate() {
            v |= u64::from(b & 0x7f).checked_shl(7 * i as u32).unwrap_or(0);
            if b & 0x80 == 0 {
                self.bytes = &self.bytes[i + 1..];
                return Some(v);
            }
        }
        self.bytes = &[];
        None
    }
    /// Skips a varint of at most `max` bytes; its length.
    #[inline]
    fn skip_varint(&mut self, max: usize) -> Option<usize> {
        let Some(n) = self.bytes.iter().take(max).position(|&b| b < 0x80) else {
            self.bytes = &[];
            return None;
        };
        self.take(n + 1)?;
        Some(n + 1)
    }
    fn int(&mut self) -> Option<i64> {
        let v = self.varint64(10)?;
        Some((v >> 1) as i64 ^ -((v & 1) as i64))
    }
    /// The next column's name.
    #[inline]
    fn name(&mut self) -> Option<&'a str> {
        text_of(self.name_bytes()?)
    }
    /// The next column's name, as bytes (unchecked).
    #[inline]
    fn name_bytes(&mut self) -> Option<&'a [u8]> {
        if self.bytes.is_empty() {
            return None;
        }
        let n = usize::from(self.take(1)?[0]);
        self.take(n)
    }
    /// The next column's name and its tag and payload, undecoded: the extent
    /// [`Fields::value`] reads, found without decoding (no integer is rebuilt, no text
    /// checked; reading the extent by decoding cost 1.3% more instructions a run). The
    /// property test `rows_read_back_as_pushed` holds the two to the same extents.
    #[inline]
    pub(crate) fn next_raw(&mut self) -> Option<(&'a str, &'a [u8])> {
        let (name, raw) = self.next_encoded()?;
        Some((text_of(name)?, raw))
    }
    /// [`Fields::next_raw`] with the name's bytes unchecked.
    #[inline]
    fn next_encoded(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        let name = self.name_bytes()?;
        let start = self.bytes;
        let len = {
            let tag = self.take(1)?[0];
            match tag {
                NULL | FALSE | TRUE | UNKNOWN => 0,
                // A varint ends at its first byte below 0x80.
                INT | DATE => self.skip_varint(10)?,
                DECIMAL => {
                    let n = self.skip_varint(10)?;
                    self.take(1)?;
                    n + 1
                }
                WIDE_DECIMAL => {
                    self.take(17)?;
                    17
                }
                FLOAT | TIMESTAMP | TIME => {
                    self.take(8)?;
                    8
                }
                STR | JSON | BYTES => {
                    let rest = self.bytes.len();
                    let n = self.varint()?;
                    self.take(n)?;
                    rest - self.bytes.len()
                }
                _ => {
                    self.bytes = &[];
                    return None;
                }
            }
        };
        Some((name, &start[..1 + len]))
    }
    fn text(&mut self) -> Option<&'a str> {
        let n = self.varint()?;
        text_of(self.take(n)?)
    }
}

/// Encoded text read back: ASCII (names, most values) without the full UTF-8 check,
/// which cost 4% of a run in comparisons that read rows field by field.
#[inline]
fn text_of(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).ok()
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = (&'a str, ValueRef<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        let name = self.name()?;
        Some((name, self.value()?))
    }
}

impl<'a> Fields<'a> {
    /// A value's tag and payload, decoded.
    fn value(&mut self) -> Option<ValueRef<'a>> {
        let value = match self.take(1)?[0] {
            NULL => ValueRef::Null,
            FALSE => ValueRef::Bool(false),
            TRUE => ValueRef::Bool(true),
            INT => ValueRef::Int(self.int()?),
            FLOAT => ValueRef::Float(f64::from_le_bytes(self.fixed()?)),
            tag @ (DECIMAL | WIDE_DECIMAL) => {
                let mantissa = match tag {
                    DECIMAL => i128::from(self.int()?),
                    _ => i128::from_le_bytes(self.fixed()?),
                };
                ValueRef::Decimal(Decimal {
                    mantissa,
                    scale: self.take(1)?[0],
                })
            }
            STR => ValueRef::Str(self.text()?),
            TIMESTAMP => ValueRef::Timestamp(i64::from_le_bytes(self.fixed()?)),
            DATE => ValueRef::Date(i32::try_from(self.int()?).ok()?),
            JSON => ValueRef::Json(self.text()?),
            TIME => ValueRef::Time(i64::from_le_bytes(self.fixed()?)),
            BYTES => {
                let n = self.varint()?;
                ValueRef::Bytes(self.take(n)?)
            }
            UNKNOWN => ValueRef::Unavailable,
            _ => {
                self.bytes = &[];
                return None;
            }
        };
        Some(value)
    }
}

/// A value from the tag and payload [`Fields::next_raw`] gave.
pub(crate) fn raw_value(raw: &[u8]) -> Option<ValueRef<'_>> {
    Fields { bytes: raw }.value()
}

/// Whether a value of this tag can be a key column's: not null, a float or JSON (as
/// `cdc::key` refuses them by value, with its messages).
fn keyable(tag: u8) -> bool {
    !matches!(tag, NULL | FLOAT | JSON)
}

/// Asks the processor to fetch the cache line holding `p` (a hint: nothing is read,
/// and no address faults); nothing on other processors.
#[inline]
pub(crate) fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing and cannot fault, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Whether a raw value (as [`Fields::next_raw`] gave it) is identical to another by
/// its bytes alone: every value but a float, whose NaN is not equal to itself.
pub(crate) fn raw_identical(a: &[u8], b: &[u8]) -> bool {
    a == b && raw_reflexive(a)
}

/// Whether a raw value is the same as itself under every rule: all but a float.
fn raw_reflexive(raw: &[u8]) -> bool {
    raw.first() != Some(&FLOAT)
}

/// A column name made ready for [`RowBuilder::push_named`]: its encoded head (length
/// and bytes) and its prefix, made once where a column is resolved for many rows
/// instead of for each value (a tenth of a pushed column's instructions).
#[derive(Debug, Clone)]
pub(crate) struct ColumnName {
    head: Box<[u8]>,
    prefix: u64,
}

impl ColumnName {
    /// The name made ready; `None` when it is over 255 bytes (which
    /// [`RowBuilder::push`] refuses with its message).
    pub(crate) fn new(name: &str) -> Option<ColumnName> {
        let len = u8::try_from(name.len()).ok()?;
        Some(ColumnName {
            head: [&[len], name.as_bytes()].concat().into(),
            prefix: name_prefix(name.as_bytes()),
        })
    }

    /// The name.
    pub(crate) fn as_str(&self) -> &str {
        // SAFETY: the bytes after the length are those of the `&str` it was made of.
        unsafe { std::str::from_utf8_unchecked(&self.head[1..]) }
    }
}

/// Builds rows and keys without allocating per column; reuse one per thread.
#[derive(Default)]
pub struct RowBuilder {
    scratch: Vec<u8>,
    index: Vec<(u32, u32, u32)>,
    /// Each column's name's first 8 bytes, big-endian, zeros after a shorter name: two
    /// names whose prefixes differ order as those do, so most comparisons of names
    /// take one instruction instead of a `memcmp`.
    prefixes: Vec<u64>,
    out: Vec<u8>,
    /// The last row's columns in name order (positions in `index`): a table's changes
    /// bring their columns in one order, so checking that it still sorts the names
    /// replaces a sort per row.
    order: Vec<u32>,
    /// Whether an unknown value was pushed since the last clear.
    unknown: bool,
    /// Whether a float was pushed since the last clear.
    float: bool,
}

impl RowBuilder {
    /// Starts a new row or key.
    pub fn clear(&mut self) {
        self.scratch.clear();
        self.index.clear();
        self.prefixes.clear();
        self.unknown = false;
        self.float = false;
    }

    /// Number of columns pushed so far.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no column was pushed.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Appends a column. Names longer than 255 bytes are refused.
    pub fn push(&mut self, name: &str, value: ValueRef<'_>) -> Result<(), String> {
        let len = u8::try_from(name.len())
            .map_err(|_| format!("column name of {} bytes is over 255", name.len()))?;
        let start = self.scratch.len() as u32;
        self.scratch.push(len);
        self.scratch.extend_from_slice(name.as_bytes());
        self.push_value(start, len, name_prefix(name.as_bytes()), value);
        Ok(())
    }

    /// [`RowBuilder::push`] under a name made ready once for many rows.
    pub(crate) fn push_named(&mut self, name: &ColumnName, value: ValueRef<'_>) {
        let start = self.scratch.len() as u32;
        self.scratch.extend_from_slice(&name.head);
        self.push_value(start, name.head[0], name.prefix, value);
    }

    /// The value of the column whose name's `len` bytes were pushed from `start`.
    fn push_value(&mut self, start: u32, len: u8, prefix: u64, value: ValueRef<'_>) {
        let b = &mut self.scratch;
        match value {
            ValueRef::Null => b.push(NULL),
            ValueRef::Bool(v) => b.push(if v { TRUE } else { FALSE }),
            ValueRef::Int(v) => {
                b.push(INT);
                push_varint(b, zigzag(v));
            }
            ValueRef::Float(v) => {
                self.float = true;
                b.push(FLOAT);
                b.extend_from_slice(&v.to_le_bytes());
            }
            ValueRef::Decimal(d) => {
                match i64::try_from(d.mantissa) {
                    Ok(m) => {
                        b.push(DECIMAL);
                        push_varint(b, zigzag(m));
                    }
                    Err(_) => {
                        b.push(WIDE_DECIMAL);
                        b.extend_from_slice(&d.mantissa.to_le_bytes());
                    }
                }
                b.push(d.scale);
            }
            ValueRef::Str(s) => push_text(b, STR, s),
            ValueRef::Timestamp(v) => {
                b.push(TIMESTAMP);
                b.extend_from_slice(&v.to_le_bytes());
            }
            ValueRef::Date(v) => {
                b.push(DATE);
                push_varint(b, zigzag(i64::from(v)));
            }
            ValueRef::Json(s) => push_text(b, JSON, s),
            ValueRef::Time(v) => {
                b.push(TIME);
                b.extend_from_slice(&v.to_le_bytes());
            }
            ValueRef::Bytes(v) => push_bytes(b, BYTES, v),
            ValueRef::Unavailable => {
                b.push(UNKNOWN);
                self.unknown = true;
            }
        }
        self.index
            .push((start, u32::from(len), self.scratch.len() as u32));
        self.prefixes.push(prefix);
    }

    /// The value of a pushed column (the last one pushed under that name).
    pub fn get(&self, name: &str) -> Option<ValueRef<'_>> {
        self.index
            .iter()
            .rev()
            .find(|entry| column_name(&self.scratch, entry) == name.as_bytes())
            .and_then(|&(s, _, e)| {
                Fields {
                    bytes: &self.scratch[s as usize..e as usize],
                }
                .next()
                .map(|(_, v)| v)
            })
    }

    /// Finishes a row: columns sorted by name; of repeated names the last one wins.
    pub fn finish_row(&mut self) -> Row {
        let RowBuilder {
            scratch,
            index,
            prefixes,
            out,
            order,
            unknown,
            float,
        } = self;
        let name = |i: u32| column_name(scratch, &index[i as usize]);
        let cmp = |a: u32, b: u32| {
            prefixes[a as usize]
                .cmp(&prefixes[b as usize])
                .then_with(|| name(a).cmp(name(b)))
        };
        // The last order still serves when it puts these names in strictly increasing
        // order (then it is the only one that does, and no name repeats). The prefixes
        // decide but where they tie, compared inline: as calls to `cmp`, the check
        // cost about 80 instructions a row more (BENCHMARKS.md, issue 14).
        let sorted = order.len() == index.len()
            && order.windows(2).all(|w| {
                let (a, b) = (prefixes[w[0] as usize], prefixes[w[1] as usize]);
                a < b || (a == b && name(w[0]) < name(w[1]))
            });
        if !sorted {
            order.clear();
            order.extend(0..index.len() as u32);
            // Stable: of repeated names, the last pushed stays last.
            order.sort_by(|&a, &b| cmp(a, b));
        }
        out.clear();
        let mut flags = 0;
        if *unknown {
            flags |= HAS_UNKNOWN;
        }
        if !*float {
            flags |= NO_FLOAT;
        }
        out.push(flags);
        for (i, &at) in order.iter().enumerate() {
            // Strictly increasing names (the last order still serving) repeat none.
            if !sorted && order.get(i + 1).is_some_and(|&next| name(next) == name(at)) {
                continue;
            }
            let (start, _, end) = index[at as usize];
            out.extend_from_slice(&scratch[start as usize..end as usize]);
        }
        Row(ThinArc::from_header_and_slice((), out))
    }

    /// Where the last column pushed lies, for [`RowBuilder::key_of`].
    pub(crate) fn last_column(&self) -> Option<(u32, u32)> {
        self.index.last().map(|&(s, _, e)| (s, e))
    }

    /// The key of the columns at `parts` (as [`RowBuilder::last_column`] gave them since
    /// the last clear), copied as encoded (a key's encoding is its columns'). `None`
    /// when one is absent or holds what cannot be a key (null, a float, JSON).
    pub(crate) fn key_of(&self, parts: &[Option<(u32, u32)>]) -> Option<Key> {
        let mut key = SmallVec::new();
        for part in parts {
            let (s, e) = (*part)?;
            let column = self.scratch.get(s as usize..e as usize)?;
            let tag = column.get(1 + usize::from(*column.first()?))?;
            if !keyable(*tag) {
                return None;
            }
            if parts.len() == 1 {
                return Some(Key::from_encoded(column));
            }
            key.extend_from_slice(column);
        }
        Some(Key(key))
    }

    /// Finishes a key: columns in the order pushed.
    pub fn finish_key(&mut self) -> Key {
        Key::from_encoded(&self.scratch)
    }
}

/// A name's first 8 bytes as a big-endian number, zeros after a shorter name. Where
/// two names' prefixes differ, they order as their names do: either a byte among the
/// first 8 differs, or one name ends there and the other goes on (with zeros, which
/// pad the shorter one, until its first larger byte).
fn name_prefix(name: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let n = name.len().min(8);
    bytes[..n].copy_from_slice(&name[..n]);
    u64::from_be_bytes(bytes)
}

/// The name of the column at `entry` of a builder's index, in its `scratch`.
fn column_name<'s>(scratch: &'s [u8], &(s, n, _): &(u32, u32, u32)) -> &'s [u8] {
    &scratch[s as usize + 1..(s + 1 + n) as usize]
}

/// `v` zigzag-encoded: small magnitudes of either sign make small varints.
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// `n` in seven-bit groups, least significant first, the high bit marking more.
#[inline]
fn push_varint(b: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            b.push(byte);
            return;
        }
        b.push(byte | 0x80);
    }
}

fn push_text(b: &mut Vec<u8>, tag: u8, s: &str) {
    push_bytes(b, tag, s.as_bytes())
}

fn push_bytes(b: &mut Vec<u8>, tag: u8, s: &[u8]) {
    b.push(tag);
    push_varint(b, s.len() as u64);
    b.extend_from_slice(s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Comparing prefixes first, then the names where they are equal, orders names
        /// as comparing the names does. Short names of few letters and NULs, so that
        /// prefixes, padding and real zeros meet.
        #[test]
        fn name_prefixes_order_as_names_do(
            a in prop::collection::vec(prop::sample::select(vec![0u8, b'a', b'b']), 0..11),
            b in prop::collection::vec(prop::sample::select(vec![0u8, b'a', b'b']), 0..11),
        ) {
            let by_prefix = name_prefix(&a).cmp(&name_prefix(&b)).then_with(|| a.cmp(&b));
            prop_assert_eq!(by_prefix, a.cmp(&b));
        }
    }

    proptest! {
        /// A row pushed under names made ready is the row pushed under the names.
        #[test]
        fn named_pushes_make_the_rows_pushes_make(
            columns in prop::collection::vec(("[a-z_]{0,12}", any::<i64>()), 0..8),
        ) {
            let (mut by_text, mut by_name) = (RowBuilder::default(), RowBuilder::default());
            for (name, v) in &columns {
                by_text.push(name, ValueRef::Int(*v)).unwrap();
                by_name.push_named(&ColumnName::new(name).unwrap(), ValueRef::Int(*v));
            }
            prop_assert_eq!(by_text.finish_row(), by_name.finish_row());
        }
    }

    #[test]
    fn a_name_over_255_bytes_is_not_made_ready() {
        assert!(ColumnName::new(&"n".repeat(255)).is_some());
        assert!(ColumnName::new(&"n".repeat(256)).is_none());
    }

    #[test]
    fn one_builder_sorts_every_row_whatever_the_order_of_the_one_before() {
        let mut b = RowBuilder::default();
        let mut row = |cols: &[(&str, i64)]| {
            b.clear();
            for (n, v) in cols {
                b.push(n, ValueRef::Int(*v)).unwrap();
            }
            let r = b.finish_row();
            let got: Vec<(String, i64)> = r
                .fields()
                .map(|(n, v)| match v {
                    ValueRef::Int(i) => (n.to_string(), i),
                    other => panic!("{other:?}"),
                })
                .collect();
            got
        };
        let want = |cols: &[(&str, i64)]| -> Vec<(String, i64)> {
            cols.iter().map(|(n, v)| (n.to_string(), *v)).collect()
        };
        let abc = want(&[("a", 1), ("b", 2), ("c", 3)]);
        assert_eq!(row(&[("b", 2), ("a", 1), ("c", 3)]), abc);
        assert_eq!(
            row(&[("b", 2), ("a", 1), ("c", 3)]),
            abc,
            "the order reused"
        );
        assert_eq!(row(&[("c", 3), ("b", 2), ("a", 1)]), abc, "a new order");
        assert_eq!(
            row(&[("c", 3), ("b", 2), ("c", 9), ("a", 1)]),
            want(&[("a", 1), ("b", 2), ("c", 9)]),
            "a repeat: the last wins"
        );
        assert_eq!(
            row(&[("c", 3), ("b", 2), ("a", 1)]),
            abc,
            "same length as before"
        );
        assert_eq!(row(&[("c", 3), ("a", 1)]), want(&[("a", 1), ("c", 3)]));
        assert_eq!(row(&[("x", 3), ("a", 1)]), want(&[("a", 1), ("x", 3)]));
        assert_eq!(row(&[("a", 1), ("x", 3)]), want(&[("a", 1), ("x", 3)]));
    }

    #[test]
    fn rows_sort_columns_and_keep_the_last_repeat() {
        let mut b = RowBuilder::default();
        b.push("z", ValueRef::Int(1)).unwrap();
        b.push("a", ValueRef::Str("x".repeat(200).as_str()))
            .unwrap();
        b.push(
            "m",
            ValueRef::Decimal(Decimal {
                mantissa: -5,
                scale: 1,
            }),
        )
        .unwrap();
        b.push("z", ValueRef::Null).unwrap();
        assert_eq!(b.get("z"), Some(ValueRef::Null));
        let row = b.finish_row();
        let names: Vec<_> = row.fields().map(|(n, _)| n).collect();
        assert_eq!(names, ["a", "m", "z"]);
        assert_eq!(row.get("z"), Some(ValueRef::Null));
        assert_eq!(row.get("a"), Some(ValueRef::Str(&"x".repeat(200))));
        assert!(b.push(&"n".repeat(256), ValueRef::Null).is_err());
    }
}

#[cfg(test)]
mod unavailable {
    use super::*;

    fn row(note: ValueRef<'_>, status: &str) -> Row {
        let mut b = RowBuilder::default();
        b.push("note", note).unwrap();
        b.push("status", ValueRef::Str(status)).unwrap();
        b.finish_row()
    }

    #[test]
    fn an_unknown_value_takes_the_previous_value_and_nothing_else_changes() {
        let before = row(ValueRef::Str("a long note"), "new");
        let update = row(ValueRef::Unavailable, "paid");
        assert_eq!(update.get("note"), Some(ValueRef::Unavailable));
        let filled = fill_unavailable(&update, Some(&before)).unwrap();
        assert_eq!(filled, row(ValueRef::Str("a long note"), "paid"));
        // Nothing unknown: nothing to do. No previous value: it stays unknown.
        assert_eq!(fill_unavailable(&before, Some(&update)), None);
        assert_eq!(fill_unavailable(&update, None).unwrap(), update);
        // The placeholder's text is an ordinary string here (the decoder recognises it).
        assert_eq!(
            fill_unavailable(&row(ValueRef::Str(UNAVAILABLE), "x"), None),
            None
        );
    }
}

#[cfg(test)]
mod compact {
    use super::*;
    use proptest::prelude::*;

    /// One column value of every kind, with the extremes of each integer's range.
    fn value() -> impl Strategy<Value = (u8, i128, String)> {
        let int = prop_oneof![
            any::<i64>().prop_map(i128::from),
            (-300i128..300),
            Just(i128::from(i64::MIN)),
            Just(i128::from(i64::MAX)),
        ];
        let mantissa = prop_oneof![
            any::<i128>(),
            (-70_000i128..70_000),
            Just(i128::MIN),
            Just(i128::MAX),
            Just(i128::from(i64::MAX)),
            Just(i128::from(i64::MAX) + 1),
            Just(i128::from(i64::MIN)),
            Just(i128::from(i64::MIN) - 1),
        ];
        prop_oneof![(0u8..13, int, ".{0,200}"), (Just(5u8), mantissa, ".{0,3}"),]
    }

    fn as_ref(kind: u8, n: i128, s: &str) -> ValueRef<'_> {
        match kind {
            0 => ValueRef::Null,
            1 => ValueRef::Bool(n % 2 == 0),
            2 => ValueRef::Int(n as i64),
            3 => ValueRef::Float(n as i64 as f64 / 7.0),
            4 => ValueRef::Str(s),
            5 => ValueRef::Decimal(Decimal {
                mantissa: n,
                scale: (n.unsigned_abs() % 39) as u8,
            }),
            6 => ValueRef::Timestamp(n as i64),
            7 => ValueRef::Date(n as i32),
            8 => ValueRef::Json(s),
            9 => ValueRef::Time(n as i64),
            10 => ValueRef::Bytes(s.as_bytes()),
            11 => ValueRef::Unavailable,
            _ => ValueRef::Int(n as i32 as i64),
        }
    }

    proptest! {
        /// Every value reads back as pushed, whole and undecoded (the extent
        /// `next_raw` finds is the one `next` reads), and the flag tells an unknown
        /// value exactly.
        #[test]
        fn rows_read_back_as_pushed(columns in prop::collection::vec(value(), 0..12)) {
            let mut b = RowBuilder::default();
            let mut want = std::collections::BTreeMap::new();
            for (i, (kind, n, s)) in columns.iter().enumerate() {
                let name = format!("c{:02}", (i * 7) % 13);
                b.push(&name, as_ref(*kind, *n, s)).unwrap();
                want.insert(name, as_ref(*kind, *n, s));
            }
            let row = b.finish_row();
            let got: Vec<_> = row.fields().map(|(n, v)| (n.to_string(), v)).collect();
            let want: Vec<_> = want.into_iter().collect();
            prop_assert_eq!(&got, &want);
            let mut raw = row.fields();
            let mut read = Vec::new();
            while let Some((n, bytes)) = raw.next_raw() {
                read.push((n.to_string(), raw_value(bytes).unwrap()));
            }
            prop_assert_eq!(&read, &want);
            let unknown = want.iter().any(|(_, v)| *v == ValueRef::Unavailable);
            prop_assert_eq!(row.has_unavailable(), unknown);
            // The no-float flag tells a float exactly, and bytes from elsewhere get it
            // worked out again (here with it inverted).
            let float = want.iter().any(|(_, v)| matches!(v, ValueRef::Float(_)));
            prop_assert_eq!(row.reflexive(), !float);
            let mut bytes = row.as_bytes().to_vec();
            bytes[0] ^= NO_FLOAT;
            let read = Row::from_encoded(&bytes);
            prop_assert_eq!(read.reflexive(), !float);
            prop_assert_eq!(&read, &row);
            // A key holds the same values, in the order pushed, with no flags byte.
            b.clear();
            for (name, v) in &want {
                b.push(name, *v).unwrap();
            }
            let key = b.finish_key();
            let key_fields: Vec<_> = key.fields().map(|(n, v)| (n.to_string(), v)).collect();
            prop_assert_eq!(key_fields, want);
        }

        /// Truncated or altered bytes read as fewer columns, never as a panic.
        #[test]
        fn malformed_rows_read_as_fewer_columns(
            columns in prop::collection::vec(value(), 1..6),
            cut in any::<prop::sample::Index>(),
            flip in any::<u8>(),
        ) {
            let mut b = RowBuilder::default();
            for (i, (kind, n, s)) in columns.iter().enumerate() {
                b.push(&format!("c{i}"), as_ref(*kind, *n, s)).unwrap();
            }
            let bytes = b.finish_row().as_bytes().to_vec();
            let at = cut.index(bytes.len());
            let n = columns.len();
            prop_assert!(Row::from_encoded(&bytes[..at]).fields().count() <= n);
            let mut altered = bytes.clone();
            altered[at] ^= flip;
            let row = Row::from_encoded(&altered);
            let _ = row.has_unavailable();
            let mut raw = row.fields();
            while let Some((_, v)) = raw.next_raw() {
                let _ = raw_value(v);
            }
        }
    }

    #[test]
    fn small_integers_take_few_bytes() {
        let mut b = RowBuilder::default();
        b.push("id", ValueRef::Int(6960)).unwrap();
        b.push(
            "amount",
            ValueRef::Decimal(Decimal {
                mantissa: 44843,
                scale: 2,
            }),
        )
        .unwrap();
        // flags; 6 "amount" DECIMAL 3 bytes scale; 2 "id" INT 2 bytes.
        assert_eq!(
            b.finish_row().encoded_len(),
            1 + (1 + 6 + 1 + 3 + 1) + (1 + 2 + 1 + 2)
        );
    }
}
