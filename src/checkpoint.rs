//! Checkpoint files: abomonation behind a magic/version header and a CRC-32.
//!
//! abomonation decodes in place by trusting the bytes' layout, so only verified bytes
//! may reach it. A file is:
//!
//! ```text
//! magic "DWCKPT\0\0" | version u32 | reserved u32 | payload length u64 | CRC-32 u32 | 4 zero bytes
//! payload (abomonation of the checkpoint value)
//! ```
//!
//! The CRC covers the 24 header bytes before it and the payload. Reading checks the
//! magic, the version, the length, the checksum and the zero bytes before anything is
//! decoded, and decodes from an 8-byte aligned copy (abomonation casts pointers). A file
//! is written to a temporary name, synced, and renamed into place, so a crash leaves the
//! old checkpoint or the new one, never half of one. Nothing writes checkpoints yet:
//! this is the format the fault-tolerance work builds on.
//!
//! **Alignment rule.** abomonation lays children out back to back and later casts each
//! run of bytes to its element type, so a byte string of odd length followed by a
//! vector of `u64`s would be read misaligned (undefined behaviour; debug builds abort).
//! Checkpointed types therefore keep every element a multiple of 8 bytes in size and
//! alignment, and hold byte strings as [`Bytes`] (8-byte words and a length).

// abomonation_derive 0.5 expands to impls the newer `non_local_definitions` lint flags.
#![allow(non_local_definitions)]

pub mod state;
pub mod store;

use abomonation::Abomonation;
use std::io::Write as _;
use std::path::{Path, PathBuf};

const MAGIC: [u8; 8] = *b"DWCKPT\0\0";
/// The payload layout's version: bump it whenever a checkpointed type changes (4: rows
/// and keys in the compact encoding, a row's flags byte first).
pub const VERSION: u32 = 4;
const HEADER: usize = 32;

/// Why a checkpoint cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    /// Not a checkpoint file at all.
    #[error("not a driftwatch checkpoint (bad magic)")]
    Magic,
    /// Written by an incompatible version.
    #[error("checkpoint format version {found}, this build reads version {VERSION}")]
    Version {
        /// The file's version.
        found: u32,
    },
    /// Cut short, or longer than its header says.
    #[error("checkpoint is {found} bytes, its header says {expected}")]
    Length {
        /// What the header says.
        expected: u64,
        /// What the file holds.
        found: u64,
    },
    /// The payload does not match its checksum.
    #[error("checkpoint checksum mismatch (corrupt file)")]
    Checksum,
    /// Verified bytes that still do not decode (a bug, or a forged checksum).
    #[error("checkpoint payload does not decode")]
    Payload,
}

/// Encodes `value` as a checkpoint file's bytes.
pub fn encode<T: Abomonation>(value: &T) -> Vec<u8> {
    let mut payload = Vec::new();
    // SAFETY: `encode` only reads `value` and writes its bytes to the Vec.
    unsafe { abomonation::encode(value, &mut payload) }.expect("writing to a Vec cannot fail");
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    let crc = checksum(&out, &payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.resize(HEADER, 0);
    out.extend_from_slice(&payload);
    out
}

/// Verifies and decodes a checkpoint file's bytes.
pub fn decode<T: Abomonation + Clone>(bytes: &[u8]) -> Result<T, CheckpointError> {
    if bytes.len() < HEADER || bytes[..8] != MAGIC {
        return Err(CheckpointError::Magic);
    }
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let version = word(8);
    if version != VERSION {
        return Err(CheckpointError::Version { found: version });
    }
    let expected = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    let payload = &bytes[HEADER..];
    if payload.len() as u64 != expected {
        return Err(CheckpointError::Length {
            expected,
            found: payload.len() as u64,
        });
    }
    if checksum(&bytes[..24], payload) != word(24) || bytes[28..HEADER] != [0; 4] {
        return Err(CheckpointError::Checksum);
    }
    // An 8-byte aligned, mutable copy: abomonation decodes in place, by pointer casts.
    let mut aligned = vec![0u64; payload.len().div_ceil(8)];
    // SAFETY: u64 has no invalid bit patterns and the slice covers the allocation.
    let buf = unsafe {
        std::slice::from_raw_parts_mut(aligned.as_mut_ptr().cast::<u8>(), aligned.len() * 8)
    };
    buf[..payload.len()].copy_from_slice(payload);
    // SAFETY: the bytes passed the checksum, so they are what `encode` wrote for a `T`
    // of this build's layout (the version guards layout changes), in an aligned buffer.
    match unsafe { abomonation::decode::<T>(&mut buf[..payload.len()]) } {
        Some((value, [])) => Ok(value.clone()),
        _ => Err(CheckpointError::Payload),
    }
}

/// CRC-32 of the header's first 24 bytes and the payload.
fn checksum(header: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[..24]);
    h.update(payload);
    h.finalize()
}

/// A byte string stored as 8-byte words, so that what follows it stays aligned.
#[derive(Debug, Clone, PartialEq, Eq, Default, abomonation_derive::Abomonation)]
pub struct Bytes {
    len: u64,
    words: Vec<u64>,
}

impl From<&[u8]> for Bytes {
    fn from(b: &[u8]) -> Self {
        let mut words = vec![0u64; b.len().div_ceil(8)];
        for (w, chunk) in words.iter_mut().zip(b.chunks(8)) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            *w = u64::from_le_bytes(word);
        }
        Bytes {
            len: b.len() as u64,
            words,
        }
    }
}

impl Bytes {
    /// The bytes, or `None` if the length and the words disagree (a forged file).
    pub fn to_vec(&self) -> Option<Vec<u8>> {
        let len = usize::try_from(self.len).ok()?;
        if len.div_ceil(8) != self.words.len() {
            return None;
        }
        let mut out: Vec<u8> = self.words.iter().flat_map(|w| w.to_le_bytes()).collect();
        out.truncate(len);
        Some(out)
    }
}

/// Writes `bytes` to `dir/name` atomically (temporary file, fsync, rename, fsync dir).
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use abomonation_derive::Abomonation;

    #[derive(Debug, Clone, PartialEq, Abomonation)]
    struct State {
        time: u64,
        keys: Vec<(Bytes, Option<Bytes>)>,
        offsets: Vec<(Bytes, i64, i64)>,
    }

    fn sample() -> State {
        State {
            time: 1_772_323_200_000,
            keys: (0..100u8)
                .map(|i| {
                    let row = vec![i; i as usize];
                    (
                        Bytes::from(&[i; 3][..]),
                        (i % 3 != 0).then(|| Bytes::from(&row[..])),
                    )
                })
                .collect(),
            offsets: vec![(Bytes::from(&b"orders"[..]), 1, 4242)],
        }
    }

    #[test]
    fn bytes_keep_their_length() {
        for n in 0..20 {
            let b: Vec<u8> = (0..n).collect();
            assert_eq!(Bytes::from(&b[..]).to_vec(), Some(b));
        }
    }

    #[test]
    fn round_trips_and_refuses_every_damaged_byte() {
        let bytes = encode(&sample());
        assert_eq!(decode::<State>(&bytes), Ok(sample()));
        // Any single flipped byte is caught before abomonation sees it.
        for i in (0..bytes.len()).step_by(7) {
            let mut bad = bytes.clone();
            bad[i] ^= 0x5a;
            assert!(
                decode::<State>(&bad).is_err(),
                "byte {i} flipped, still decoded"
            );
        }
        assert_eq!(decode::<State>(b"hello"), Err(CheckpointError::Magic));
        let mut other = bytes.clone();
        other[8] = VERSION as u8 + 1;
        assert_eq!(
            decode::<State>(&other),
            Err(CheckpointError::Version { found: VERSION + 1 })
        );
        let cut = &bytes[..bytes.len() - 1];
        assert!(matches!(
            decode::<State>(cut),
            Err(CheckpointError::Length { .. })
        ));
    }

    #[test]
    fn writes_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_atomic(dir.path(), "w0.ckpt", &encode(&sample())).unwrap();
        let read = std::fs::read(&path).unwrap();
        assert_eq!(decode::<State>(&read), Ok(sample()));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("w0.ckpt")]);
    }
}
