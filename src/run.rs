//! A whole job: timely workers, their partitions, the dataflow, outputs, and the summary.

mod kafka;

pub use kafka::run_many as run_kafka_many;

use crate::cdc::SideId;
use crate::dataflow::{DriftKind, Sink, Stats};
use crate::io::driver::{run_worker, Job, SizeSamples};
use crate::io::file::{FileOutputs, FilePartition};
use crate::io::Partition;
use crate::spec::Spec;
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Makes the partitions of worker `index` of `peers`.
pub type PartitionFactory =
    Arc<dyn Fn(usize, usize) -> anyhow::Result<Vec<Box<dyn Partition>>> + Send + Sync>;

/// Makes the sink, on worker 0.
pub type SinkFactory = Arc<dyn Fn() -> Box<dyn Sink> + Send + Sync>;

/// Makes the partitions of worker `index` of `peers` for a job of several entities, each
/// tagged with its entity's index.
pub type EntityPartitionFactory =
    Arc<dyn Fn(usize, usize) -> anyhow::Result<Vec<(usize, Box<dyn Partition>)>> + Send + Sync>;

/// Makes entity `e`'s sink, on worker 0.
pub type EntitySinkFactory = Arc<dyn Fn(usize) -> Box<dyn Sink> + Send + Sync>;

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

/// What a finished job reports.
pub struct Report {
    /// Counters (the process's; with one entity, also the entity's).
    pub stats: Arc<Stats>,
    /// Each entity's name and counters.
    pub entities: Vec<(String, Arc<Stats>)>,
    /// Wall-clock time.
    pub elapsed: Duration,
    /// State sizes sampled by each worker of this process.
    pub samples: Vec<SizeSamples>,
}

/// Runs `spec` over the partitions `parts` makes, delivering outputs to `sink`.
pub fn execute(
    spec: &Spec,
    cluster: &Cluster,
    parts: PartitionFactory,
    sink: Option<SinkFactory>,
    sample_every: u64,
) -> anyhow::Result<Report> {
    execute_with(
        spec,
        cluster,
        parts,
        sink,
        sample_every,
        Arc::default(),
        None,
    )
}

/// [`execute`], counting into `stats` (which metrics may be serving).
pub fn execute_with(
    spec: &Spec,
    cluster: &Cluster,
    parts: PartitionFactory,
    sink: Option<SinkFactory>,
    sample_every: u64,
    stats: Arc<Stats>,
    checkpoints: Option<Arc<crate::io::checkpointer::Checkpoints>>,
) -> anyhow::Result<Report> {
    let parts: EntityPartitionFactory = Arc::new(move |index, peers| {
        Ok(parts(index, peers)?.into_iter().map(|p| (0, p)).collect())
    });
    let sinks = sink.map(|f| Arc::new(move |_| f()) as EntitySinkFactory);
    execute_entities(
        jobs_of(std::slice::from_ref(spec), &stats),
        cluster,
        parts,
        sinks,
        sample_every,
        stats,
        checkpoints,
    )
}

/// The jobs of `specs`: one entity alone counts into the process's `stats` (as ever);
/// several count each into their own, and publish their own source schema.
pub(crate) fn jobs_of(specs: &[Spec], stats: &Arc<Stats>) -> Vec<Job> {
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
            }
        })
        .collect()
}

/// Runs several entities in one cluster: every entity's dataflow on every worker, its
/// partitions (tagged with its index in `jobs`) spread over the workers, its outputs to
/// the sink `sinks` makes for it.
pub fn execute_entities(
    jobs: Vec<Job>,
    cluster: &Cluster,
    parts: EntityPartitionFactory,
    sinks: Option<EntitySinkFactory>,
    sample_every: u64,
    stats: Arc<Stats>,
    checkpoints: Option<Arc<crate::io::checkpointer::Checkpoints>>,
) -> anyhow::Result<Report> {
    crate::alloc::configure();
    let started = Instant::now();
    let entities: Vec<(String, Arc<Stats>)> = jobs
        .iter()
        .map(|j| (j.spec.entity.clone(), j.stats.clone()))
        .collect();
    let jobs = Arc::new(jobs);
    let worker_stats = stats.clone();
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
            run_worker(
                worker,
                &jobs,
                parts,
                worker_stats.clone(),
                sinks,
                sample_every,
                checkpoints.clone(),
            )
        });
        if let Err(e) = &result {
            // The first failure is the cause; the others stop because of it.
            let cause = format!("worker {index} failed: {e:#}");
            if processes > 1 {
                crate::failure::exit(&cause);
            }
            worker_stats.set_worker_failure(cause);
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
        return Err(match stats.worker_failure() {
            Some(cause) => anyhow::anyhow!(cause),
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

/// One partition per side, made by `make` from that side's data, assigned to workers
/// like every other input (the demo's and the load test's generated streams).
pub fn per_side<L: Clone + Send + Sync + 'static>(
    source: L,
    target: L,
    make: impl Fn(SideId, L) -> Box<dyn Partition> + Send + Sync + 'static,
) -> PartitionFactory {
    Arc::new(move |index, peers| {
        let sides = [
            (SideId::Source, source.clone()),
            (SideId::Target, target.clone()),
        ];
        Ok(assigned(sides, index, peers)
            .map(|(side, data)| make(side, data))
            .collect())
    })
}

/// One entity's input files in a file-mode job.
#[derive(Debug, Clone)]
pub struct EntityFiles {
    /// The entity's spec.
    pub spec: Spec,
    /// Its source's files.
    pub source: Vec<PathBuf>,
    /// Its target's files.
    pub target: Vec<PathBuf>,
}

/// Runs `spec` in file mode, writing the three JSONL outputs to `out`.
pub fn run_files(
    spec: &Spec,
    cluster: &Cluster,
    source: Vec<PathBuf>,
    target: Vec<PathBuf>,
    out: &Path,
) -> anyhow::Result<Report> {
    let entity = EntityFiles {
        spec: spec.clone(),
        source,
        target,
    };
    run_files_many(&[entity], cluster, out)
}

/// Runs several entities in file mode, in one cluster, writing every entity's outputs to
/// the three JSONL files in `out` (each line names its entity).
pub fn run_files_many(
    entities: &[EntityFiles],
    cluster: &Cluster,
    out: &Path,
) -> anyhow::Result<Report> {
    let mut all: Vec<(usize, SideId, PathBuf)> = Vec::new();
    for (e, files) in entities.iter().enumerate() {
        for (side, paths) in [
            (SideId::Source, &files.source),
            (SideId::Target, &files.target),
        ] {
            for path in paths {
                std::fs::metadata(path)
                    .with_context(|| format!("cannot read input {}", path.display()))?;
                all.push((e, side, path.clone()));
            }
        }
    }
    let outputs = FileOutputs::create(out)?;
    let sink_outputs = outputs.clone();
    let names: Vec<String> = entities.iter().map(|e| e.spec.entity.clone()).collect();
    let parts: EntityPartitionFactory = Arc::new(move |index, peers| {
        assigned(all.iter(), index, peers)
            .map(|(e, side, path)| {
                FilePartition::open(*side, path).map(|p| (*e, Box::new(p) as Box<dyn Partition>))
            })
            .collect()
    });
    let stats = Arc::new(Stats::default());
    let specs: Vec<Spec> = entities.iter().map(|e| e.spec.clone()).collect();
    let jobs = jobs_of(&specs, &stats);
    let report = execute_entities(
        jobs,
        cluster,
        parts,
        Some(Arc::new(move |e| sink_outputs.sink(&names[e]))),
        u64::MAX,
        stats,
        None,
    )?;
    outputs.flush()?;
    Ok(report)
}

/// Kafka-mode options beyond the spec.
#[derive(Debug, Clone, Default)]
pub struct KafkaOptions {
    /// Start offsets by (topic, partition); others start at the earliest offset.
    pub starts: std::collections::BTreeMap<(String, i32), i64>,
    /// Read up to the high watermarks seen at start, then end time and exit.
    pub stop_at_end: bool,
    /// Serve Prometheus metrics on this address.
    pub metrics_addr: Option<String>,
    /// Ignore checkpoints: replay every partition from its earliest offset.
    pub from_beginning: bool,
    /// Stop, rather than replay from the earliest offsets, when the newest checkpoint
    /// cannot be used.
    pub require_checkpoint: bool,
}

/// Runs `spec` on Kafka: its input topics in, its output topics (created when missing)
/// out. Runs until SIGINT/SIGTERM, or with `stop_at_end` until the inputs' ends.
pub fn run_kafka(spec: &Spec, cluster: &Cluster, options: KafkaOptions) -> anyhow::Result<Report> {
    kafka::run_many(std::slice::from_ref(spec), cluster, options)
}

/// A sink that could not be made: its first emit reports why.
pub(crate) struct FailedSink(pub(crate) String);

impl Sink for FailedSink {
    fn emit(
        &mut self,
        _: crate::dataflow::Time,
        _: &[crate::dataflow::Output],
    ) -> anyhow::Result<()> {
        anyhow::bail!("{}", self.0)
    }
}

impl Report {
    /// Messages read over both sides of every entity.
    pub fn events_read(&self) -> u64 {
        self.entities
            .iter()
            .flat_map(|(_, s)| {
                SideId::BOTH
                    .map(|side| s.side(side).read.load(std::sync::atomic::Ordering::Relaxed))
            })
            .sum()
    }

    /// The human summary printed at exit: each entity's counters (under its name when
    /// there are several), then the job's.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        use std::sync::atomic::Ordering::Relaxed;
        let mut out = String::new();
        for (name, s) in &self.entities {
            if self.entities.len() > 1 {
                let _ = writeln!(out, "[{name}]");
            }
            entity_summary(&mut out, s);
        }
        let secs = self.elapsed.as_secs_f64();
        let _ = write!(
            out,
            "elapsed {:.3}s, {:.0} events/s",
            secs,
            self.events_read() as f64 / secs.max(1e-9)
        );
        let checkpoints = self.stats.checkpoints.load(Relaxed);
        if checkpoints > 0 {
            let _ = write!(out, ", {checkpoints} checkpoint files written");
        }
        if let Some(rss) = peak_rss_bytes() {
            let _ = write!(out, ", peak RSS {:.1} MiB", rss as f64 / (1 << 20) as f64);
        }
        out
    }
}

/// One entity's counters: its sides, its open drift, its sync lag.
fn entity_summary(out: &mut String, s: &Stats) {
    use std::fmt::Write as _;
    use std::sync::atomic::Ordering::Relaxed;
    for side in SideId::BOTH {
        let c = s.side(side);
        let _ = writeln!(
            out,
            "{:<6}: read {}, applied {}, duplicate {}, stale {}, rejected {}, tombstones {}",
            side.name(),
            c.read.load(Relaxed),
            c.applied.load(Relaxed),
            c.duplicate.load(Relaxed),
            c.stale.load(Relaxed),
            c.rejected.load(Relaxed),
            c.skipped.load(Relaxed)
        );
        let mut others = vec![format!("truncate {}", c.truncates.load(Relaxed))];
        for kind in crate::cdc::NonRow::ALL {
            others.push(format!(
                "{} {}",
                kind.name(),
                c.non_row[kind as usize].load(Relaxed)
            ));
        }
        let _ = writeln!(out, "        not row changes: {}", others.join(", "));
    }
    let open: Vec<String> = DriftKind::ALL
        .iter()
        .map(|k| format!("{} {}", k.name(), s.open(*k)))
        .collect();
    let _ = writeln!(
        out,
        "open drift: {}; drift records {}, corrections {}",
        open.join(", "),
        s.drift_records.load(Relaxed),
        s.corrections.load(Relaxed)
    );
    if let Ok(h) = s.sync_lag.lock() {
        if !h.is_empty() {
            let _ = writeln!(
                out,
                "sync lag (ms of event time, {} differences healed): p50 {}, p99 {}, max {}",
                h.len(),
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.max()
            );
        }
    }
}

/// This process's peak resident set size (`VmHWM`), where `/proc` has it (Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    proc_status_bytes("VmHWM:")
}

/// This process's current resident set size (`VmRSS`), where `/proc` has it (Linux).
pub fn current_rss_bytes() -> Option<u64> {
    proc_status_bytes("VmRSS:")
}

fn proc_status_bytes(field: &str) -> Option<u64> {
    process_status_bytes("self", field)
}

/// A memory figure (`VmRSS:`, `VmHWM:`, …) of process `pid` (`self` for this one) from
/// `/proc` (Linux), in bytes.
pub fn process_status_bytes(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
