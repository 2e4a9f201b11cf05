//! `driftwatch loadtest`: generated CDC with injected faults, fed in real time through
//! the detector, scored against the ground truth.
//!
//! The generator (`demo::generator`) makes a source table's changes at the target rate
//! and a simulated replica with lognormal replication lag and faults. Its ground truth
//! is every episode in which a key's sides differ, replayed in event time as the engine
//! sees them; the ones that outlast the grace period must be reported, and nothing
//! else. Messages are released when the wall clock reaches their event time
//! ([`feed`]), so detection latency is the wall-clock time from an episode's
//! `since + grace` to its drift record ([`measure`]).
//!
//! Two modes: in process (no broker; the dataflow at full speed) and Kafka
//! ([`kafka`]: the load is produced to a broker, the detector runs as a `driftwatch
//! run` job, and its drift topic is consumed and scored).
//!
//! - [`config`]: the profile (TOML) and its command-line overrides;
//! - [`feed`]: real-time partitions;
//! - [`measure`]: scoring against the truth;
//! - [`kafka`]: the mode through a broker;
//! - [`repair`]: closing the loop (corrections applied to the replica);
//! - [`report`]: the JSON report and the human summary;
//! - [`chart`]: the SVG report.

pub mod chart;
pub mod config;
pub mod feed;
pub mod kafka;
pub mod measure;
pub mod repair;
pub mod report;

use crate::cdc::SideId;
use crate::demo::generator::{generate, GenConfig};
use crate::io::now_ms;
use crate::io::Partition;
use crate::run::Cluster;
use config::Profile;
use feed::TimedPartition;
use hdrhistogram::Histogram;
use measure::{MeasureSink, Scorer, Truth};
use report::loop_summary;
pub use report::{score, summary};
use serde_json::{json, Value};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a load test found.
#[derive(Debug)]
pub struct Outcome {
    /// The JSON report.
    pub report: Value,
    /// Input messages per second, sampled every second.
    pub throughput: Vec<f64>,
    /// Detection latencies beyond grace (ms), of episodes due while input flowed.
    pub latency: Histogram<u64>,
    /// Those of episodes due after the last message.
    pub tail_latency: Histogram<u64>,
}

/// The event time (`source.ts_ms`), order id and log position of a generated message.
fn event_meta(line: &str) -> anyhow::Result<(u64, i64, u64)> {
    let v: Value = serde_json::from_str(line)?;
    let env = v.get("payload").unwrap_or(&v);
    let row = if env["after"].is_null() {
        &env["before"]
    } else {
        &env["after"]
    };
    match (
        env["source"]["ts_ms"].as_u64(),
        row["id"].as_i64(),
        env["source"]["lsn"].as_u64(),
    ) {
        (Some(ts), Some(id), Some(lsn)) => Ok((ts, id, lsn)),
        _ => anyhow::bail!("generated message without source.ts_ms, source.lsn or id"),
    }
}

/// A generated load: both sides' messages with their event times, and the truth.
pub struct Prepared {
    /// Source messages with their event times, in release order.
    pub source: Arc<Vec<(u64, String)>>,
    /// Replica messages likewise.
    pub target: Arc<Vec<(u64, String)>>,
    /// The order id of each source message (its Kafka key), in the same order.
    pub source_ids: Vec<i64>,
    /// The order id of each replica message.
    pub target_ids: Vec<i64>,
    /// The log position (`source.lsn`) of each replica message.
    pub target_lsns: Arc<Vec<u64>>,
    /// Episodes that must be reported.
    pub truth: Arc<Truth>,
    /// The event time of the last message.
    pub last_ms: u64,
    /// When the feed ends (last event time + grace + 1 s).
    pub until: u64,
    /// Injected faults by name.
    pub injected: std::collections::BTreeMap<&'static str, u64>,
    /// Distinct keys that ever differed: nearly every key, since each insert opens an
    /// episode for the replication lag.
    pub keys: usize,
}

impl Prepared {
    /// Messages of both sides.
    pub fn messages(&self) -> u64 {
        (self.source.len() + self.target.len()) as u64
    }

    /// The replica's stall as a wall-clock window `[from, until)`, if the profile has one.
    pub fn stall(&self, p: &Profile) -> Option<(u64, u64)> {
        let first = self.source.first().map_or(0, |(t, _)| *t);
        p.stall_at_s.zip(p.stall_for_s).map(|(at, len)| {
            let from = first + (at * 1e3) as u64;
            (from, from + (len * 1e3) as u64)
        })
    }
}

/// Generates a load for `p`, starting its event times once generation is over.
pub fn prepare(p: &Profile) -> anyhow::Result<Prepared> {
    prepare_with_lead(p, 0)
}

/// [`prepare`], with event times starting `lead_ms` later still (time for a job to
/// start before its input does).
pub fn prepare_with_lead(p: &Profile, lead_ms: u64) -> anyhow::Result<Prepared> {
    let events = (p.rate * p.duration_s) as u64;
    anyhow::ensure!(events > 0, "rate × duration gives no events");
    // Event times start once generation is over (it usually runs at well over 50k
    // changes/s), so the feed begins on schedule instead of with a backlog. Where it
    // ran slower (a machine whose first touch of fresh memory is slow) and overran its
    // start, it runs again with a start that allows for the time it took.
    let mut allow_ms = 2_000 + events / 50;
    loop {
        let began = now_ms();
        let start = began + allow_ms + lead_ms;
        let prepared = prepare_from(p, events, start)?;
        let done = now_ms();
        if done + 1_000 < start || allow_ms > 600_000 {
            return Ok(prepared);
        }
        allow_ms = 2_000 + (done - began) * 3 / 2;
    }
}

/// [`prepare_with_lead`]'s load, its event times starting at `start` (ms).
fn prepare_from(p: &Profile, events: u64, start: u64) -> anyhow::Result<Prepared> {
    let g = generate(&GenConfig {
        events,
        keys: p.keys,
        seed: p.seed,
        start_ms: start,
        step_us: (1e6 / p.rate).max(1.0) as u64,
        lag_median_ms: p.lag_median_ms,
        lag_sigma: p.lag_sigma(),
        p_delete: p.p_delete,
        p_drop: p.p_drop,
        p_corrupt: p.p_corrupt,
        p_extra: p.p_extra,
        p_duplicate: p.p_duplicate,
        p_redeliver: p.p_redeliver,
        p_reorder: p.p_reorder,
        reorder_ms: p.reorder_ms,
        wrapped: false,
        note_len: 0,
    });
    let grace_ms = p.grace.as_millis();
    let truth: Truth = g
        .episodes
        .iter()
        .filter(|e| e.outlasts(grace_ms))
        .map(|e| (e.id, e.since))
        .collect();
    // The messages move (not copy) into the feed, so the memory they hold before the
    // run is the memory they hold during it.
    type Timed = (Arc<Vec<(u64, String)>>, Vec<i64>, Vec<u64>);
    let timed = |lines: Vec<String>| -> anyhow::Result<Timed> {
        let mut out = Vec::with_capacity(lines.len());
        let (mut ids, mut lsns) = (Vec::with_capacity(lines.len()), Vec::new());
        for l in lines {
            let (time, id, lsn) = event_meta(&l)?;
            out.push((time, l));
            ids.push(id);
            lsns.push(lsn);
        }
        Ok((Arc::new(out), ids, lsns))
    };
    let injected = g.injected.clone();
    let keys = report_keys(&g);
    let (source, source_ids, _) = timed(g.source)?;
    let (target, target_ids, target_lsns) = timed(g.target)?;
    let last = source
        .iter()
        .chain(target.iter())
        .map(|(t, _)| *t)
        .max()
        .unwrap_or(start);
    Ok(Prepared {
        source,
        target,
        source_ids,
        target_ids,
        target_lsns: Arc::new(target_lsns),
        truth: Arc::new(truth),
        last_ms: last,
        // With the loop closed, a correction may write a row the source has since
        // changed again: allow for a second round.
        until: last + grace_ms * if p.close_loop { 3 } else { 1 } + 1_000,
        injected,
        keys,
    })
}

/// Runs one load test in process.
pub fn run_in_process(p: &Profile, workers: usize) -> anyhow::Result<Outcome> {
    run_prepared(&prepare(p)?, p, workers)
}

/// What one run measured, before it is scored into a report.
pub struct Measured {
    /// Drift records scored as they arrived.
    pub scorer: Scorer,
    /// How late (ms) each message was released against its schedule.
    pub lateness: Histogram<u64>,
    /// Messages the detector read per second.
    pub throughput: Vec<f64>,
    /// Wall-clock seconds of the run.
    pub elapsed: f64,
    /// Messages the detector read.
    pub read: u64,
    /// The detector's peak resident memory and its resident memory before the load.
    pub rss: (u64, u64),
    /// Mode-specific facts for the report (`mode` and more).
    pub extra: serde_json::Map<String, Value>,
}

/// A progress bar and a once-a-second sample of the messages read: `sample` returns
/// (messages read so far, open drift), or `None` when it cannot tell this second.
pub fn sampler(
    total: u64,
    done: Arc<std::sync::atomic::AtomicBool>,
    sample: impl Fn() -> Option<(u64, i64)> + Send + 'static,
) -> std::thread::JoinHandle<Vec<f64>> {
    // indicatif draws only on a terminal.
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed:>4} [{bar:30}] {pos}/{len} messages  {msg}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    std::thread::spawn(move || {
        let mut series = Vec::new();
        let mut last = 0u64;
        while !done.load(Relaxed) {
            std::thread::sleep(Duration::from_secs(1));
            let Some((read, open)) = sample() else {
                continue;
            };
            series.push(read.saturating_sub(last) as f64);
            last = read;
            bar.set_position(read);
            let rate = series.last().copied().unwrap_or(0.0);
            bar.set_message(format!("{rate:.0}/s, open drift {open}"));
        }
        bar.finish_and_clear();
        series
    })
}

/// Runs the detector over a prepared load, in process.
pub fn run_prepared(prep: &Prepared, p: &Profile, workers: usize) -> anyhow::Result<Outcome> {
    let grace_ms = p.grace.as_millis();
    let (source, target, until) = (prep.source.clone(), prep.target.clone(), prep.until);
    let stall = prep.stall(p);
    let total = prep.messages();
    let mut spec = crate::spec::load_str(crate::demo::ORDERS_SPEC)
        .map_err(|p| anyhow::anyhow!("embedded spec: {p:?}"))?;
    spec.grace = p.grace;

    let lateness = Arc::new(Mutex::new(Histogram::<u64>::new(3).expect("valid")));
    let parts_lateness = lateness.clone();
    let repairs = p.close_loop.then(|| Arc::new(repair::Repairs::default()));
    let (parts_repairs, lsns) = (repairs.clone(), prep.target_lsns.clone());
    let parts = crate::run::per_side(source, target, move |side, lines| {
        let mut part = TimedPartition::new(side, lines, until, parts_lateness.clone());
        if let (SideId::Target, Some((from, to))) = (side, stall) {
            part = part.stalled(from, to);
        }
        if let (SideId::Target, Some(r)) = (side, &parts_repairs) {
            part = part.repaired(r.clone(), lsns.clone());
        }
        Box::new(part) as Box<dyn Partition>
    });
    let scorer = Scorer::new(prep.truth.clone(), grace_ms, prep.last_ms);
    let convergence = Arc::new(Mutex::new(repair::Convergence::default()));
    let (sink_scorer, sink_repairs) = (scorer.clone(), repairs.clone());
    let sink_convergence = convergence.clone();
    let sink: crate::run::SinkFactory = Arc::new(move || {
        Box::new(MeasureSink {
            scorer: sink_scorer.clone(),
            repairs: sink_repairs.clone(),
            convergence: sink_convergence.clone(),
        })
    });
    let stats = Arc::new(crate::dataflow::Stats::default());
    let sampler_stats = stats.clone();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = sampler(total, done.clone(), move || {
        let read = SideId::BOTH
            .iter()
            .map(|s| sampler_stats.side(*s).read.load(Relaxed))
            .sum();
        let open = crate::dataflow::DriftKind::ALL
            .iter()
            .map(|k| sampler_stats.open(*k))
            .sum();
        Some((read, open))
    });
    // Memory before the detector runs (the generated load is already resident): the
    // detector's share is what the peak adds to it.
    let rss_before = crate::run::current_rss_bytes().unwrap_or(0);
    let began = Instant::now();
    let result = crate::run::execute_with(
        &spec,
        &Cluster::local(workers),
        parts,
        Some(sink),
        u64::MAX,
        stats.clone(),
        None,
    );
    done.store(true, Relaxed);
    let throughput = sampler.join().unwrap_or_default();
    let report = result?;
    let lateness = lateness
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    let mut extra = serde_json::Map::new();
    extra.insert("mode".into(), json!("in-process"));
    let applied = repairs.as_ref().map(|r| r.applied());
    report::convergence_facts(&mut extra, &convergence, applied, prep)?;
    score(
        prep,
        p,
        workers,
        Measured {
            scorer,
            lateness,
            throughput,
            elapsed: began.elapsed().as_secs_f64(),
            read: report.events_read(),
            rss: (crate::run::peak_rss_bytes().unwrap_or(0), rss_before),
            extra,
        },
    )
}

/// Distinct keys the detector tracks, counted as the keys that ever differed (each
/// insert differs until the replica applies it).
fn report_keys(g: &crate::demo::generator::Generated) -> usize {
    let mut ids: Vec<i64> = g.episodes.iter().map(|e| e.id).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len().max(1)
}

/// How the load reaches the detector.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Fed in process.
    InProcess,
    /// Produced to a broker, detected by a `driftwatch run` job.
    Kafka(kafka::KafkaMode),
}

/// What `driftwatch loadtest` is asked to do, resolved from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// The load.
    pub profile: Profile,
    /// Worker threads of the detector.
    pub workers: usize,
    /// In process, or through a broker.
    pub mode: Mode,
    /// Where to write the JSON report.
    pub report: Option<std::path::PathBuf>,
    /// Where to write the SVG chart.
    pub chart: Option<std::path::PathBuf>,
}

/// `driftwatch loadtest`.
pub fn run(o: &Options) -> anyhow::Result<()> {
    let outcome = match &o.mode {
        Mode::InProcess => run_in_process(&o.profile, o.workers)?,
        Mode::Kafka(k) => kafka::run(&o.profile, k)?,
    };
    println!("{}", summary(&outcome.report));
    if let Some(l) = loop_summary(&outcome.report) {
        println!("{l}");
    }
    if let Some(path) = &o.report {
        std::fs::write(path, serde_json::to_string_pretty(&outcome.report)?)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        println!("report: {}", path.display());
    }
    if let Some(path) = &o.chart {
        std::fs::write(path, chart::svg(&outcome))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        println!("chart: {}", path.display());
    }
    Ok(())
}
