//! JSONL files: one file is one partition; the output directory's three JSONL files.

use super::render;
use super::{Partition, Poll};
use crate::cdc::{Message, Origin, SideId};
use crate::dataflow::{Output, Sink, Time};
use anyhow::Context as _;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A JSONL file read line by line (one message value per line).
pub struct FilePartition {
    side: SideId,
    path: Arc<str>,
    reader: BufReader<File>,
    line: u64,
    buf: Vec<u8>,
}

impl FilePartition {
    /// Opens `path` for `side`.
    pub fn open(side: SideId, path: &Path) -> anyhow::Result<Self> {
        let file = File::open(path)
            .with_context(|| format!("cannot open {} input {}", side.name(), path.display()))?;
        Ok(FilePartition {
            side,
            path: path.display().to_string().into(),
            reader: BufReader::with_capacity(1 << 20, file),
            line: 0,
            buf: Vec::with_capacity(4096),
        })
    }
}

impl Partition for FilePartition {
    fn side(&self) -> SideId {
        self.side
    }

    fn poll(&mut self, max: usize, f: &mut dyn FnMut(&Message<'_>, u64)) -> anyhow::Result<Poll> {
        for _ in 0..max {
            self.buf.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.buf)
                .with_context(|| format!("cannot read {}", self.path))?;
            if n == 0 {
                return Ok(Poll::Done);
            }
            self.line += 1;
            let mut line: &[u8] = &self.buf;
            while let [rest @ .., b'\n' | b'\r'] = line {
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
