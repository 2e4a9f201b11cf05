//! The members of an object as the last event had them, to read the next event's by
//! comparison.
//!
//! One connector's events have one shape: the same keys in the same order, and many of
//! the values passed over (`source.connector`, `source.db`, `transaction`) the same
//! bytes each time. So a member whose key token (`"name":`) is byte for byte the one at
//! its position last time is read by one comparison, and a passed-over value that is
//! byte for byte the last one there is passed by another: the same bytes were read and
//! checked then, so they are valid now. Two or more such members in a row (`version`,
//! `connector`, `name`) are learned as a run, passed by one comparison of their whole
//! text. Anything else is read in full, and the shape learns it.

/// One object's members by position, as last read, each with its role `R` (what the
/// reader does with it).
pub(crate) struct Shape<R>(Vec<Member<R>>);

impl<R> Default for Shape<R> {
    fn default() -> Self {
        Shape(Vec::new())
    }
}

/// A member as last read at its position.
pub(super) struct Member<R> {
    /// The key's token, `"key":`, when the key is plain (read without an escape): only
    /// then are equal bytes a valid token.
    token: Option<Box<[u8]>>,
    /// What the reader does with the member.
    pub(super) role: R,
    /// The value last passed over at this position.
    pub(super) last: Passed,
    /// The members from this one on that were passed over as the same bytes as the
    /// event before, each with its comma: two or more of them, passed by one
    /// comparison while they stay the same (`"version":…,"connector":…,"name":…,`).
    run: Option<Run>,
}

/// Members passed over as one text.
struct Run {
    text: Box<[u8]>,
    /// How many members it holds.
    members: usize,
}

/// The value last passed over at a member's position, to pass the next one there by
/// one comparison when it is the same.
#[derive(Default)]
pub(super) struct Passed {
    /// Its text.
    pub(super) text: Vec<u8>,
    /// How many times in a row the value differed from the last one: a value that
    /// changes with every event (`source.txId`, `source.sequence`) is then only
    /// read, no longer compared and learned.
    pub(super) changed: u8,
}

impl Passed {
    /// After this many changes in a row, a position's value is taken to change with
    /// every event.
    pub(super) const CHANGING: u8 = 2;
}

impl<R> Shape<R> {
    /// The token of the plain key at position `i`, if the shape has one there.
    #[inline]
    pub(super) fn token(&self, i: usize) -> Option<&[u8]> {
        self.0.get(i)?.token.as_deref()
    }

    /// The member at `i`, which [`Shape::learn`] put there.
    #[inline]
    pub(super) fn at(&mut self, i: usize) -> &mut Member<R> {
        &mut self.0[i]
    }

    /// Position `i` holds `key` from now on (and nothing is known beyond it, nor of a
    /// run that reached it).
    #[cold]
    pub(super) fn learn(&mut self, i: usize, key: &str, plain: bool, role: R) -> &mut Member<R> {
        self.0.truncate(i);
        for (j, m) in self.0.iter_mut().enumerate() {
            if m.run.as_ref().is_some_and(|r| j + r.members > i) {
                m.run = None;
            }
        }
        self.0.push(Member {
            token: plain.then(|| token(key)),
            role,
            last: Passed::default(),
            run: None,
        });
        &mut self.0[i]
    }

    /// The run learned at position `i`: its text and how many members it holds.
    #[inline]
    pub(super) fn run(&self, i: usize) -> Option<(&[u8], usize)> {
        let run = self.0.get(i)?.run.as_ref()?;
        Some((&run.text, run.members))
    }

    /// The run at `i` no longer serves.
    #[cold]
    pub(super) fn forget_run(&mut self, i: usize) {
        self.0[i].run = None;
    }

    /// The `members` members from position `i` on, each passed over as the same bytes
    /// as the event before, are `text` (each followed by its comma).
    #[cold]
    pub(super) fn learn_run(&mut self, i: usize, members: usize, text: &[u8]) {
        debug_assert!(members >= 2 && i + members <= self.0.len());
        self.0[i].run = Some(Run {
            text: text.into(),
            members,
        });
    }
}

/// The token of a plain key: `"key":`.
pub(crate) fn token(key: &str) -> Box<[u8]> {
    [b"\"", key.as_bytes(), b"\":"].concat().into()
}

/// Whether two byte strings of one length are equal: words at a time, without a call
/// (the keys and values compared are short, and `memcmp`'s call costs more than they).
#[inline]
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().unwrap());
    let half = |s: &[u8], i: usize| u32::from_le_bytes(s[i..i + 4].try_into().unwrap());
    match n {
        0..=3 => a == b,
        4..=8 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        _ => {
            let mut i = 0;
            while i + 8 < n {
                if word(a, i) != word(b, i) {
                    return false;
                }
                i += 8;
            }
            // The last eight bytes, overlapping what was compared.
            word(a, n - 8) == word(b, n - 8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::same;
    use proptest::prelude::*;

    proptest! {
        /// `same` answers as `==` for every length, wherever the strings differ.
        #[test]
        fn same_is_equality(a in proptest::collection::vec(any::<u8>(), 0..40), flip in any::<proptest::sample::Index>(), bit in 0u8..8) {
            prop_assert!(same(&a, &a.clone()));
            if !a.is_empty() {
                let mut b = a.clone();
                b[flip.index(a.len())] ^= 1 << bit;
                prop_assert!(!same(&a, &b));
            }
            let mut longer = a.clone();
            longer.push(0);
            prop_assert!(!same(&a, &longer));
        }
    }
}
