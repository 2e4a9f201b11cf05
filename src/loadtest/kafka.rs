//! The load test through a broker: the load is produced on schedule to two topics, the
//! detector runs as a `driftwatch run` job (a child process, as deployed), and its drift
//! topic is consumed and scored as records arrive.
//!
//! Detection latency is therefore end to end: producer → broker → job → broker →
//! consumer. The job's throughput, open drift and memory come from its own Prometheus
//! endpoint and `/proc`. Every run uses fresh topics named after the run, created
//! uncompacted so the harness sees every record the job wrote.

use super::config::Profile;
use super::measure::Scorer;
use super::repair::{replica_event, Convergence};
use super::{Measured, Outcome, Prepared};
use crate::dataflow::{DriftKind, Status};
use crate::demo::generator::REPLICA_LSN_STEP;
use crate::io::kafka::admin::{self, OutputTopic};
use crate::io::kafka::config::KafkaConfig;
use crate::io::now_ms;
use anyhow::Context as _;
use hdrhistogram::Histogram;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use serde_json::{json, Value};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
    let q = |q: f64| fed.acked.value_at_quantile(q);
    extra.insert(
        "broker_ack_lateness_ms".into(),
        json!({"p50": q(0.5), "p99": q(0.99), "max": fed.acked.max()}),
    );
    let c = convergence
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    extra.insert("open_drift_at_end".into(), json!(c.open()));
    if let Some(applied) = repaired? {
        extra.insert("close_loop".into(), super::loop_report(&c, applied, prep));
    }
    drop(c);
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

/// How late the load went out: handed to the producer, and acknowledged by the broker
/// (ms after each message's event time, or after the message before it if newer).
pub struct Fed {
    /// When `send` took each message.
    pub sent: Histogram<u64>,
    /// When the broker acknowledged it (after its own event time).
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

/// Waits until the job has read every message and its clock has passed `end_ms`;
/// returns the messages it read.
fn wait_for_job(
    job: &mut Job,
    metrics: &str,
    total: impl Fn() -> u64,
    end_ms: u64,
) -> anyhow::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        job.check_running()?;
        let total = total();
        let read = scrape(metrics)
            .ok()
            .and_then(|m| job_counts(&m))
            .map_or(0, |(read, _)| read);
        if read >= total && now_ms() >= end_ms {
            return Ok(read);
        }
        anyhow::ensure!(
            Instant::now() < deadline || now_ms() < end_ms,
            "the job read {read} of {total} messages and stopped making progress"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The job as a child process, killed if the harness stops first.
struct Job {
    child: Child,
    log: PathBuf,
}

impl Job {
    fn spawn(mode: &KafkaMode, spec: &Path, metrics: &str, log: &Path) -> anyhow::Result<Job> {
        let out = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let child = Command::new(&mode.exe)
            .arg("run")
            .arg(spec)
            .args(["-w", &mode.workers.to_string(), "--metrics-addr", metrics])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("cannot start the job {}", mode.exe.display()))?;
        Ok(Job {
            child,
            log: log.to_path_buf(),
        })
    }

    /// An error with the job's log if it has exited.
    fn check_running(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => anyhow::bail!(
                "the job exited ({status}) early; its log {}: {}",
                self.log.display(),
                self.log_tail()
            ),
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(5).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }

    /// Waits until the job serves its metrics (it has found its topics and started).
    fn wait_ready(&mut self, metrics: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while scrape(metrics).is_err() {
            self.check_running()?;
            anyhow::ensure!(
                Instant::now() < deadline,
                "the job did not start within 60 s; its log {}",
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// A memory figure of the job from `/proc` (Linux), in bytes.
    fn proc_status(&self, field: &str) -> Option<u64> {
        crate::run::process_status_bytes(&self.child.id().to_string(), field)
    }

    /// SIGTERM (the job delivers what it emitted and exits 0), then waits.
    fn stop(&mut self) -> anyhow::Result<()> {
        // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::ensure!(
                    status.success(),
                    "the job exited with {status} on SIGTERM; its log {}: {}",
                    self.log.display(),
                    self.log_tail()
                );
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "the job ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Consumes the drift topic and scores its records as they arrive.
struct DriftReader {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<anyhow::Result<u64>>,
}

impl DriftReader {
    fn start(
        config: &KafkaConfig,
        topic: &str,
        scorer: Scorer,
        convergence: &Arc<Mutex<Convergence>>,
    ) -> anyhow::Result<Self> {
        let convergence = convergence.clone();
        let consumer: BaseConsumer = config
            .client(&[
                ("group.id", "driftwatch-loadtest"),
                ("enable.auto.commit", "false"),
                ("fetch.wait.max.ms", "10"),
            ])
            .create()
            .context("cannot create the drift consumer")?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
        consumer.assign(&tpl)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let topic = topic.to_string();
        let thread = std::thread::spawn(move || -> anyhow::Result<u64> {
            let (mut records, mut next, mut end) = (0u64, 0i64, None);
            loop {
                if end.is_none() && stopping.load(Relaxed) {
                    // The job has exited: read up to what it wrote.
                    end = Some(consumer.fetch_watermarks(&topic, 0, admin::TIMEOUT)?.1);
                }
                if end.is_some_and(|e| next >= e) {
                    return Ok(records);
                }
                let Some(m) = consumer.poll(Duration::from_millis(50)) else {
                    continue;
                };
                let m = m.context("reading the drift topic")?;
                next = m.offset() + 1;
                records += 1;
                let now = now_ms();
                if let Some((id, status, kind, since)) = m.payload().and_then(drift_record) {
                    if let Ok(mut c) = convergence.lock() {
                        c.record(id, status, now);
                    }
                    if status == Status::Open {
                        scorer.open(id, kind, since, now)?;
                    }
                }
            }
        });
        Ok(DriftReader { stop, thread })
    }

    /// Reads up to the topic's end as it is now, stops, and returns the records read.
    fn finish(self) -> anyhow::Result<u64> {
        self.stop.store(true, Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the drift consumer panicked"))?
    }
}

/// A drift record's order id, status, kind and `since_ms`.
fn drift_record(payload: &[u8]) -> Option<(i64, Status, DriftKind, u64)> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    let status = match v["status"].as_str()? {
        "open" => Status::Open,
        "resolved" => Status::Resolved,
        _ => return None,
    };
    Some((
        v["key"]["id"].as_i64()?,
        status,
        DriftKind::from_name(v["kind"].as_str()?)?,
        v["since_ms"].as_u64()?,
    ))
}

/// Closing the loop through the broker: consumes the job's corrections and writes each
/// to the replica's topic as the replica's next change (what a JDBC sink connector
/// applying the corrections topic to the replica would cause).
struct Repairer {
    stop: Arc<AtomicBool>,
    applied: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<anyhow::Result<()>>,
}

impl Repairer {
    fn start(
        config: &KafkaConfig,
        topics: &Topics,
        replica_lsn: Arc<AtomicU64>,
    ) -> anyhow::Result<Self> {
        let consumer: BaseConsumer = config
            .client(&[
                ("group.id", "driftwatch-loadtest"),
                ("enable.auto.commit", "false"),
                ("fetch.wait.max.ms", "10"),
            ])
            .create()
            .context("cannot create the corrections consumer")?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topics.corrections, 0, Offset::Beginning)?;
        consumer.assign(&tpl)?;
        let producer: ThreadedProducer<Deliveries> = config
            .client(&[("enable.idempotence", "true"), ("linger.ms", "2")])
            .create_with_context(Deliveries::default())
            .context("cannot create the corrections' producer")?;
        let (stop, applied) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let (stopping, counted) = (stop.clone(), Arc::clone(&applied));
        let replica = topics.replica.clone();
        let thread = std::thread::spawn(move || -> anyhow::Result<()> {
            let (mut base, mut written) = (0u64, 0u64);
            while !stopping.load(Relaxed) {
                let Some(m) = consumer.poll(Duration::from_millis(50)) else {
                    continue;
                };
                let m = m.context("reading the corrections topic")?;
                let key: Value = serde_json::from_slice(m.key().unwrap_or_default())?;
                let id = key["id"]
                    .as_i64()
                    .context("a correction without an order id")?;
                let row = m.payload_view::<str>().transpose()?;
                // Between the replica's newest position and its next one.
                let lsn = replica_lsn.load(Relaxed);
                if lsn != base {
                    (base, written) = (lsn, 0);
                }
                written = (written + 1).min(REPLICA_LSN_STEP - 1);
                let now = now_ms();
                let event = replica_event(id, row, base + written, now);
                let key = key.to_string();
                let record = BaseRecord::to(&replica)
                    .partition(0)
                    .key(&key)
                    .payload(&event)
                    .timestamp(now as i64);
                producer
                    .send(record)
                    .map_err(|(e, _)| e)
                    .context("cannot write a correction to the replica")?;
                counted.fetch_add(1, Relaxed);
            }
            producer.flush(Duration::from_secs(30))?;
            Ok(())
        });
        Ok(Repairer {
            stop,
            applied,
            thread,
        })
    }

    /// Stops, and returns the corrections applied.
    fn finish(self) -> anyhow::Result<u64> {
        self.stop.store(true, Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the corrections' applier panicked"))??;
        Ok(self.applied.load(Relaxed))
    }
}

/// Messages read and open drift, from the job's metrics.
fn job_counts(metrics: &str) -> Option<(u64, i64)> {
    let (mut read, mut open, mut seen) = (0u64, 0i64, false);
    for line in metrics.lines() {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        if name.starts_with("driftwatch_events_total{") && name.contains(r#"outcome="read""#) {
            read += value.parse::<u64>().ok()?;
            seen = true;
        } else if name.starts_with("driftwatch_open_drift{") {
            open += value.parse::<i64>().ok()?;
        }
    }
    seen.then_some((read, open))
}

/// `GET /metrics` over plain HTTP/1.0.
fn scrape(addr: &str) -> anyhow::Result<String> {
    let addr: std::net::SocketAddr = addr.parse()?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: driftwatch\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (_, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("not an HTTP response"))?;
    Ok(body.to_string())
}

/// A loopback port nothing listens on right now.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
