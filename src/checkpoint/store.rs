//! The checkpoint directory: one file per worker and checkpoint time, completeness,
//! loading the newest complete checkpoint, and pruning.
//!
//! A checkpoint at time T by a cluster of P workers is complete when all P files
//! `T-wI-of-P.ckpt` are there (each written atomically). Only a complete checkpoint is
//! restored; a crash in the middle of writing one leaves the previous one in force.

use super::state::WorkerState;
use super::{decode, encode, write_atomic};
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A checkpoint directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// A file's (time, worker, peers), parsed from its name.
fn parse_name(name: &str) -> Option<(u64, u64, u64)> {
    let rest = name.strip_suffix(".ckpt")?;
    let (time, rest) = rest.split_once("-w")?;
    let (index, peers) = rest.split_once("-of-")?;
    Some((time.parse().ok()?, index.parse().ok()?, peers.parse().ok()?))
}

impl Store {
    /// The store in `dir` (created when the first checkpoint is written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Store { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes one worker's file.
    pub fn write(&self, state: &WorkerState) -> anyhow::Result<PathBuf> {
        let name = format!(
            "{:020}-w{:04}-of-{:04}.ckpt",
            state.time, state.index, state.peers
        );
        write_atomic(&self.dir, &name, &encode(state))
            .with_context(|| format!("cannot write checkpoint {}", self.dir.join(&name).display()))
    }

    /// Files by (time, peers) → worker indexes present.
    fn files(&self) -> BTreeMap<(u64, u64), Vec<(u64, PathBuf)>> {
        let mut out: BTreeMap<(u64, u64), Vec<(u64, PathBuf)>> = BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return out;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some((time, index, peers)) = parse_name(&name) {
                out.entry((time, peers))
                    .or_default()
                    .push((index, e.path()));
            }
        }
        out
    }

    /// Complete checkpoints, newest first: (time, peers).
    pub fn complete(&self) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = self
            .files()
            .into_iter()
            .filter(|((_, peers), files)| {
                (0..*peers).all(|i| files.iter().any(|(index, _)| *index == i))
            })
            .map(|(k, _)| k)
            .collect();
        out.reverse();
        out
    }

    /// Loads the newest complete checkpoint: `Ok(None)` when there is none, an error
    /// naming the file when one of its files is corrupt or from another version.
    pub fn load_newest(&self) -> anyhow::Result<Option<Vec<WorkerState>>> {
        let Some((time, peers)) = self.complete().first().copied() else {
            return Ok(None);
        };
        let files = self.files().remove(&(time, peers)).unwrap_or_default();
        let mut states = Vec::new();
        for index in 0..peers {
            let (_, path) = files
                .iter()
                .find(|(i, _)| *i == index)
                .expect("complete checkpoints have every file");
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read checkpoint {}", path.display()))?;
            let state: WorkerState = decode(&bytes)
                .with_context(|| format!("checkpoint {} is unusable", path.display()))?;
            anyhow::ensure!(
                state.time == time && state.index == index && state.peers == peers,
                "checkpoint {} does not hold what its name says",
                path.display()
            );
            states.push(state);
        }
        Ok(Some(states))
    }

    /// Deletes everything older than the `keep` newest complete checkpoints.
    pub fn prune(&self, keep: usize) {
        let complete = self.complete();
        let Some(&(oldest_kept, _)) = complete.get(keep.max(1) - 1) else {
            return;
        };
        for ((time, _), files) in self.files() {
            if time < oldest_kept {
                for (_, path) in files {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(time: u64, index: u64, peers: u64) -> WorkerState {
        WorkerState {
            time,
            index,
            peers,
            entities: Vec::new(),
            offsets: Vec::new(),
        }
    }

    #[test]
    fn only_complete_checkpoints_count_and_pruning_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert!(store.load_newest().unwrap().is_none());
        for t in [10, 20, 30] {
            store.write(&state(t, 0, 2)).unwrap();
            store.write(&state(t, 1, 2)).unwrap();
        }
        // Time 40 is half written (a crash): the newest complete one is 30.
        store.write(&state(40, 1, 2)).unwrap();
        assert_eq!(store.complete(), vec![(30, 2), (20, 2), (10, 2)]);
        let loaded = store.load_newest().unwrap().unwrap();
        assert_eq!(loaded, vec![state(30, 0, 2), state(30, 1, 2)]);
        store.prune(2);
        assert_eq!(store.complete(), vec![(30, 2), (20, 2)]);
        assert!(parse_name("00000000000000000040-w0001-of-0002.ckpt").is_some());
        // A corrupt file is refused with its name.
        let path = dir.path().join("00000000000000000030-w0000-of-0002.ckpt");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let err = format!("{:#}", store.load_newest().unwrap_err());
        assert!(
            err.contains("w0000-of-0002.ckpt") && err.contains("checksum"),
            "{err}"
        );
    }
}
