//! `driftwatch report`: the drift topic's latest record per key, as the current open drift.
//!
//! The drift topic is a changelog: the latest record per key is the truth (DESIGN.md).
//! The report reads it from the beginning up to the high watermarks seen at start, keeps
//! the latest record per key, and renders the open ones: counts by kind, the oldest,
//! and the top entities (oldest first) with their field differences. `--follow` keeps
//! reading and prints again whenever the open drift changes.

use crate::cli::{ReportArgs, ReportFormat};
use crate::dataflow::{DriftKind, Status};
use crate::io::kafka::{admin, config::KafkaConfig};
use crate::io::record::DriftMessage;
use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// The latest drift record per key (key text → record).
#[derive(Debug, Default)]
pub struct Changelog {
    latest: BTreeMap<String, DriftMessage>,
    /// Records that were not drift records (counted, not fatal).
    pub unreadable: u64,
}

impl Changelog {
    /// Applies one message of the drift topic; returns whether the open set changed.
    pub fn apply(&mut self, key: Option<&[u8]>, value: Option<&[u8]>) -> bool {
        let Some(key) = key.map(|k| String::from_utf8_lossy(k).into_owned()) else {
            self.unreadable += 1;
            return false;
        };
        match value.map(serde_json::from_slice::<DriftMessage>) {
            None => self.latest.remove(&key).is_some(),
            Some(Ok(record)) => {
                let changed = self.latest.get(&key) != Some(&record);
                self.latest.insert(key, record);
                changed
            }
            Some(Err(_)) => {
                self.unreadable += 1;
                false
            }
        }
    }

    /// The open records, oldest first.
    pub fn open(&self) -> Vec<&DriftMessage> {
        let mut open: Vec<&DriftMessage> = self
            .latest
            .values()
            .filter(|r| r.status == Status::Open)
            .collect();
        open.sort_by_key(|r| (r.since_ms, r.key.to_string()));
        open
    }

    /// The report as JSON.
    pub fn to_json(&self, top: usize) -> Value {
        let open = self.open();
        let mut by_kind: BTreeMap<&str, u64> =
            DriftKind::ALL.iter().map(|k| (k.name(), 0)).collect();
        for r in &open {
            *by_kind.entry(r.kind.name()).or_default() += 1;
        }
        json!({
            "open": open.len(),
            "by_kind": by_kind,
            "oldest_since_ms": open.first().map(|r| r.since_ms),
            "resolved": self.latest.len() - open.len(),
            "top": open.iter().take(top).collect::<Vec<_>>(),
        })
    }

    /// The report as a human table.
    pub fn to_table(&self, top: usize) -> String {
        let report = self.to_json(top);
        let mut out = String::new();
        let kinds = &report["by_kind"];
        let _ = writeln!(
            out,
            "open drift: {} (missing {}, orphan {}, mismatch {}); {} keys resolved",
            report["open"],
            kinds["missing"],
            kinds["orphan"],
            kinds["mismatch"],
            report["resolved"]
        );
        if let Some(since) = report["oldest_since_ms"].as_i64() {
            let _ = writeln!(
                out,
                "oldest open since {}",
                crate::row::format_timestamp(since.saturating_mul(1_000_000))
            );
        }
        let rows: Vec<&DriftMessage> = self.open().into_iter().take(top).collect();
        if !rows.is_empty() {
            let _ = writeln!(out, "\n{:<9} {:<24} {:<30} fields", "kind", "since", "key");
            let shown = |v: &Option<Value>| v.as_ref().map_or("(absent)".into(), Value::to_string);
            for r in rows {
                let fields: Vec<String> = r
                    .fields
                    .iter()
                    .map(|f| format!("{}: {} → {}", f.field, shown(&f.target), shown(&f.source)))
                    .collect();
                let since = i64::try_from(r.since_ms).unwrap_or(i64::MAX);
                let _ = writeln!(
                    out,
                    "{:<9} {:<24} {:<30} {}",
                    r.kind.name(),
                    crate::row::format_timestamp(since.saturating_mul(1_000_000)),
                    r.key.to_string(),
                    fields.join("; ")
                );
            }
        }
        if self.unreadable > 0 {
            let _ = writeln!(out, "({} unreadable records skipped)", self.unreadable);
        }
        out
    }
}

/// `driftwatch report SPEC`.
pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let spec = crate::spec::load(&args.spec)?;
    let config = KafkaConfig::new(&spec, args.brokers.as_deref())?;
    let topic = args
        .drift_topic
        .clone()
        .unwrap_or_else(|| spec.drift_topic());
    let partitions = admin::partitions(&config, std::slice::from_ref(&topic))?[0];
    let consumer: BaseConsumer = config
        .client(&[
            ("group.id", &format!("{}.report", config.group_id)),
            ("enable.auto.commit", "false"),
        ])
        .create()
        .context("cannot create a Kafka consumer")?;
    let mut tpl = TopicPartitionList::new();
    let mut ends = Vec::new();
    for p in 0..partitions {
        tpl.add_partition_offset(&topic, p, Offset::Beginning)?;
        let (_, high) = consumer
            .fetch_watermarks(&topic, p, admin::TIMEOUT)
            .with_context(|| format!("cannot read the end of {topic}/{p}"))?;
        ends.push(high);
    }
    consumer.assign(&tpl)?;
    let mut log = Changelog::default();
    let mut next = vec![0i64; partitions as usize];
    let caught_up = |next: &[i64]| next.iter().zip(&ends).all(|(n, e)| n >= e);
    let print = |log: &Changelog| -> anyhow::Result<()> {
        match args.format {
            ReportFormat::Table => print!("{}", log.to_table(args.top)),
            ReportFormat::Json => {
                println!("{}", serde_json::to_string_pretty(&log.to_json(args.top))?)
            }
        }
        Ok(())
    };
    while !caught_up(&next) {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                next[m.partition() as usize] = m.offset() + 1;
                log.apply(m.key(), m.payload());
            }
            Some(Err(e)) => eprintln!("driftwatch: reading {topic}: {e} (retrying)"),
            None => {
                // An empty partition or one whose log starts after 0: ask where it ends.
                for p in 0..partitions {
                    let (low, _) = consumer.fetch_watermarks(&topic, p, admin::TIMEOUT)?;
                    next[p as usize] = next[p as usize].max(low);
                }
            }
        }
    }
    print(&log)?;
    if !args.follow {
        return Ok(());
    }
    // Follow: print again when the open drift changed, at most once a second.
    let mut changed = false;
    let mut printed = std::time::Instant::now();
    loop {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => changed |= log.apply(m.key(), m.payload()),
            Some(Err(e)) => eprintln!("driftwatch: reading {topic}: {e} (retrying)"),
            None => {}
        }
        if changed && printed.elapsed() >= Duration::from_secs(1) {
            println!();
            print(&log)?;
            (changed, printed) = (false, std::time::Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_record_per_key_is_the_truth() {
        let mut log = Changelog::default();
        let rec = |id: u64, kind: &str, status: &str, since: u64| {
            json!({"entity":"orders","key":{"id":id},"kind":kind,"status":status,
                   "fields":[{"field":"status","source":"paid","target":"pending"}],
                   "since_ms":since,"reported_ms":since + 5000})
            .to_string()
        };
        let key = |id: u64| format!(r#"{{"entity":"orders","key":{{"id":{id}}}}}"#);
        for (id, kind, status, since) in [
            (1, "missing", "open", 300),
            (2, "mismatch", "open", 100),
            (1, "missing", "resolved", 300),
            (3, "orphan", "open", 200),
            (3, "mismatch", "open", 200),
        ] {
            log.apply(
                Some(key(id).as_bytes()),
                Some(rec(id, kind, status, since).as_bytes()),
            );
        }
        assert!(!log.apply(Some(b"k"), Some(b"not json")));
        let report = log.to_json(10);
        assert_eq!(report["open"], 2);
        assert_eq!(
            report["by_kind"],
            json!({"missing":0,"orphan":0,"mismatch":2})
        );
        assert_eq!(report["resolved"], 1);
        assert_eq!(report["oldest_since_ms"], 100);
        assert_eq!(report["top"][0]["key"]["id"], 2);
        let table = log.to_table(10);
        assert!(
            table.contains("open drift: 2 (missing 0, orphan 0, mismatch 2); 1 keys resolved"),
            "{table}"
        );
        assert!(table.contains(r#"status: "pending" → "paid""#), "{table}");
        assert!(table.contains("1 unreadable"), "{table}");
        // A tombstone forgets the key.
        assert!(log.apply(Some(key(2).as_bytes()), None));
        assert_eq!(log.to_json(10)["open"], 1);
    }
}
