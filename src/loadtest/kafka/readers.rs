//! The harness's Kafka clients beside the job: the drift topic scored as records arrive,
//! and (closing the loop) the corrections topic written back to the replica.

use super::super::measure::Scorer;
use super::super::repair::{replica_event, Convergence, Positions};
use super::{Deliveries, Topics};
use crate::dataflow::{DriftKind, Status};
use crate::io::kafka::admin;
use crate::io::kafka::config::KafkaConfig;
use crate::io::now_ms;
use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Consumes the drift topic and scores its records as they arrive.
pub(super) struct DriftReader {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<anyhow::Result<u64>>,
}

impl DriftReader {
    pub(super) fn start(
        config: &KafkaConfig,
        topic: &str,
        scorer: Scorer,
        convergence: &Arc<Mutex<Convergence>>,
    ) -> anyhow::Result<Self> {
        let convergence = convergence.clone();
        let consumer = follow(config, topic)?;
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
    pub(super) fn finish(self) -> anyhow::Result<u64> {
        self.stop.store(true, Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the drift consumer panicked"))?
    }
}

/// A consumer of `topic`'s single partition from its beginning, fetching with little
/// wait (these readers measure latency).
fn follow(config: &KafkaConfig, topic: &str) -> anyhow::Result<BaseConsumer> {
    let consumer: BaseConsumer = config
        .client(&[
            ("group.id", "driftwatch-loadtest"),
            ("enable.auto.commit", "false"),
            ("fetch.wait.max.ms", "10"),
        ])
        .create()
        .with_context(|| format!("cannot create a consumer of {topic}"))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    Ok(consumer)
}

/// A drift record's order id, status, kind and `since_ms`.
fn drift_record(payload: &[u8]) -> Option<(i64, Status, DriftKind, u64)> {
    let r: crate::io::record::DriftMessage = serde_json::from_slice(payload).ok()?;
    Some((r.key["id"].as_i64()?, r.status, r.kind, r.since_ms))
}

/// Closing the loop through the broker: consumes the job's corrections and writes each
/// to the replica's topic as the replica's next change (what a JDBC sink connector
/// applying the corrections topic to the replica would cause).
pub(super) struct Repairer {
    stop: Arc<AtomicBool>,
    pub(super) applied: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<anyhow::Result<()>>,
}

impl Repairer {
    pub(super) fn start(
        config: &KafkaConfig,
        topics: &Topics,
        replica_lsn: Arc<AtomicU64>,
    ) -> anyhow::Result<Self> {
        let consumer = follow(config, &topics.corrections)?;
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
            let mut positions = Positions::default();
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
                positions.seen(replica_lsn.load(Relaxed));
                let now = now_ms();
                let event = replica_event(id, row, positions.take(), now);
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
    pub(super) fn finish(self) -> anyhow::Result<u64> {
        self.stop.store(true, Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the corrections' applier panicked"))??;
        Ok(self.applied.load(Relaxed))
    }
}
