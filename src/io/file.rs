//! JSONL files: one file is one partition; the output directory's three JSONL files.

use super::render;
use super::{Partition, Poll};
use crate::cdc::{Message, Origin, SideId};
use crate::dataflow::{Output, Sink, Time};
use anyhow::Context as _;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A JSONL file read line by line (one message value per line).
pub struct FilePartition {
    side: SideId,
    path: Arc<str>,
    file: File,
    line: u64,
    /// Read from the file in chunks; lines are handed out as slices of it, in place.
    buf: Vec<u8>,
    /// The unread part of `buf`.
    start: usize,
    end: usize,
    eof: bool,
}

/// The read chunk: small enough to stay in a core's cache between the read that fills
/// it and the decoder that reads it (1 MiB chunks plus a copy of every line into its own
/// buffer cost 14% of a worker's time, most of it memory traffic).
const CHUNK: usize = 256 << 10;

impl FilePartition {
    pub fn open(side: SideId, path: &Path) -> anyhow::Result<Self> {
        let file = File::open(path)
            .with_context(|| format!("cannot open {} input {}", side.name(), path.display()))?;
        Ok(FilePartition {
            side,
            path: path.display().to_string().into(),
            file,
            line: 0,
            buf: vec![0; CHUNK],
            start: 0,
            end: 0,
            eof: false,
        })
    }

    /// The next line's range in `buf` (without its line end), reading as needed;
    /// `None` at the end of the file.
    fn next_line(&mut self) -> anyhow::Result<Option<(usize, usize)>> {
        let mut searched = self.start;
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[searched..self.end]) {
                let (from, to) = (self.start, searched + i);
                self.start = to + 1;
                return Ok(Some((from, to)));
            }
            if self.eof {
                if self.start == self.end {
                    return Ok(None);
                }
                let from = self.start;
                self.start = self.end;
                return Ok(Some((from, self.end)));
            }
            // Keep the partial line, make room and read more.
            searched = self.end - self.start;
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.end == self.buf.len() {
                let longer = self.buf.len() * 2;
                self.buf.resize(longer, 0);
            }
            let n = loop {
                match self.file.read(&mut self.buf[self.end..]) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    r => break r.with_context(|| format!("cannot read {}", self.path))?,
                }
            };
            self.eof = n == 0;
            self.end += n;
            if self.buf.len() > CHUNK && self.end < CHUNK {
                // A long line has passed: back to chunk size.
                self.buf.truncate(CHUNK.max(self.end));
                self.buf.shrink_to_fit();
            }
        }
    }
}

impl Partition for FilePartition {
    fn side(&self) -> SideId {
        self.side
    }

    fn poll(&mut self, max: usize, f: &mut dyn FnMut(&Message<'_>, u64)) -> anyhow::Result<Poll> {
        for _ in 0..max {
            let Some((from, to)) = self.next_line()? else {
                return Ok(Poll::Done);
            };
            self.line += 1;
            let mut line: &[u8] = &self.buf[from..to];
            while let [rest @ .., b'\r'] = line {
                line = rest;
            }
            f(
                &Message {
                    key: None,
                    value: Some(line),
                    timestamp_ms: None,
                },
                self.line,
            );
        }
        Ok(Poll::Ready)
    }

    fn origin(&self, position: u64) -> Origin {
        Origin::File {
            file: self.path.clone(),
            line: position,
        }
    }
}

/// The file outputs: `drift.jsonl`, `corrections.jsonl`, `dlq.jsonl` in a directory,
/// shared by every entity of a job (each line names its entity).
#[derive(Clone)]
pub struct FileOutputs {
    inner: Arc<Mutex<Writers>>,
    /// The entity this handle writes for.
    entity: Arc<str>,
}

struct Writers {
    dir: PathBuf,
    drift: BufWriter<File>,
    corrections: BufWriter<File>,
    dlq: BufWriter<File>,
    line: Vec<u8>,
}

impl FileOutputs {
    /// Creates (truncates) the three files in `dir`, creating it if needed.
    pub fn create(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create output directory {}", dir.display()))?;
        let open = |name: &str| -> anyhow::Result<BufWriter<File>> {
            let path = dir.join(name);
            Ok(BufWriter::with_capacity(
                1 << 16,
                File::create(&path).with_context(|| format!("cannot create {}", path.display()))?,
            ))
        };
        let writers = Writers {
            dir: dir.to_path_buf(),
            drift: open("drift.jsonl")?,
            corrections: open("corrections.jsonl")?,
            dlq: open("dlq.jsonl")?,
            line: Vec::new(),
        };
        Ok(FileOutputs {
            inner: Arc::new(Mutex::new(writers)),
            entity: Arc::from(""),
        })
    }

    /// A sink writing `entity`'s outputs to these files (for worker 0).
    pub fn sink(&self, entity: &str) -> Box<dyn Sink> {
        Box::new(FileOutputs {
            inner: self.inner.clone(),
            entity: Arc::from(entity),
        })
    }

    /// Flushes everything written.
    pub fn flush(&self) -> anyhow::Result<()> {
        let mut guard = self
            .inner
            .lock()
            .map_err(|_| anyhow::anyhow!("output writer poisoned"))?;
        let w = &mut *guard;
        let dir = w.dir.display().to_string();
        for f in [&mut w.drift, &mut w.corrections, &mut w.dlq] {
            f.flush()
                .with_context(|| format!("cannot write outputs in {dir}"))?;
        }
        Ok(())
    }
}

impl Sink for FileOutputs {
    fn finish(&mut self) -> anyhow::Result<()> {
        FileOutputs::flush(self)
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        FileOutputs::flush(self)
    }

    fn emit(&mut self, _time: Time, outputs: &[Output]) -> anyhow::Result<()> {
        let mut guard = self
            .inner
            .lock()
            .map_err(|_| anyhow::anyhow!("output writer poisoned"))?;
        let w = &mut *guard;
        for o in outputs {
            w.line.clear();
            render::write_line(&mut w.line, &self.entity, o)?;
            let file = match o {
                Output::Drift(_) => &mut w.drift,
                Output::Correction(_) => &mut w.corrections,
                Output::DeadLetter(_) => &mut w.dlq,
            };
            file.write_all(&w.line)
                .with_context(|| format!("cannot write outputs in {}", w.dir.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line as read, with its number, polling `max` lines at a time.
    fn read_all(path: &Path, max: usize) -> Vec<(u64, Vec<u8>)> {
        let mut p = FilePartition::open(SideId::Source, path).unwrap();
        let mut lines = Vec::new();
        loop {
            let mut f = |m: &Message<'_>, n: u64| lines.push((n, m.value.unwrap().to_vec()));
            if let Poll::Done = p.poll(max, &mut f).unwrap() {
                return lines;
            }
        }
    }

    #[test]
    fn lines_cross_chunks_and_grow_past_them() {
        // Lines of every length around the chunk size, one far longer than a chunk,
        // CRLF and empty lines, and no line end at the end of the file.
        let mut expected: Vec<Vec<u8>> = Vec::new();
        let mut text = Vec::new();
        let mut seed = 7u64;
        for i in 0..400 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = match i {
                17 => 3 * CHUNK + 5,
                18 => 0,
                _ => (seed >> 33) as usize % 4000,
            };
            let line: Vec<u8> = (0..len).map(|j| b'a' + ((i + j) % 26) as u8).collect();
            text.extend_from_slice(&line);
            text.extend_from_slice(if i % 3 == 0 { b"\r\n" } else { b"\n" });
            expected.push(line);
        }
        text.extend_from_slice(b"last");
        expected.push(b"last".to_vec());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        std::fs::write(&path, &text).unwrap();
        for max in [1, 7, 1000] {
            let lines = read_all(&path, max);
            let numbers: Vec<u64> = lines.iter().map(|(n, _)| *n).collect();
            assert_eq!(numbers, (1..=expected.len() as u64).collect::<Vec<_>>());
            let values: Vec<Vec<u8>> = lines.into_iter().map(|(_, v)| v).collect();
            assert!(values == expected, "lines differ with max {max}");
        }
    }
}
