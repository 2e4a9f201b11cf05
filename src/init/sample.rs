//! One row-change message per topic: from a directory of JSONL dumps, or from Kafka.

use super::infer::{is_row_change, table, Table};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// What the samples hold: every topic seen, and the table facts of those with a row change.
#[derive(Debug, Default)]
pub(crate) struct Samples {
    pub(crate) topics: Vec<String>,
    pub(crate) tables: BTreeMap<String, Table>,
}

/// One line of a dump: a bare message value, or `{"key": …, "value": …}` (as driftwatch's
/// upsert files; the key and value may be JSON or JSON text).
fn split_line(line: &str) -> Option<(Option<String>, String)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match (v.get("key"), v.get("value")) {
        (key, Some(value)) if v.get("op").is_none() && v.get("payload").is_none() => {
            Some((key.filter(|k| !k.is_null()).map(text), text(value)))
        }
        _ => Some((None, line.to_string())),
    }
}

/// Samples from `dir`: every `<topic>.jsonl` file is that topic's dump.
pub(crate) fn from_files(dir: &Path) -> anyhow::Result<Samples> {
    let mut samples = Samples::default();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("cannot read the sample directory {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        let Some(topic) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".jsonl"))
        else {
            continue;
        };
        samples.topics.push(topic.to_string());
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let found = text
            .lines()
            .filter_map(split_line)
            .find(|(_, value)| is_row_change(value))
            .and_then(|(key, value)| table(key.as_deref(), &value));
        if let Some(t) = found {
            samples.tables.insert(topic.to_string(), t);
        }
    }
    samples.topics.sort();
    Ok(samples)
}

fn utf8(bytes: Option<&[u8]>) -> Option<&str> {
    bytes.and_then(|b| std::str::from_utf8(b).ok())
}

/// Samples from the brokers: the topics under `prefixes`, each read from its earliest
/// offsets until a row change (or `patience` per topic).
pub(crate) fn from_kafka(
    config: &crate::io::kafka::config::KafkaConfig,
    prefixes: &[&str],
    patience: Duration,
) -> anyhow::Result<Samples> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = config
        .client(&[
            ("group.id", "driftwatch-init"),
            ("enable.auto.commit", "false"),
        ])
        .create()?;
    let md = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .map_err(|e| anyhow::anyhow!("listing the topics on {}: {e}", config.brokers()))?;
    let under = |t: &str| {
        prefixes
            .iter()
            .any(|p| t.strip_prefix(p).is_some_and(|rest| rest.starts_with('.')))
    };
    let mut samples = Samples::default();
    for topic in md.topics().iter().filter(|t| under(t.name())) {
        samples.topics.push(topic.name().to_string());
        let mut tpl = TopicPartitionList::new();
        for p in topic.partitions() {
            tpl.add_partition_offset(topic.name(), p.id(), Offset::Beginning)?;
        }
        consumer.assign(&tpl)?;
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let Some(value) = utf8(m.payload()).filter(|v| is_row_change(v)) else {
                continue;
            };
            if let Some(t) = table(utf8(m.key()), value) {
                samples.tables.insert(topic.name().to_string(), t);
                break;
            }
        }
    }
    samples.topics.sort();
    Ok(samples)
}
