//! Jobs assembled from adapters: files, generated streams and Kafka topics as partitions,
//! output files and topics as sinks, run by [`crate::job`].

mod kafka;

pub use crate::job::report::{current_rss_bytes, peak_rss_bytes, process_status_bytes};
pub use crate::job::{assigned, Cluster, Report};
pub use kafka::run_many as run_kafka_many;

use crate::cdc::SideId;
use crate::dataflow::{Sink, Stats};
use crate::io::file::{FileOutputs, FilePartition};
use crate::io::{Partition, Route};
use crate::job::{assigned_by, checkpoint::Checkpoints, Job, Plan};
use crate::spec::Spec;
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Makes the partitions of worker `index` of `peers` (a job of one entity).
pub type PartitionFactory =
    Arc<dyn Fn(usize, usize) -> anyhow::Result<Vec<Box<dyn Partition>>> + Send + Sync>;

/// Makes the sink, on worker 0 (a job of one entity).
pub type SinkFactory = Arc<dyn Fn() -> Box<dyn Sink> + Send + Sync>;

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
    checkpoints: Option<Arc<Checkpoints>>,
) -> anyhow::Result<Report> {
    let parts: crate::job::PartitionFactory = Arc::new(move |index, peers| {
        Ok(parts(index, peers)?
            .into_iter()
            .map(|p| {
                let route = Route {
                    entity: 0,
                    side: p.side(),
                };
                (vec![route], p)
            })
            .collect())
    });
    let sinks = sink.map(|f| Arc::new(move |_| f()) as crate::job::SinkFactory);
    let plan = Plan {
        jobs: Job::of(std::slice::from_ref(spec), &stats),
        parts,
        sinks,
        sample_every,
        stats,
        halt: Arc::default(),
        checkpoints,
    };
    crate::job::execute(plan, cluster)
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

/// An input file's partition number: its place in the list of the side of the first
/// entity that reads it.
fn file_number(entities: &[EntityFiles], (routes, path): &(Vec<Route>, PathBuf)) -> usize {
    let Route { entity, side } = routes[0];
    entities[entity].place(side, path).unwrap_or(0)
}

/// Whether the files are read by partition number (an entity declares its inputs
/// co-partitioned): file `i` of every side on one worker. Refuses what cannot be: sides
/// of different numbers of files, or a file shared with another entity at another place.
fn co_partitioned_files(
    entities: &[EntityFiles],
    all: &[(Vec<Route>, PathBuf)],
) -> anyhow::Result<bool> {
    let mut any = false;
    for (e, files) in entities.iter().enumerate() {
        if !files.spec.co_partitioned {
            continue;
        }
        any = true;
        let name = &files.spec.entity;
        let (s, t) = (files.source.len(), files.target.len());
        anyhow::ensure!(
            s == t,
            "entity {name} declares co_partitioned, but has {s} source and {t} target \
             files: co-partitioned inputs have as many files on each side, file i of each \
             holding the same keys"
        );
        for input in all
            .iter()
            .filter(|(routes, _)| routes.iter().any(|r| r.entity == e))
        {
            let route = input.0.iter().find(|r| r.entity == e).expect("filtered");
            anyhow::ensure!(
                files.place(route.side, &input.1) == Some(file_number(entities, input)),
                "entity {name} declares co_partitioned, but reads {} at another place in its \
                 list than an entity it shares the file with: list shared files in the same \
                 place",
                input.1.display()
            );
        }
    }
    Ok(any)
}

impl EntityFiles {
    /// The place of `path` in `side`'s files, if it is one of them.
    fn place(&self, side: SideId, path: &Path) -> Option<usize> {
        let files = match side {
            SideId::Source => &self.source,
            SideId::Target => &self.target,
        };
        files.iter().position(|p| same_file(p, path))
    }
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
    // A file that several entities read (each taking its messages by `select`) is read
    // once, for all of them.
    let mut all: Vec<(Vec<Route>, PathBuf)> = Vec::new();
    for (entity, files) in entities.iter().enumerate() {
        for (side, paths) in [
            (SideId::Source, &files.source),
            (SideId::Target, &files.target),
        ] {
            for path in paths {
                std::fs::metadata(path)
                    .with_context(|| format!("cannot read input {}", path.display()))?;
                let same = |p: &PathBuf| same_file(p, path);
                let route = Route { entity, side };
                match all.iter_mut().find(|(_, p)| same(p)) {
                    Some((routes, _)) => routes.push(route),
                    None => all.push((vec![route], path.clone())),
                }
            }
        }
    }
    let by_partition = co_partitioned_files(entities, &all)?;
    let outputs = FileOutputs::create(out)?;
    let sink_outputs = outputs.clone();
    let names: Vec<String> = entities.iter().map(|e| e.spec.entity.clone()).collect();
    // A file's partition number is its place in its side's list.
    let numbered: Vec<(usize, (Vec<Route>, PathBuf))> = all
        .into_iter()
        .map(|input| (file_number(entities, &input), input))
        .collect();
    let parts: crate::job::PartitionFactory = Arc::new(move |index, peers| {
        let inputs = numbered.iter().map(|(n, input)| (*n, input));
        assigned_by(inputs, by_partition, index, peers)
            .into_iter()
            .map(|(routes, path)| {
                FilePartition::open(routes[0].side, path)
                    .map(|p| (routes.clone(), Box::new(p) as Box<dyn Partition>))
            })
            .collect()
    });
    let stats = Arc::new(Stats::default());
    let specs: Vec<Spec> = entities.iter().map(|e| e.spec.clone()).collect();
    let mut jobs = Job::of(&specs, &stats);
    for job in &mut jobs {
        job.render = Some(FileOutputs::render(&job.spec.entity));
    }
    let plan = Plan {
        jobs,
        parts,
        sinks: Some(Arc::new(move |e| sink_outputs.sink(&names[e]))),
        sample_every: u64::MAX,
        stats,
        halt: Arc::default(),
        checkpoints: None,
    };
    let report = crate::job::execute(plan, cluster)?;
    outputs.flush()?;
    Ok(report)
}

/// Whether two paths name one file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
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
