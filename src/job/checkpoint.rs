//! The checkpoint protocol in one place: when checkpoints are taken (`protocol`), what a
//! worker writes (its entities' state and its partitions' resume positions), what a
//! restart restores, and which checkpoint it starts from.
//!
//! The file format (abomonation behind a magic, version and checksum) and the
//! directory of files are [`crate::checkpoint`]'s.

mod protocol;
mod reshape;

pub use protocol::{offset_entry, Checkpointer, Rise, RiseLog};

use super::entity::Entity;
use super::read::Inputs;
use super::Job;
use crate::checkpoint::state::{EntityState, WorkerState};
use crate::checkpoint::store::Store;
use crate::checkpoint::Bytes;
use crate::dataflow::Time;
use std::collections::BTreeMap;
use timely::dataflow::ProbeHandle;

/// Checkpointing for a job: on, and what to restore (if anything).
#[derive(Debug, Default)]
pub struct Checkpoints {
    /// The checkpoint to resume from.
    pub restore: Option<Restore>,
}

/// A complete checkpoint, loaded: every worker's file.
#[derive(Debug)]
pub struct Restore {
    /// Its event time.
    pub time: Time,
    states: Vec<WorkerState>,
    progress: BTreeMap<(String, i32), Time>,
    offsets: BTreeMap<(String, i32), i64>,
}

impl Restore {
    /// From the files of one complete checkpoint.
    pub fn new(states: Vec<WorkerState>) -> anyhow::Result<Self> {
        let time = states.first().map_or(0, |s| s.time);
        let (mut progress, mut offsets) = (BTreeMap::new(), BTreeMap::new());
        for o in states.iter().flat_map(|s| &s.offsets) {
            let topic = o
                .topic
                .to_vec()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| anyhow::anyhow!("checkpoint holds a malformed topic name"))?;
            let key = (topic, i32::try_from(o.partition)?);
            progress.insert(key.clone(), o.progress);
            offsets.insert(key, o.offset);
        }
        Ok(Restore {
            time,
            states,
            progress,
            offsets,
        })
    }

    /// Where to start each partition.
    pub fn offsets(&self) -> &BTreeMap<(String, i32), i64> {
        &self.offsets
    }

    /// A partition's event-time progress to restore.
    pub fn progress(&self, tp: &(String, i32)) -> Option<Time> {
        self.progress.get(tp).copied()
    }

    /// The entities the checkpoint holds state for.
    pub fn entities(&self) -> std::collections::BTreeSet<String> {
        self.states
            .iter()
            .flat_map(|s| &s.entities)
            .filter_map(|e| e.name.to_vec().and_then(|b| String::from_utf8(b).ok()))
            .collect()
    }

    /// The partitions a side of topic `topic` had when the checkpoint was written.
    pub fn partitions(&self, topic: &str) -> usize {
        self.offsets.keys().filter(|(t, _)| t == topic).count()
    }

    /// Restores entity `name`'s keys (and their episodes) that route to worker `index`
    /// of `peers`, whatever the number of workers that wrote the checkpoint. An entity
    /// whose inputs are co-partitioned (`Some` of its partitions a side) keeps a key
    /// where its partition is read, and a file does not say which of the writer's
    /// partitions a key came from: each file is restored whole by the worker that now
    /// reads all its partitions, on the same number of workers, a divisor of it, or any
    /// number where each file held at most one partition; another shape is an error
    /// that names those that fit.
    pub fn apply(
        &self,
        name: &str,
        co_partitioned: Option<usize>,
        index: usize,
        peers: usize,
        state: &crate::dataflow::State,
    ) -> anyhow::Result<()> {
        use differential_dataflow::hashable::Hashable;
        let files = match co_partitioned {
            Some(partitions) => Some(self.co_partitioned_files(name, partitions, index, peers)?),
            None => None,
        };
        let mine = |key: &Bytes| {
            files.is_some()
                || key.to_vec().is_some_and(|k| {
                    crate::row::Key::from_encoded(&k).hashed() % peers as u64 == index as u64
                })
        };
        let entity = || {
            self.states
                .iter()
                .filter(|s| {
                    files
                        .as_ref()
                        .is_none_or(|f| f.contains(&(s.index as usize)))
                })
                .flat_map(|s| &s.entities)
                .filter(|e| e.name.to_vec().as_deref() == Some(name.as_bytes()))
        };
        let keys: Vec<_> = entity()
            .flat_map(|e| &e.keys)
            .filter(|e| mine(&e.key))
            .cloned()
            .collect();
        state.sides.restore(&keys)?;
        for e in entity() {
            let floor = |f: &Option<Bytes>| f.as_ref().and_then(Bytes::to_vec);
            state
                .sides
                .restore_floors([floor(&e.source_floor), floor(&e.target_floor)]);
        }
        let episodes: Vec<_> = entity()
            .flat_map(|e| &e.episodes)
            .filter(|e| mine(&e.key))
            .cloned()
            .collect();
        state.sides.restore_episodes(&episodes)
    }

    /// The files worker `index` of `peers` restores for co-partitioned entity `name`,
    /// of `partitions` a side (see [`reshape`]).
    fn co_partitioned_files(
        &self,
        name: &str,
        partitions: usize,
        index: usize,
        peers: usize,
    ) -> anyhow::Result<Vec<usize>> {
        let written = self.states.first().map_or(peers, |s| s.peers as usize);
        if partitions == 0 {
            // No partitions on record (inputs that are not Kafka's): only the same
            // shape is known to keep each key where its partition is read.
            anyhow::ensure!(
                written == peers,
                "entity {name} declares co_partitioned, and its checkpoint at {} was \
                 written by {written} workers and records no partitions: restore it on \
                 {written} workers, or start from the beginning",
                self.time
            );
            return Ok(vec![index]);
        }
        reshape::files(partitions, written, index, peers).map_err(|s| {
            let fits: Vec<String> = s.fits.iter().map(usize::to_string).collect();
            anyhow::anyhow!(
                "entity {name} declares co_partitioned, and its checkpoint at {} was \
                 written by {written} workers over {partitions} partitions a side: the keys \
                 worker {} wrote came from partitions {} and {}, which two of {peers} \
                 workers would read (a co-partitioned key is kept where its partition is \
                 read); restore it on {} workers, or start from the beginning",
                self.time,
                s.file,
                s.partitions[0],
                s.partitions[1],
                fits.join(" or ")
            )
        })
    }
}

/// Loads the newest complete checkpoint in `spec`'s directory, unless `from_beginning`.
/// A checkpoint that cannot be used means a replay from the earliest offsets, said in
/// one line, or, with `require`, an error.
pub fn load(
    spec: &crate::spec::Checkpoint,
    from_beginning: bool,
    require: bool,
) -> anyhow::Result<Checkpoints> {
    let store = Store::new(&spec.dir);
    let loaded = if from_beginning {
        None
    } else {
        match store.load_newest() {
            Ok(found) => found,
            Err(e) if require => return Err(e.context("--require-checkpoint: not replaying")),
            Err(e) => {
                eprintln!("driftwatch: {e:#}; replaying from the earliest offsets instead");
                None
            }
        }
    };
    let restore = loaded.map(Restore::new).transpose()?;
    if let Some(r) = &restore {
        eprintln!(
            "resuming from the checkpoint at event time {} in {}",
            crate::row::format_timestamp(r.time as i64 * 1_000_000),
            store.dir().display()
        );
    }
    Ok(Checkpoints { restore })
}

impl Restore {
    /// Says in one line each which of `entities` (name, input topics) the checkpoint
    /// does not hold (they start afresh) and which it holds that are not among them
    /// (their state is dropped). A new entity's topic that the checkpoint has offsets
    /// for (one shared with a checkpointed entity) resumes at them, not at the start.
    pub fn report_entities(&self, entities: &[(&str, Vec<&str>)]) {
        let held = self.entities();
        for (name, topics) in entities.iter().filter(|(n, _)| !held.contains(*n)) {
            let resumed: Vec<&str> = topics
                .iter()
                .copied()
                .filter(|t| self.offsets.keys().any(|(topic, _)| topic == t))
                .collect();
            if resumed.is_empty() {
                eprintln!(
                    "driftwatch: entity {name} is new since the checkpoint: it starts from the earliest offsets (or --start-offset)"
                );
            } else {
                eprintln!(
                    "driftwatch: entity {name} is new since the checkpoint: {} shared with checkpointed entities resume(s) at the checkpoint's offsets, so its earlier changes there are not read (--from-beginning reads them); its other topics start from the earliest offsets",
                    resumed.join(", ")
                );
            }
        }
        let names: Vec<&str> = entities.iter().map(|(n, _)| *n).collect();
        for name in held.iter().filter(|n| !names.contains(&n.as_str())) {
            eprintln!("driftwatch: entity {name} is in the checkpoint but not in this job: its state is dropped");
        }
    }
}

/// One worker's part in checkpoints: off, or the protocol with what it writes.
pub(super) struct Checkpointing {
    protocol: Option<Checkpointer>,
}

impl Checkpointing {
    /// Joins the protocol when the job takes checkpoints (every entity of a job shares
    /// one `[checkpoint]`: see `run::kafka`), starting after the restored one.
    pub(super) fn new(
        worker: &mut timely::worker::Worker,
        jobs: &[Job],
        checkpoints: Option<&Checkpoints>,
    ) -> Self {
        let spec = jobs.first().and_then(|j| j.spec.checkpoint.as_ref());
        let protocol = match (spec, checkpoints) {
            (Some(c), Some(k)) => {
                let start = k.restore.as_ref().map_or(0, |r| r.time);
                Some(Checkpointer::new(worker, c, start))
            }
            _ => None,
        };
        Checkpointing { protocol }
    }

    /// Whether checkpoints are taken.
    pub(super) fn on(&self) -> bool {
        self.protocol.is_some()
    }

    /// Restores this worker's share of `checkpoints`' restore: every entity's keys that
    /// route here, and each partition's progress.
    pub(super) fn restore(
        &self,
        worker: &timely::worker::Worker,
        checkpoints: Option<&Checkpoints>,
        jobs: &[Job],
        entities: &[Entity],
        inputs: &mut Inputs,
    ) -> anyhow::Result<()> {
        let Some(r) = checkpoints.and_then(|k| k.restore.as_ref()) else {
            return Ok(());
        };
        if !self.on() {
            return Ok(());
        }
        let (index, peers) = (worker.index(), worker.peers());
        for (job, entity) in jobs.iter().zip(entities) {
            let co = job.spec.co_partitioned.then(|| {
                let topic = job.spec.source.input.topics.first();
                topic.map_or(0, |t| r.partitions(t))
            });
            r.apply(&job.spec.entity, co, index, peers, &entity.state)?;
        }
        for p in inputs.all.iter_mut() {
            if let Some(progress) = p.part.topic_partition().and_then(|tp| r.progress(&tp)) {
                p.progress = progress;
            }
        }
        Ok(())
    }

    /// The time the inputs must not pass until the current boundary is settled.
    pub(super) fn hold(&self) -> Time {
        self.protocol.as_ref().map_or(Time::MAX, Checkpointer::hold)
    }

    /// This worker has read everything (see [`Checkpointer::finished`]).
    pub(super) fn finished(&mut self) {
        if let Some(c) = self.protocol.as_mut() {
            c.finished();
        }
    }

    /// Checkpoint files this worker wrote.
    pub(super) fn written(&self) -> u64 {
        self.protocol.as_ref().map_or(0, |c| c.written)
    }

    /// Advances the protocol: writes this worker's state when a checkpoint is decided
    /// (worker 0 delivers its outputs first), and forgets the rises no later
    /// checkpoint needs.
    pub(super) fn step(
        &mut self,
        probe: &ProbeHandle<Time>,
        jobs: &[Job],
        entities: &[Entity],
        inputs: &mut Inputs,
    ) -> anyhow::Result<()> {
        let Some(c) = self.protocol.as_mut() else {
            return Ok(());
        };
        let least = inputs.least();
        let snap = |b| snapshot(b, jobs, entities, inputs);
        let flush = || entities.iter().try_for_each(Entity::flush);
        if c.step(probe, least, snap, flush)? {
            let keep_from = c.hold();
            inputs.all.iter_mut().for_each(|p| p.rises.trim(keep_from));
        }
        Ok(())
    }
}

/// This worker's state at checkpoint time `b` (index and peers are filled in later):
/// every entity's, and every partition's resume position.
fn snapshot(b: Time, jobs: &[Job], entities: &[Entity], inputs: &Inputs) -> WorkerState {
    let offsets = inputs
        .all
        .iter()
        .filter_map(|p| {
            let (topic, partition) = p.part.topic_partition()?;
            let next = p.part.resume_position()?;
            Some(offset_entry(
                &topic,
                partition,
                p.rises.resume(b, next, p.progress),
            ))
        })
        .collect();
    let entities = jobs
        .iter()
        .zip(entities)
        .map(|(job, e)| {
            let [source_floor, target_floor] = e
                .state
                .sides
                .floors()
                .map(|f| f.map(|b| Bytes::from(&b[..])));
            EntityState {
                name: Bytes::from(job.spec.entity.as_bytes()),
                keys: e.state.sides.snapshot(),
                episodes: e.state.sides.episodes(),
                source_floor,
                target_floor,
            }
        })
        .collect();
    WorkerState {
        time: b,
        index: 0,
        peers: 0,
        entities,
        offsets,
    }
}
