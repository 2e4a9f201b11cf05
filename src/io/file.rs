//! JSONL files: one file is one partition; the output directory's three JSONL files.

use super::render;
use super::{Partition, Poll};
use crate::cdc::{Message, Origin, SideId};
use crate::dataflow::{Lane, Output, Rendered, Sink, Time};
use anyhow::Context as _;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A JSONL file read line by line (one message value per line).
pub struct FilePartition {
    side: SideId,
    path: Arc<str>,
    line: u64,
    /// The file as it was when opened, mapped into memory and read in place (a regular
    /// file that can be mapped; else `None`, and it is all read by `reader`).
    map: Option<Mapped>,
    /// Reads what lies past the map: the whole of a file that is not mapped, and what
    /// was appended to one that is.
    reader: Reader,
}

/// A file mapped into memory: reading a line costs no copy. `read(2)` copied each
/// byte into a buffer first, 5.3% of a two-worker run's samples (the kernel's
/// `copy_to_iter`), and the decoder then read the copy.
struct Mapped {
    map: memmap2::Mmap,
    /// Where the next line starts.
    at: usize,
    /// The mapped bytes before this are given back (`MADV_DONTNEED`): the page cache
    /// keeps them, but they no longer count in the process's resident set, which would
    /// otherwise grow to the whole file.
    released: usize,
    /// The bytes before this are mapped into the page table (`MADV_POPULATE_READ`).
    populated: usize,
}

/// How far ahead of the line read the map's pages are entered in the page table, a
/// range at a time: one call instead of a page fault per 64 KiB.
const POPULATE: usize = 512 << 10;

/// How far ahead of the line read its bytes are fetched into the cache.
const AHEAD: usize = 4096;

impl Mapped {
    /// Enters the next [`POPULATE`] bytes' pages in the page table.
    fn populate(&mut self) {
        let len = POPULATE.min(self.map.len() - self.populated);
        if len > 0 {
            // A kernel without the advice (before Linux 5.14) refuses it: the pages
            // are then faulted in as they are read.
            let _ = self
                .map
                .advise_range(memmap2::Advice::PopulateRead, self.populated, len);
        }
        self.populated += len;
    }
}

/// The mapped bytes read since the last give-back that make another worth its call.
const RELEASE: usize = 1 << 20;

/// A file read by `read(2)` in chunks.
struct Reader {
    file: File,
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
        let mut file = File::open(path)
            .with_context(|| format!("cannot open {} input {}", side.name(), path.display()))?;
        let map = map(&file);
        if let Some(m) = &map {
            // What the map holds is not read again.
            file.seek(SeekFrom::Start(m.map.len() as u64))
                .with_context(|| format!("cannot read {}", path.display()))?;
        }
        Ok(FilePartition {
            side,
            path: path.display().to_string().into(),
            line: 0,
            map,
            reader: Reader {
                file,
                buf: vec![0; CHUNK],
                start: 0,
                end: 0,
                eof: false,
            },
        })
    }

    /// Whether the file is read in place from a map (else by `read(2)`).
    #[cfg(test)]
    fn mapped(&self) -> bool {
        self.map.is_some()
    }

    /// The next line (without its line end) and its number, reading as needed; `None`
    /// at the end of the file.
    fn next_line(&mut self) -> anyhow::Result<Option<(u64, &[u8])>> {
        if let Some(m) = &mut self.map {
            if m.at + POPULATE > m.populated {
                m.populate();
            }
            let rest = &m.map[m.at..];
            // The bytes a few pages on are asked for now: the processor's own
            // prefetcher stops at each page's end, and every page's first lines missed.
            for line in (AHEAD..AHEAD + rest.len().min(1024)).step_by(64) {
                crate::row::prefetch(rest.as_ptr().wrapping_add(line));
            }
            match memchr::memchr(b'\n', rest) {
                Some(i) => {
                    let from = m.at;
                    m.at += i + 1;
                    self.line += 1;
                    // Borrowed again, shared: the line outlives the mutable borrow.
                    let m = self.map.as_ref().map_or(&[][..], |m| &m.map[..]);
                    return Ok(Some((self.line, &m[from..from + i])));
                }
                None => {
                    // The map is read: a last line without its end continues in what
                    // the reader reads (appended since) or ends the file.
                    let r = &mut self.reader;
                    if rest.len() > r.buf.len() {
                        r.buf.resize(rest.len(), 0);
                    }
                    r.buf[..rest.len()].copy_from_slice(rest);
                    r.end = rest.len();
                    self.map = None;
                }
            }
        }
        let line = self.reader.next_line(&self.path)?;
        if line.is_some() {
            self.line += 1;
        }
        Ok(line.map(|l| (self.line, l)))
    }

    /// Gives back the mapped pages read since the last time, once there are enough.
    fn release(&mut self) {
        let Some(m) = &mut self.map else { return };
        let page = page_size();
        let upto = m.at / page * page;
        if upto - m.released < RELEASE {
            return;
        }
        // SAFETY: the range is within the map, and no line of it is borrowed any more
        // (lines live only for their callback); what it held is read again from the
        // file, unchanged, should anything touch it.
        let _ = unsafe {
            m.map.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                m.released,
                upto - m.released,
            )
        };
        m.released = upto;
    }
}

/// The file mapped, if it is a regular file that is not empty and can be mapped.
fn map(file: &File) -> Option<Mapped> {
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() == 0 {
        return None;
    }
    // SAFETY: the map is only read. Were the file truncated while it is read, a read
    // of a page past its new end would be a fault (SIGBUS): like any tool that maps its
    // input, file mode asks that its input files are not cut short while it runs
    // (appending is fine: what was appended is read after the map).
    let map = unsafe { memmap2::Mmap::map(file) }.ok()?;
    let _ = map.advise(memmap2::Advice::Sequential);
    Some(Mapped {
        map,
        at: 0,
        released: 0,
        populated: 0,
    })
}

fn page_size() -> usize {
    // SAFETY: asks a constant of the system.
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    }
}

impl Reader {
    /// The next line's range in `buf` (without its line end), reading as needed;
    /// `None` at the end of the file.
    fn next_line(&mut self, path: &str) -> anyhow::Result<Option<&[u8]>> {
        let mut searched = self.start;
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[searched..self.end]) {
                let (from, to) = (self.start, searched + i);
                self.start = to + 1;
                return Ok(Some(&self.buf[from..to]));
            }
            if self.eof {
                if self.start == self.end {
                    return Ok(None);
                }
                let from = self.start;
                self.start = self.end;
                return Ok(Some(&self.buf[from..self.end]));
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
                    r => break r.with_context(|| format!("cannot read {path}"))?,
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
            let Some((number, mut line)) = self.next_line()? else {
                return Ok(Poll::Done);
            };
            while let [rest @ .., b'\r'] = line {
                line = rest;
            }
            f(
                &Message {
                    key: None,
                    value: Some(line),
                    timestamp_ms: None,
                },
                number,
            );
        }
        self.release();
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

impl Writers {
    /// Appends `bytes` to `lane`'s file.
    fn write(&mut self, lane: Lane, bytes: &[u8]) -> anyhow::Result<()> {
        let file = match lane {
            Lane::Drift => &mut self.drift,
            Lane::Correction => &mut self.corrections,
            Lane::DeadLetter => &mut self.dlq,
        };
        file.write_all(bytes)
            .with_context(|| format!("cannot write outputs in {}", self.dir.display()))
    }
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

    /// How every worker renders `entity`'s outputs for these files: as their lines.
    pub fn render(entity: &str) -> Arc<dyn crate::dataflow::Render> {
        Arc::new(render::Lines {
            entity: entity.to_string(),
        })
    }

    /// The files, locked (every entity's sink writes to them).
    fn writers(&self) -> anyhow::Result<std::sync::MutexGuard<'_, Writers>> {
        self.inner
            .lock()
            .map_err(|_| anyhow::anyhow!("output writer poisoned"))
    }

    /// Flushes everything written.
    pub fn flush(&self) -> anyhow::Result<()> {
        let mut guard = self.writers()?;
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

    fn emit_rendered(&mut self, _time: Time, rendered: &[Rendered]) -> anyhow::Result<()> {
        let mut guard = self.writers()?;
        let w = &mut *guard;
        rendered.iter().try_for_each(|r| w.write(r.lane, &r.bytes))
    }

    fn emit(&mut self, _time: Time, outputs: &[Output]) -> anyhow::Result<()> {
        let mut guard = self.writers()?;
        let w = &mut *guard;
        let mut line = std::mem::take(&mut w.line);
        let written = outputs.iter().try_for_each(|o| {
            line.clear();
            render::write_line(&mut line, &self.entity, o)?;
            w.write(o.lane(), &line)
        });
        w.line = line;
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line as read, with its number, polling `max` lines at a time.
    fn read_all(path: &Path, max: usize) -> Vec<(u64, Vec<u8>)> {
        drain(FilePartition::open(SideId::Source, path).unwrap(), max)
    }

    fn drain(mut p: FilePartition, max: usize) -> Vec<(u64, Vec<u8>)> {
        let mut lines = Vec::new();
        loop {
            let mut f = |m: &Message<'_>, n: u64| lines.push((n, m.value.unwrap().to_vec()));
            if let Poll::Done = p.poll(max, &mut f).unwrap() {
                return lines;
            }
        }
    }

    /// Lines of every length around the chunk size, one far longer than a chunk,
    /// CRLF and empty lines, and no line end at the end of the text.
    fn text() -> (Vec<u8>, Vec<Vec<u8>>) {
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
        (text, expected)
    }

    fn check(lines: Vec<(u64, Vec<u8>)>, expected: &[Vec<u8>], what: &str) {
        let numbers: Vec<u64> = lines.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, (1..=expected.len() as u64).collect::<Vec<_>>());
        let values: Vec<Vec<u8>> = lines.into_iter().map(|(_, v)| v).collect();
        assert!(values == expected, "lines differ: {what}");
    }

    #[test]
    fn lines_of_a_mapped_file_are_read_whole_and_numbered() {
        // Over RELEASE bytes, so pages read are given back on the way.
        let (mut text, expected) = text();
        text.push(b'\n');
        let (text, expected) = (text.repeat(3), [&expected[..]; 3].concat());
        assert!(text.len() > RELEASE);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        std::fs::write(&path, &text).unwrap();
        assert!(FilePartition::open(SideId::Source, &path).unwrap().mapped());
        for max in [1, 7, 1000] {
            check(read_all(&path, max), &expected, &format!("max {max}"));
        }
    }

    #[test]
    fn lines_cross_chunks_and_grow_past_them_when_read() {
        // A pipe cannot be mapped: it is read in chunks.
        let (text, expected) = text();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.pipe");
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: makes a FIFO at a path of the test's own directory.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let writer = {
            let (path, text) = (path.clone(), text.clone());
            std::thread::spawn(move || std::fs::write(path, text).unwrap())
        };
        let p = FilePartition::open(SideId::Source, &path).unwrap();
        assert!(!p.mapped());
        check(drain(p, 7), &expected, "a pipe");
        writer.join().unwrap();
    }

    #[test]
    fn what_is_appended_after_the_map_is_read_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        std::fs::write(&path, b"one\ntwo\nthr").unwrap();
        let p = FilePartition::open(SideId::Source, &path).unwrap();
        assert!(p.mapped());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"ee\nfour\n").unwrap();
        let want: Vec<Vec<u8>> = ["one", "two", "three", "four"]
            .iter()
            .map(|l| l.as_bytes().to_vec())
            .collect();
        check(drain(p, 2), &want, "appended");
    }
}
