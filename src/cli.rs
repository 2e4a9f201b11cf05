//! The command line: `run`, `validate`, `init`, `demo`, `report`, `loadtest`.

use crate::run::Cluster;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// driftwatch: continuous drift detection between a system of record and its copies.
#[derive(Debug, Parser)]
#[command(name = "driftwatch", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a job spec (file mode: `--source-file`/`--target-file`, or the spec's files).
    Run(Box<RunArgs>),
    /// Check specs (files, or directories of `*.toml`), report every problem at once,
    /// including what cannot work together in one job, and print the resolved
    /// configuration of a single spec.
    Validate {
        /// The job specs (TOML files or directories).
        #[arg(required = true)]
        specs: Vec<PathBuf>,
    },
    /// Write one spec per table found under a source and a target topic prefix
    /// (Debezium's `<prefix>.<schema>.<table>`), from one message of each topic.
    Init(InitArgs),
    /// Run the embedded default: generated orders with injected faults, no broker needed.
    Demo(DemoArgs),
    /// Render the current open drift from the drift topics of one or more specs.
    Report(ReportArgs),
    /// Load-test the detector: generated CDC with injected faults at a target rate, fed
    /// in real time, scored against the ground truth (in process, or through a broker
    /// with `--brokers`).
    Loadtest(Box<LoadtestArgs>),
}

/// Options of `loadtest` (each overrides the profile's value).
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct LoadtestArgs {
    /// Print help (`-h` is not used here, for symmetry with `run`).
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// A TOML profile (fields as the overrides below, e.g. `rate = 5000`).
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Source changes per second.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds to generate.
    #[arg(long = "duration")]
    pub duration_s: Option<f64>,
    /// Distinct order ids.
    #[arg(long)]
    pub keys: Option<u64>,
    /// Random seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Grace period, e.g. `2s`.
    #[arg(long)]
    pub grace: Option<crate::spec::Duration>,
    /// Median replication lag in ms (lognormal).
    #[arg(long = "lag-median-ms")]
    pub lag_median_ms: Option<f64>,
    /// The replication lag's 99th percentile in ms (default 10× the median).
    #[arg(long = "lag-p99-ms")]
    pub lag_p99_ms: Option<f64>,
    /// Share of changes to an existing order that delete it (the rest update it).
    #[arg(long = "p-delete")]
    pub p_delete: Option<f64>,
    /// Probability that the replica drops a change.
    #[arg(long = "p-drop")]
    pub p_drop: Option<f64>,
    /// Probability that the replica corrupts a change.
    #[arg(long = "p-corrupt")]
    pub p_corrupt: Option<f64>,
    /// Probability of an extra row on the replica, per source change.
    #[arg(long = "p-extra")]
    pub p_extra: Option<f64>,
    /// Probability that a replica event is delivered twice.
    #[arg(long = "p-duplicate")]
    pub p_duplicate: Option<f64>,
    /// Probability that an old replica event is redelivered.
    #[arg(long = "p-redeliver")]
    pub p_redeliver: Option<f64>,
    /// Probability that a replica event is delivered late, behind later ones.
    #[arg(long = "p-reorder")]
    pub p_reorder: Option<f64>,
    /// How far (ms of event time) a late replica event may fall behind.
    #[arg(long = "reorder-ms")]
    pub reorder_ms: Option<u64>,
    /// Close the loop: apply the corrections to the replica, report time to repair and
    /// to convergence.
    #[arg(long = "close-loop")]
    pub close_loop: bool,
    /// Stall the replica's partition this many seconds into the run (with --stall-for).
    #[arg(long = "stall-at")]
    pub stall_at_s: Option<f64>,
    /// How long the replica's partition stalls, in seconds.
    #[arg(long = "stall-for")]
    pub stall_for_s: Option<f64>,
    /// Worker threads (of the job, in Kafka mode).
    #[arg(short = 'w', long = "workers", default_value_t = 1)]
    pub workers: usize,
    /// Kafka mode: produce the load to this broker (`host:port`), run the detector as a
    /// `driftwatch run` job on fresh topics, and score its drift topic.
    #[arg(long)]
    pub brokers: Option<String>,
    /// Kafka mode: the job's `kafka.clock_skew` (how far behind the wall clock an idle
    /// input's time is held). The load and the job share this host's clock, so it only
    /// has to cover the produce-to-consume delay, which through a slow broker can pass
    /// 100 ms; while the replica's stream pauses (a lag spike), it bounds detection
    /// latency.
    #[arg(long = "clock-skew", default_value = "1s")]
    pub clock_skew: crate::spec::Duration,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write the SVG chart here.
    #[arg(long)]
    pub chart: Option<PathBuf>,
}

/// Options of `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Read the topics from these Kafka bootstrap servers.
    #[arg(
        long,
        required_unless_present = "from_files",
        conflicts_with = "from_files"
    )]
    pub brokers: Option<String>,
    /// A Kafka client property for reaching the brokers, `NAME=VALUE` (repeatable), e.g.
    /// `-X security.protocol=SASL_SSL -X 'sasl.password=${KAFKA_PASSWORD}'`. The written
    /// specs carry them in `[kafka.properties]` as given; a secret (a name containing
    /// `password`, `secret`, `jaas` or `key`) must be a `${VAR}` read from the
    /// environment, so that no spec holds it.
    #[arg(short = 'X', long = "property", value_name = "NAME=VALUE")]
    pub properties: Vec<String>,
    /// Read sample dumps instead: a directory of `<topic>.jsonl` files (one message value
    /// per line, or `{"key": …, "value": …}`).
    #[arg(long = "from-files")]
    pub from_files: Option<PathBuf>,
    /// The source's topic prefix (its connector's `topic.prefix`).
    #[arg(long = "source-prefix")]
    pub source_prefix: String,
    /// The target's topic prefix.
    #[arg(long = "target-prefix")]
    pub target_prefix: String,
    /// The directory to write the specs to.
    #[arg(long)]
    pub out: PathBuf,
    /// Overwrite specs that exist.
    #[arg(long)]
    pub force: bool,
}

/// How `report` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// A human summary and a table of the top entities.
    Table,
    /// One JSON document.
    Json,
}

/// Options of `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The job specs (TOML files or directories) whose drift topics to read.
    #[arg(required = true)]
    pub specs: Vec<PathBuf>,
    /// Kafka bootstrap servers, instead of the first spec's `kafka.brokers`.
    #[arg(long)]
    pub brokers: Option<String>,
    /// Read this drift topic instead of the specs' (repeatable).
    #[arg(long = "drift-topic")]
    pub drift_topic: Vec<String>,
    /// How many records (and fields) to list, oldest drift first.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
    /// Keep reading and print the report again whenever it changes.
    #[arg(long)]
    pub follow: bool,
}

/// Timely cluster options, as timely names them.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Worker threads per process.
    #[arg(short = 'w', long = "workers", default_value_t = 1)]
    pub workers: usize,
    /// Number of processes in the cluster.
    #[arg(short = 'n', long = "processes", default_value_t = 1)]
    pub processes: usize,
    /// This process's index in the cluster.
    #[arg(short = 'p', long = "process", default_value_t = 0)]
    pub process: usize,
    /// File with one `host:port` line per process (`-h` as in timely).
    #[arg(short = 'h', long = "hostfile")]
    pub hostfile: Option<PathBuf>,
}

impl ClusterArgs {
    /// The cluster these options describe.
    pub fn cluster(&self) -> Cluster {
        Cluster {
            workers: self.workers,
            processes: self.processes,
            process: self.process,
            hostfile: self.hostfile.clone(),
        }
    }
}

/// Options of `run`.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help (`-h` is timely's hostfile option).
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// The job specs: TOML files, or directories of them (one entity each). With
    /// several, every entity runs in this one job, and the input overrides below are
    /// refused (they apply when one entity is given).
    #[arg(required = true)]
    pub specs: Vec<PathBuf>,
    /// Read the source from this JSONL file instead of the spec's inputs (repeatable).
    #[arg(long = "source-file")]
    pub source_file: Vec<PathBuf>,
    /// Read the target from this JSONL file instead of the spec's inputs (repeatable).
    #[arg(long = "target-file")]
    pub target_file: Vec<PathBuf>,
    /// Write drift.jsonl, corrections.jsonl and dlq.jsonl to this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Kafka bootstrap servers, instead of the spec's `kafka.brokers`.
    #[arg(long)]
    pub brokers: Option<String>,
    /// Read the source from this topic instead of the spec's (repeatable).
    #[arg(long = "source-topic")]
    pub source_topic: Vec<String>,
    /// Read the target from this topic instead of the spec's (repeatable).
    #[arg(long = "target-topic")]
    pub target_topic: Vec<String>,
    /// Write drift records to this topic.
    #[arg(long = "drift-topic")]
    pub drift_topic: Option<String>,
    /// Write corrections to this topic.
    #[arg(long = "corrections-topic")]
    pub corrections_topic: Option<String>,
    /// Write dead letters to this topic.
    #[arg(long = "dlq-topic")]
    pub dlq_topic: Option<String>,
    /// Read every input partition from its earliest offset, ignoring checkpoints and
    /// `--start-offset`.
    #[arg(long = "from-beginning")]
    pub from_beginning: bool,
    /// Start one partition at an offset: `TOPIC:PARTITION:OFFSET` (repeatable).
    #[arg(long = "start-offset", value_parser = parse_start_offset)]
    pub start_offset: Vec<(String, i32, i64)>,
    /// Read each partition up to its high watermark at start, then end time (report
    /// every pending difference, deliver everything, exit), as with files.
    #[arg(long = "stop-at-end")]
    pub stop_at_end: bool,
    /// Write checkpoints to (and resume from) this directory, instead of the spec's
    /// `checkpoint.dir` (Kafka mode).
    #[arg(long = "checkpoint-dir")]
    pub checkpoint_dir: Option<PathBuf>,
    /// Stop, rather than replay from the earliest offsets, when the newest checkpoint is
    /// corrupt or from an incompatible version.
    #[arg(long = "require-checkpoint")]
    pub require_checkpoint: bool,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics (Kafka mode).
    #[arg(long = "metrics-addr")]
    pub metrics_addr: Option<String>,
    /// Cluster options.
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

fn parse_start_offset(text: &str) -> Result<(String, i32, i64), String> {
    let mut parts = text.rsplitn(3, ':');
    let (offset, partition, topic) = (parts.next(), parts.next(), parts.next());
    match (topic, partition.map(str::parse), offset.map(str::parse)) {
        (Some(t), Some(Ok(p)), Some(Ok(o))) if !t.is_empty() && p >= 0 && o >= 0 => {
            Ok((t.to_string(), p, o))
        }
        _ => Err(format!(
            "`{text}` is not TOPIC:PARTITION:OFFSET (e.g. orders:0:1500)"
        )),
    }
}

/// Options of `demo`.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct DemoArgs {
    /// Print help (`-h` is timely's hostfile option).
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Source change events to generate.
    #[arg(long, default_value_t = 20_000)]
    pub events: u64,
    /// Distinct order ids.
    #[arg(long, default_value_t = 2_000)]
    pub keys: u64,
    /// Random seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Messages per second to feed (both sides together); 0 = as fast as possible.
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Print at most this many drift records as they are detected.
    #[arg(long, default_value_t = 25)]
    pub show: usize,
    /// Cluster options.
    #[command(flatten)]
    pub cluster: ClusterArgs,
}
