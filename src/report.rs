//! `driftwatch report`: the drift topics' latest record per key, as the current open drift.
//!
//! A drift topic is a changelog: the latest record per key is the truth (DESIGN.md).
//! The report reads every entity's drift topic from the beginning up to the high
//! watermarks seen at start, keeps the latest record per key, and renders the open ones:
//! counts by kind and by entity, the oldest, the fields that differ most, and the top
//! records (oldest first) with their field differences. `--follow` keeps reading and
//! prints again whenever the open drift changes.

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
        let mut by_entity: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
        let mut by_field: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for r in &open {
            let kinds = by_entity
                .entry(&r.entity)
                .or_insert_with(|| DriftKind::ALL.iter().map(|k| (k.name(), 0)).collect());
            *kinds.entry(r.kind.name()).or_default() += 1;
            for f in &r.fields {
                *by_field.entry((&r.entity, &f.field)).or_default() += 1;
            }
        }
        let mut top_fields: Vec<((&str, &str), u64)> = by_field.into_iter().collect();
        top_fields.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let top_fields: Vec<Value> = top_fields
            .into_iter()
            .take(top)
            .map(|((entity, field), n)| json!({"entity": entity, "field": field, "open": n}))
            .collect();
        json!({
            "open": open.len(),
            "by_kind": by_kind,
            "by_entity": by_entity,
            "top_fields": top_fields,
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
        let entities = report["by_entity"].as_object().cloned().unwrap_or_default();
        if entities.len() > 1 {
            for (entity, kinds) in &entities {
                let _ = writeln!(
                    out,
                    "  {entity}: missing {}, orphan {}, mismatch {}",
                    kinds["missing"], kinds["orphan"], kinds["mismatch"]
                );
            }
        }
        let fields: Vec<String> = report["top_fields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                let entity = f["entity"].as_str().unwrap_or("?");
                let field = f["field"].as_str().unwrap_or("?");
                match entities.len() {
                    0 | 1 => format!("{field} ({})", f["open"]),
                    _ => format!("{entity}.{field} ({})", f["open"]),
                }
            })
            .collect();
        if !fields.is_empty() {
            let _ = writeln!(out, "fields that differ most: {}", fields.join(", "));
        }
        let rows: Vec<&DriftMessage> = self.open().into_iter().take(top).collect();
        if !rows.is_empty() {
            let _ = writeln!(
                out,
                "\n{:<14} {:<9} {:<24} {:<30} fields",
                "entity", "kind", "since", "key"
            );
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
                    "{:<14} {:<9} {:<24} {:<30} {}",
                    r.entity,
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

/// What `driftwatch report` is asked to do, resolved from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// Client settings (the first spec's, or `--brokers`).
    pub config: KafkaConfig,
    /// The drift topics to read (every entity's).
    pub topics: Vec<String>,
    /// How many records to list, oldest first.
    pub top: usize,
    /// JSON instead of a table.
    pub json: bool,
    /// Keep reading, and print again whenever the open drift changes.
    pub follow: bool,
}

/// Resolves `driftwatch report`'s command line: the specs (files or directories) name
/// the drift topics, unless `--drift-topic` names them.
pub fn options(args: &ReportArgs) -> anyhow::Result<Options> {
    let specs = crate::spec::load_all(&args.specs).map_err(|errors| {
        let first = &errors[0];
        anyhow::anyhow!("{first}")
    })?;
    let (_, first) = &specs[0];
    let config = KafkaConfig::new(first, args.brokers.as_deref())?;
    let topics = if args.drift_topic.is_empty() {
        specs.iter().map(|(_, s)| s.drift_topic()).collect()
    } else {
        args.drift_topic.clone()
    };
    Ok(Options {
        config,
        topics,
        top: args.top,
        json: args.format == ReportFormat::Json,
        follow: args.follow,
    })
}

/// `driftwatch report SPEC…`.
pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    report(&options(&args)?)
}

/// Reads every drift topic up to its ends, prints the report, and with `follow` keeps
/// reading and printing.
pub fn report(o: &Options) -> anyhow::Result<()> {
    let counts = admin::partitions(&o.config, &o.topics)?;
    let consumer: BaseConsumer = o
        .config
        .client(&[
            ("group.id", &format!("{}.report", o.config.group_id)),
            ("enable.auto.commit", "false"),
        ])
        .create()
        .context("cannot create a Kafka consumer")?;
    let mut tpl = TopicPartitionList::new();
    // Per (topic, partition): the next offset to read and the end seen at start.
    let mut progress: BTreeMap<(String, i32), (i64, i64)> = BTreeMap::new();
    for (topic, n) in o.topics.iter().zip(counts) {
        for p in 0..n {
            tpl.add_partition_offset(topic, p, Offset::Beginning)?;
            let (_, high) = consumer
                .fetch_watermarks(topic, p, admin::TIMEOUT)
                .with_context(|| format!("cannot read the end of {topic}/{p}"))?;
            progress.insert((topic.clone(), p), (0, high));
        }
    }
    consumer.assign(&tpl)?;
    let mut log = Changelog::default();
    let print = |log: &Changelog| -> anyhow::Result<()> {
        match o.json {
            false => print!("{}", log.to_table(o.top)),
            true => println!("{}", serde_json::to_string_pretty(&log.to_json(o.top))?),
        }
        Ok(())
    };
    while progress.values().any(|(next, end)| next < end) {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                if let Some(p) = progress.get_mut(&(m.topic().to_string(), m.partition())) {
                    p.0 = m.offset() + 1;
                }
                log.apply(m.key(), m.payload());
            }
            Some(Err(e)) => eprintln!("driftwatch: reading the drift topics: {e} (retrying)"),
            None => {
                // An empty partition or one whose log starts after 0: ask where it ends.
                for ((topic, p), (next, _)) in progress.iter_mut() {
                    let (low, _) = consumer.fetch_watermarks(topic, *p, admin::TIMEOUT)?;
                    *next = (*next).max(low);
                }
            }
        }
    }
    print(&log)?;
    if !o.follow {
        return Ok(());
    }
    // Follow: print again when the open drift changed, at most once a second.
    let mut changed = false;
    let mut printed = std::time::Instant::now();
    loop {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => changed |= log.apply(m.key(), m.payload()),
            Some(Err(e)) => eprintln!("driftwatch: reading the drift topics: {e} (retrying)"),
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

    #[test]
    fn several_entities_are_counted_apart_with_the_fields_that_differ_most() {
        let mut log = Changelog::default();
        for (entity, id, fields) in [
            ("orders", 1, vec!["status", "amount"]),
            ("orders", 2, vec!["status"]),
            ("customers", 1, vec!["email"]),
        ] {
            let fields: Vec<Value> = fields
                .iter()
                .map(|f| json!({"field": f, "source": 1, "target": 2}))
                .collect();
            let rec = json!({"entity": entity, "key": {"id": id}, "kind": "mismatch",
                             "status": "open", "fields": fields, "since_ms": 10 * id,
                             "reported_ms": 100});
            let key = json!({"entity": entity, "key": {"id": id}}).to_string();
            log.apply(Some(key.as_bytes()), Some(rec.to_string().as_bytes()));
        }
        let report = log.to_json(2);
        assert_eq!(report["open"], 3);
        assert_eq!(report["by_entity"]["orders"]["mismatch"], 2);
        assert_eq!(report["by_entity"]["customers"]["mismatch"], 1);
        assert_eq!(
            report["top_fields"],
            json!([{"entity": "orders", "field": "status", "open": 2},
                   {"entity": "customers", "field": "email", "open": 1}])
        );
        let table = log.to_table(5);
        assert!(
            table.contains("  customers: missing 0, orphan 0, mismatch 1"),
            "{table}"
        );
        assert!(
            table.contains("fields that differ most: orders.status (2)"),
            "{table}"
        );
    }
}
