//! Drift, corrections and dead letters to Kafka, idempotently, every delivery checked.
//!
//! - drift: key `{"entity":…,"key":{…}}`, value the drift record (a compacted changelog);
//! - corrections: key the entity key, value the source row or a tombstone, header
//!   `driftwatch.kind`; with `corrections_format = "connect-json"` key and value are
//!   Kafka Connect envelopes (schema and payload) that a JDBC sink applies as is;
//! - dead letters: the original message key, value the dead-letter record, headers
//!   `driftwatch.reason` and `driftwatch.origin`.
//!
//! The producer is idempotent (`enable.idempotence`, `acks=all`) and librdkafka retries
//! with backoff. A delivery that still fails is recorded, and the next emit (or the
//! final flush) returns it as an error: the job stops rather than lose output.

use super::config::KafkaConfig;
use crate::dataflow::{Output, Sink, Time};
use crate::io::connect::ConnectJson;
use crate::io::render;
use crate::row::JsonKey;
use crate::spec::{CorrectionsFormat, Spec};
use anyhow::Context as _;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where outputs go.
#[derive(Debug, Clone)]
pub struct OutputTopics {
    /// Drift changelog topic.
    pub drift: String,
    /// Corrections topic.
    pub corrections: String,
    /// Dead-letter topic.
    pub dlq: String,
}

/// Records failed deliveries for the sink to report.
#[derive(Clone, Default)]
struct Deliveries {
    failed: Arc<Mutex<Option<String>>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, m)) = result {
            use rdkafka::message::Message as _;
            if let Ok(mut f) = self.failed.lock() {
                f.get_or_insert_with(|| format!("delivery to {} failed: {e}", m.topic()));
            }
        }
    }
}

/// One idempotent producer for the outputs of every entity of a job. A producer per
/// entity was a librdkafka client (and its threads, and a polling thread) per entity:
/// 200 idle entities kept a core busy (BENCHMARKS.md, issue 13).
#[derive(Clone)]
pub struct SharedProducer {
    producer: Arc<ThreadedProducer<Deliveries>>,
    deliveries: Deliveries,
}

impl SharedProducer {
    /// An idempotent producer on `config`'s client settings.
    pub fn new(config: &KafkaConfig) -> anyhow::Result<Self> {
        let deliveries = Deliveries::default();
        let producer = config
            .client(&[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("linger.ms", "5"),
                ("compression.type", "none"),
                ("message.timeout.ms", "300000"),
            ])
            .create_with_context(deliveries.clone())
            .context("cannot create the Kafka producer")?;
        Ok(SharedProducer {
            producer: Arc::new(producer),
            deliveries,
        })
    }
}

/// The Kafka sink of one entity (on worker 0).
pub struct KafkaSink {
    producer: Arc<ThreadedProducer<Deliveries>>,
    deliveries: Deliveries,
    entity: String,
    /// Corrections as Connect JSON envelopes (`corrections_format = "connect-json"`).
    connect: Option<ConnectJson>,
    topics: OutputTopics,
    line: Vec<u8>,
}

/// How long the final flush may take before the job fails.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

impl KafkaSink {
    /// `spec`'s outputs to `topics`, through the job's producer. `source_schema` is
    /// where the source's decoders publish its row schema.
    pub fn new(
        producer: &SharedProducer,
        spec: &Spec,
        topics: OutputTopics,
        source_schema: crate::cdc::RowSchema,
    ) -> Self {
        KafkaSink {
            producer: producer.producer.clone(),
            deliveries: producer.deliveries.clone(),
            entity: spec.entity.clone(),
            connect: (spec.outputs.corrections_format == CorrectionsFormat::ConnectJson)
                .then(|| ConnectJson::new(spec, source_schema)),
            topics,
            line: Vec::new(),
        }
    }

    fn check(&self) -> anyhow::Result<()> {
        let failed = self.deliveries.failed.lock().ok().and_then(|f| f.clone());
        match failed {
            Some(e) => anyhow::bail!("{e}"),
            None => Ok(()),
        }
    }

    /// Enqueues one record, waiting while the producer's queue is full.
    fn send(&self, record: BaseRecord<'_, [u8], [u8]>) -> anyhow::Result<()> {
        let mut record = record;
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    self.check()?;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, r)) => {
                    anyhow::bail!("cannot produce to {}: {e}", r.topic)
                }
            }
        }
    }
}

impl Sink for KafkaSink {
    fn emit(&mut self, _time: Time, outputs: &[Output]) -> anyhow::Result<()> {
        self.check()?;
        for o in outputs {
            self.line.clear();
            match o {
                Output::Drift(r) => {
                    let message = crate::io::record::DriftMessage::new(&self.entity, r);
                    serde_json::to_writer(&mut self.line, &message)?;
                    let key = message.kafka_key();
                    self.send(
                        BaseRecord::to(&self.topics.drift)
                            .key(key.as_bytes())
                            .payload(&self.line[..]),
                    )?;
                }
                Output::Correction(c) => {
                    let (key, value) = match &self.connect {
                        Some(connect) => (
                            connect.key(&c.key).into_bytes(),
                            c.row.as_ref().map(|r| connect.value(r)),
                        ),
                        None => (
                            serde_json::to_vec(&JsonKey(&c.key))?,
                            render::correction_value(c),
                        ),
                    };
                    let headers = OwnedHeaders::new().insert(Header {
                        key: "driftwatch.kind",
                        value: Some(c.kind.name()),
                    });
                    let mut record = BaseRecord::to(&self.topics.corrections)
                        .key(&key[..])
                        .headers(headers);
                    if let Some(v) = value.as_deref() {
                        record = record.payload(v.as_bytes());
                    }
                    self.send(record)?;
                }
                Output::DeadLetter(d) => {
                    render::write_line(&mut self.line, &self.entity, o)?;
                    self.line.pop();
                    let origin = d.origin.to_json().to_string();
                    let headers = OwnedHeaders::new()
                        .insert(Header {
                            key: "driftwatch.reason",
                            value: Some(d.reason.as_str()),
                        })
                        .insert(Header {
                            key: "driftwatch.origin",
                            value: Some(origin.as_str()),
                        });
                    let mut record = BaseRecord::to(&self.topics.dlq)
                        .payload(&self.line[..])
                        .headers(headers);
                    if let Some(k) = d.key.as_deref() {
                        record = record.key(k);
                    }
                    self.send(record)?;
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        Sink::flush(self)
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        self.producer
            .flush(FLUSH_TIMEOUT)
            .context("cannot deliver the remaining outputs")?;
        self.check()
    }
}

impl Drop for KafkaSink {
    fn drop(&mut self) {
        // A stopped job delivers what it emitted (best effort; errors were reported).
        let _ = self.producer.flush(FLUSH_TIMEOUT);
    }
}
