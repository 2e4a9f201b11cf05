//! A job's lifecycle: a timely cluster whose workers read their partitions, feed every
//! entity's dataflow, take consistent checkpoints, and stop on the first failure.
//!
//! - `worker`: one worker's life, from building the dataflows to the last output;
//! - `read`: the read loop's parts: which partition to read next, and one batch of it
//!   decoded, stamped with event time and routed to its entities (`select`);
//! - `entity`: one entity's inputs on a worker;
//! - [`checkpoint`]: the checkpoint protocol, snapshots and restores, in one place;
//! - [`halt`]: a failure anywhere ends the whole cluster, with one line naming it;
//! - [`report`]: what a finished job reports, and the summary printed at exit.
//!
//! The adapters that make partitions and sinks (files, Kafka, generators) are in
//! [`crate::io`]; [`crate::run`] assembles them into a job.

pub mod checkpoint;
mod entity;
pub mod halt;
mod read;
pub mod report;
mod select;
mod worker;

pub use halt::Halt;
pub use report::Report;

use crate::dataflow::{Sink, Stats};
use crate::spec::Spec;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// One entity's part of a job.
pub(crate) struct Job {
    /// The entity's spec.
    pub(crate) spec: Arc<Spec>,
    /// The entity's counters (the process's own when the job has one entity).
    pub(crate) stats: Arc<Stats>,
    /// Where its source's Connect schema is published (for connect-json corrections).
    pub(crate) schema: crate::cdc::RowSchema,
    /// How every worker renders its outputs for the sink (`None`: the sink takes them
    /// as they are).
    pub(crate) render: Option<Arc<dyn crate::dataflow::Render>>,
}

impl Job {
    /// The jobs of `specs`: one entity alone counts into the process's `stats` (as ever);
    /// several count each into their own, and publish their own source schema.
    pub(crate) fn of(specs: &[Spec], stats: &Arc<Stats>) -> Vec<Job> {
        specs
            .iter()
            .map(|s| {
                let own = match specs.len() {
                    1 => stats.clone(),
                    _ => Arc::new(Stats::default()),
                };
                Job {
                    spec: Arc::new(s.clone()),
                    schema: own.source_schema.clone(),
                    stats: own,
                    render: None,
                }
            })
            .collect()
    }
}

/// Makes the partitions of worker `index` of `peers`, each with the entities' sides it
/// feeds.
pub(crate) type PartitionFactory =
    Arc<dyn Fn(usize, usize) -> anyhow::Result<Vec<crate::io::Routed>> + Send + Sync>;

/// Makes entity `e`'s sink, on worker 0.
pub(crate) type SinkFactory = Arc<dyn Fn(usize) -> Box<dyn Sink> + Send + Sync>;

/// Timely cluster options (`-w`, `-n`, `-p`, `-h`).
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    /// Worker threads per process.
    pub workers: usize,
    /// Number of processes.
    pub processes: usize,
    /// This process's index.
    pub process: usize,
    /// File of `host:port` lines, one per process.
    pub hostfile: Option<PathBuf>,
}

impl Cluster {
    /// One process with `workers` threads.
    pub fn local(workers: usize) -> Self {
        Cluster {
            workers,
            processes: 1,
            process: 0,
            hostfile: None,
        }
    }

    fn config(&self) -> anyhow::Result<timely::Config> {
        let mut args = vec![
            "-w".to_string(),
            self.workers.max(1).to_string(),
            "-n".into(),
            self.processes.max(1).to_string(),
            "-p".into(),
            self.process.to_string(),
        ];
        if let Some(h) = &self.hostfile {
            args.extend(["-h".to_string(), h.display().to_string()]);
        }
        timely::Config::from_args(args.into_iter())
            .map_err(|e| anyhow::anyhow!("bad cluster options: {e}"))
    }
}

/// Everything a job runs with, beside its cluster.
pub(crate) struct Plan {
    /// Its entities.
    pub(crate) jobs: Vec<Job>,
    /// Each worker's partitions.
    pub(crate) parts: PartitionFactory,
    /// Each entity's sink on worker 0 (`None`: outputs are only counted).
    pub(crate) sinks: Option<SinkFactory>,
    /// Sample the state's size every this many messages read (`u64::MAX`: never).
    pub(crate) sample_every: u64,
    /// The process's counters (which metrics may be serving).
    pub(crate) stats: Arc<Stats>,
    /// The first failure (which metrics may be serving).
    pub(crate) halt: Arc<Halt>,
    /// Checkpoints to take, and the one to restore.
    pub(crate) checkpoints: Option<Arc<checkpoint::Checkpoints>>,
}

/// Runs `plan` on `cluster`: every entity's dataflow on every worker, each partition
/// on one worker, every output to its entity's sink. The first failure of any worker
/// or output stops every worker of the process (and, in a cluster of several
/// processes, the process itself: see [`halt`]).
pub(crate) fn execute(plan: Plan, cluster: &Cluster) -> anyhow::Result<Report> {
    crate::alloc::configure();
    let started = Instant::now();
    let Plan {
        jobs,
        parts,
        sinks,
        sample_every,
        stats,
        halt,
        checkpoints,
    } = plan;
    let entities: Vec<(String, Arc<Stats>)> = jobs
        .iter()
        .map(|j| (j.spec.entity.clone(), j.stats.clone()))
        .collect();
    let jobs = Arc::new(jobs);
    let (worker_stats, worker_halt) = (stats.clone(), halt.clone());
    let processes = cluster.processes.max(1);
    let guards = timely::execute(cluster.config()?, move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let result = parts(index, peers).and_then(|parts| {
            let sinks = (0..jobs.len())
                .map(|e| match (index, &sinks) {
                    (0, Some(f)) => Some(f(e)),
                    _ => None,
                })
                .collect();
            let shared = worker::Shared {
                jobs: &jobs,
                stats: &worker_stats,
                halt: &worker_halt,
                checkpoints: checkpoints.as_deref(),
                sample_every,
            };
            worker::run(worker, &shared, parts, sinks)
        });
        if let Err(e) = &result {
            // The first failure is the cause; the others stop because of it.
            let cause = format!("worker {index} failed: {e:#}");
            if processes > 1 {
                halt::exit(&cause);
            }
            worker_halt.worker_failed(cause);
        }
        result
    })
    .map_err(|e| anyhow::anyhow!("cannot start the timely cluster: {e}"))?;
    let mut samples = Vec::new();
    let mut failed = None;
    for result in guards.join() {
        match result {
            Ok(Ok(s)) => samples.push(s),
            Ok(Err(e)) => failed = failed.or(Some(e)),
            Err(panic) => failed = failed.or(Some(anyhow::anyhow!("a worker panicked: {panic}"))),
        }
    }
    if let Some(e) = failed {
        return Err(match halt.worker_failure() {
            Some(cause) => anyhow::anyhow!("{cause}"),
            None => e,
        });
    }
    Ok(Report {
        stats,
        entities,
        elapsed: started.elapsed(),
        samples,
    })
}

/// The inputs worker `index` of `peers` reads, of `inputs` with their partition numbers:
/// where `by_partition`, those whose number is `index` modulo `peers`, so that partition
/// `i` of every side is read by one worker (inputs co-partitioned by key); else every
/// `peers`-th from `index`, as [`assigned`].
pub(crate) fn assigned_by<T>(
    inputs: impl IntoIterator<Item = (usize, T)>,
    by_partition: bool,
    index: usize,
    peers: usize,
) -> Vec<T> {
    let inputs = inputs.into_iter();
    match by_partition {
        true => inputs
            .filter(|(p, _)| p % peers.max(1) == index)
            .map(|(_, t)| t)
            .collect(),
        false => assigned(inputs.map(|(_, t)| t), index, peers).collect(),
    }
}

/// The items worker `index` of `peers` takes: every `peers`-th from `index`. This is the
/// static assignment of inputs to workers, the same in every run.
pub fn assigned<T>(
    items: impl IntoIterator<Item = T>,
    index: usize,
    peers: usize,
) -> impl Iterator<Item = T> {
    items
        .into_iter()
        .enumerate()
        .filter(move |(i, _)| i % peers == index)
        .map(|(_, t)| t)
}
