//! The load test through a broker: the load is produced on schedule to two topics, the
//! detector runs as a `driftwatch run` job (a child process, as deployed), and its drift
//! topic is consumed and scored as records arrive.
//!
//! Detection latency is therefore end to end: producer → broker → job → broker →
//! consumer. The job's throughput, open drift and memory come from its own Prometheus
//! endpoint and `/proc`. Every run uses fresh topics named after the run, created
//! uncompacted so the harness sees every record the job wrote.

mod job;
mod readers;

use super::config::Profile;
use super::measure::Scorer;
use super::repair::Convergence;
use super::{Measured, Outcome, Prepared};
use crate::io::kafka::admin::{self, OutputTopic};
use crate::io::kafka::config::KafkaConfig;
use crate::io::now_ms;
use anyhow::Context as _;
use hdrhistogram::Histogram;
use job::{free_port, job_counts, scrape, wait_for_job, Job};
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use readers::{DriftReader, Repairer};
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Time allowed for the job to start before the first message is due (ms).
pub const JOB_START_MS: u64 = 3_000;

/// How to run the detector through a broker.
#[derive(Debug, Clone)]
pub struct KafkaMode {
    /// Bootstrap servers, `host:port`.
    pub brokers: String,
    /// The `driftwatch` executable that runs the job.
    pub exe: PathBuf,
    /// The job's worker threads.
    pub workers: usize,
    /// The job's `kafka.clock_skew`: how far behind the wall clock a caught-up input's
    /// time is held.
    pub clock_skew: crate::spec::Duration,
}

/// The topics of one run.
struct Topics {
    prefix: String,
    source: String,
    replica: String,
    drift: String,
    corrections: String,
    dlq: String,
}

impl Topics {
    fn new(prefix: &str) -> Self {
        let t = |name: &str| format!("{prefix}.{name}");
        Topics {
            prefix: prefix.to_string(),
            source: t("source"),
            replica: t("replica"),
            drift: t("drift"),
            corrections: t("corrections"),
            dlq: t("dlq"),
        }
    }
}

/// Generates a load for `p` and runs it through the broker.
pub fn run(p: &Profile, mode: &KafkaMode) -> anyhow::Result<Outcome> {
    run_prepared(&super::prepare_with_lead(p, JOB_START_MS)?, p, mode)
}

/// The job spec: the embedded orders spec on this run's topics.
fn job_spec(p: &Profile, mode: &KafkaMode, topics: &Topics) -> anyhow::Result<crate::spec::Spec> {
    let mut spec = crate::spec::load_str(crate::demo::ORDERS_SPEC)
        .map_err(|p| anyhow::anyhow!("embedded spec: {p:?}"))?;
    spec.grace = p.grace;
    spec.source.input.topics = vec![topics.source.clone()];
    spec.target.input.topics = vec![topics.replica.clone()];
    spec.outputs.drift_topic = Some(topics.drift.clone());
    spec.outputs.corrections_topic = Some(topics.corrections.clone());
    spec.outputs.dlq_topic = Some(topics.dlq.clone());
    spec.outputs.partitions = 1;
    spec.kafka.brokers = Some(mode.brokers.clone());
    spec.kafka.group_id = Some(topics.prefix.clone());
    spec.kafka.clock_skew = mode.clock_skew;
    spec.kafka
        .properties
        .insert("fetch.wait.max.ms".into(), "10".into());
    Ok(spec)
}

/// Runs a prepared load through the broker.
pub fn run_prepared(prep: &Prepared, p: &Profile, mode: &KafkaMode) -> anyhow::Result<Outcome> {
    let prefix = format!("driftwatch-loadtest-{}-{}", std::process::id(), now_ms());
    let topics = Topics::new(&prefix);
    let dir = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let spec = job_spec(p, mode, &topics)?;
    let spec_path = dir.join("job.toml");
    std::fs::write(&spec_path, toml::to_string(&spec)?)
        .with_context(|| format!("cannot write {}", spec_path.display()))?;
    let config = KafkaConfig::new(&spec, None)?;
    let client: rdkafka::consumer::BaseConsumer = config
        .client(&[])
        .create()
        .context("cannot create a Kafka client")?;
    rdkafka::consumer::Consumer::fetch_metadata(&client, None, Duration::from_secs(10))
        .with_context(|| format!("cannot reach the broker at {}", mode.brokers))?;
    create_topics(
        &config,
        &[
            &topics.source,
            &topics.replica,
            &topics.drift,
            &topics.corrections,
            &topics.dlq,
        ],
    )?;

    let metrics = format!("127.0.0.1:{}", free_port()?);
    let mut job = Job::spawn(mode, &spec_path, &metrics, &dir.join("job.log"))?;
    job.wait_ready(&metrics)?;
    let rss_before = job.proc_status("VmRSS:").unwrap_or(0);
    let scorer = Scorer::new(prep.truth.clone(), p.grace.as_millis(), prep.last_ms);
    let convergence = Arc::new(Mutex::new(Convergence::default()));
    let reader = DriftReader::start(&config, &topics.drift, scorer.clone(), &convergence)?;
    // The replica's newest log position produced: applied corrections go after it.
    let replica_lsn = Arc::new(AtomicU64::new(0));
    let repairer = match p.close_loop {
        true => Some(Repairer::start(&config, &topics, replica_lsn.clone())?),
        false => None,
    };
    let applied = repairer.as_ref().map(|r| r.applied.clone());
    let done = Arc::new(AtomicBool::new(false));
    let sample_addr = metrics.clone();
    let sampler = super::sampler(prep.messages(), done.clone(), move || {
        job_counts(&scrape(&sample_addr).ok()?)
    });
    let began = Instant::now();
    let fed = produce(
        prep,
        p,
        &config,
        [&topics.source, &topics.replica],
        &replica_lsn,
    );
    if let Err(e) = fed {
        // No load, nothing to wait for: the job is stopped (and killed on drop).
        let _ = job.stop();
        done.store(true, Relaxed);
        return Err(e);
    }
    // The job's time runs `clock_skew` behind the wall clock once its inputs are idle:
    // every difference still open at the end is due by `until` on its clock.
    let end = prep.until + mode.clock_skew.as_millis();
    let total = || prep.messages() + applied.as_ref().map_or(0, |a| a.load(Relaxed));
    let read = wait_for_job(&mut job, &metrics, total, end);
    let peak = job.proc_status("VmHWM:").unwrap_or(0);
    let stopped = job.stop();
    let repaired = repairer.map(Repairer::finish).transpose();
    let records = reader.finish();
    done.store(true, Relaxed);
    let throughput = sampler.join().unwrap_or_default();
    let fed = fed?;
    let lateness = fed.sent;
    let read = read?;
    stopped?;
    let records = records?;
    let mut extra = serde_json::Map::new();
    extra.insert("mode".into(), json!("kafka"));
    let q = |q: f64| super::report::quantile(&fed.acked, q);
    extra.insert(
        "broker_ack_lateness_ms".into(),
        json!({"p50": q(0.5), "p99": q(0.99), "max": fed.acked.max()}),
    );
    super::report::convergence_facts(&mut extra, &convergence, repaired?, prep)?;
    extra.insert("brokers".into(), json!(mode.brokers));
    extra.insert("topics".into(), json!(format!("{prefix}.*")));
    extra.insert("drift_records".into(), json!(records));
    extra.insert("job_log".into(), json!(dir.join("job.log")));
    super::score(
        prep,
        p,
        mode.workers,
        Measured {
            scorer,
            lateness,
            throughput,
            elapsed: began.elapsed().as_secs_f64(),
            read,
            rss: (peak, rss_before),
            extra,
        },
    )
}

/// Counts failed deliveries of a producer, and how late (ms after its event time, the
/// message timestamp) the broker acknowledged each delivered message.
#[derive(Clone)]
struct Deliveries {
    failed: Arc<AtomicU64>,
    lateness: Arc<Mutex<Histogram<u64>>>,
}

impl Default for Deliveries {
    fn default() -> Self {
        Deliveries {
            failed: Arc::default(),
            lateness: Arc::new(Mutex::new(Histogram::new(3).expect("valid"))),
        }
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Err(_) => {
                self.failed.fetch_add(1, Relaxed);
            }
            Ok(m) => {
                if let (Some(t), Ok(mut h)) = (m.timestamp().to_millis(), self.lateness.lock()) {
                    let _ = h.record(now_ms().saturating_sub(t.max(0) as u64));
                }
            }
        }
    }
}

/// How late the load went out (ms): handed to the producer, and acknowledged by the
/// broker.
pub struct Fed {
    /// When `send` took each message, after it was due (its event time, or the newer
    /// one of the message before it).
    pub sent: Histogram<u64>,
    /// When the broker acknowledged it (after the message's own event time).
    pub acked: Histogram<u64>,
}

/// Creates single-partition, uncompacted topics (existing ones are left as they are).
pub fn create_topics(config: &KafkaConfig, names: &[&str]) -> anyhow::Result<()> {
    let topics: Vec<OutputTopic<'_>> = names
        .iter()
        .map(|name| OutputTopic {
            name,
            partitions: 1,
            compact: false,
        })
        .collect();
    admin::ensure_topics(config, &topics)
}

/// Produces both sides' messages to `topics` (source, replica) when the wall clock
/// reaches their event times (the replica's held during its stall), keyed `{"id":N}`,
/// timestamped with their event times, keeping `replica_lsn` at the newest replica log
/// position produced. Returns how late the messages went out.
pub fn produce(
    prep: &Prepared,
    p: &Profile,
    config: &KafkaConfig,
    topics: [&str; 2],
    replica_lsn: &AtomicU64,
) -> anyhow::Result<Fed> {
    let deliveries = Deliveries::default();
    let producer: ThreadedProducer<Deliveries> = config
        .client(&[("enable.idempotence", "true"), ("linger.ms", "2")])
        .create_with_context(deliveries.clone())
        .context("cannot create the load's Kafka producer")?;
    let stall = prep.stall(p);
    let sides = [
        (&prep.source, &prep.source_ids, topics[0]),
        (&prep.target, &prep.target_ids, topics[1]),
    ];
    let (mut next, mut due) = ([0usize; 2], [0u64; 2]);
    let mut lateness = Histogram::<u64>::new(3).expect("valid");
    loop {
        let now = now_ms();
        let mut sent = 0;
        for (side, (lines, ids, topic)) in sides.iter().enumerate() {
            if side == 1 && stall.is_some_and(|(from, to)| now >= from && now < to) {
                continue;
            }
            while let Some((time, line)) = lines.get(next[side]) {
                if *time > now {
                    break;
                }
                let key = format!(r#"{{"id":{}}}"#, ids[next[side]]);
                let mut record = BaseRecord::to(topic)
                    .partition(0)
                    .key(key.as_str())
                    .payload(line.as_str())
                    .timestamp(*time as i64);
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((e, back))
                            if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) =>
                        {
                            record = back;
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        Err((e, _)) => return Err(e).context("cannot produce the load"),
                    }
                }
                // Lateness against when it was due: with the message before it, if that
                // is newer (a reordered or redelivered message).
                due[side] = due[side].max(*time);
                if side == 1 {
                    replica_lsn.fetch_max(prep.target_lsns[next[side]], Relaxed);
                }
                let _ = lateness.record(now_ms().saturating_sub(due[side]));
                next[side] += 1;
                sent += 1;
            }
        }
        if next[0] >= prep.source.len() && next[1] >= prep.target.len() {
            break;
        }
        if sent == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .context("the load was not delivered within 60 s")?;
    let failed = deliveries.failed.load(Relaxed);
    anyhow::ensure!(
        failed == 0,
        "{failed} messages of the load were not delivered"
    );
    let acked = deliveries
        .lateness
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    Ok(Fed {
        sent: lateness,
        acked,
    })
}
