//! `driftwatch report`: the drift topics' latest record per key, as the current open drift.
//!
//! A drift topic is a changelog: the latest record per key is the truth (DESIGN.md).
//! The report reads every entity's drift topic from the beginning up to the high
//! watermarks seen at start, keeps the latest record per key, and renders the open ones:
//! counts by kind and by entity, the oldest, the fields that differ most, and the top
//! records (oldest first) with their field differences. `--follow` keeps reading and
//! prints again whenever the open drift changes.

mod view;

use crate::dataflow::DriftKind;
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
use view::{Entry, View};

/// The drift changelogs read so far, as the report's incrementally maintained view.
pub struct Changelog {
    view: View,
    /// Records that were not drift records (counted, not fatal).
    pub unreadable: u64,
}

impl Default for Changelog {
    fn default() -> Self {
        Changelog {
            view: View::new(),
            unreadable: 0,
        }
    }
}

impl Changelog {
    /// Applies one message of a drift topic (its effect shows after [`Changelog::settle`]).
    pub fn apply(&mut self, key: Option<&[u8]>, value: Option<&[u8]>) {
        let Some(key) = key.map(|k| String::from_utf8_lossy(k).into_owned()) else {
            self.unreadable += 1;
            return;
        };
        match value.map(serde_json::from_slice::<DriftMessage>) {
            None => self.view.upsert(key, None),
            Some(Ok(record)) => self.view.upsert(key, Some(Entry::of(&record))),
            Some(Err(_)) => self.unreadable += 1,
        }
    }

    /// Brings the view up to date; whether the report changed.
    pub fn settle(&mut self) -> bool {
        self.view.settle()
    }

    /// The report as JSON.
    pub fn to_json(&mut self, top: usize) -> Value {
        self.settle();
        let s = self.view.state.borrow();
        let mut by_kind: BTreeMap<&str, i64> =
            DriftKind::ALL.iter().map(|k| (k.name(), 0)).collect();
        let mut by_entity: BTreeMap<&str, BTreeMap<&str, i64>> = BTreeMap::new();
        for ((entity, kind), n) in &s.open {
            *by_kind.entry(kind.name()).or_default() += n;
            let kinds = by_entity
                .entry(entity)
                .or_insert_with(|| DriftKind::ALL.iter().map(|k| (k.name(), 0)).collect());
            *kinds.entry(kind.name()).or_default() += n;
        }
        let mut fields: Vec<(&(String, String), &i64)> = s.fields.iter().collect();
        fields.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let top_fields: Vec<Value> = fields
            .into_iter()
            .take(top)
            .map(|((entity, field), n)| json!({"entity": entity, "field": field, "open": n}))
            .collect();
        let records: Vec<Value> = s
            .oldest
            .keys()
            .take(top)
            .filter_map(|(_, _, text)| serde_json::from_str(text).ok())
            .collect();
        json!({
            "open": s.open.values().sum::<i64>(),
            "by_kind": by_kind,
            "by_entity": by_entity,
            "top_fields": top_fields,
            "oldest_since_ms": s.oldest.keys().next().map(|(since, _, _)| since),
            "resolved": s.resolved,
            "top": records,
        })
    }

    /// The report as a human table.
    pub fn to_table(&mut self, top: usize) -> String {
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
        let rows: Vec<DriftMessage> = report["top"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| serde_json::from_value(v.clone()).ok())
            .collect();
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
    let print = |log: &mut Changelog| -> anyhow::Result<()> {
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
    print(&mut log)?;
    if !o.follow {
        return Ok(());
    }
    // Follow: print again when the open drift changed, at most once a second.
    let mut changed = false;
    let mut printed = std::time::Instant::now();
    loop {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => log.apply(m.key(), m.payload()),
            Some(Err(e)) => eprintln!("driftwatch: reading the drift topics: {e} (retrying)"),
            None => {}
        }
        changed |= log.settle();
        if changed && printed.elapsed() >= Duration::from_secs(1) {
            println!();
            print(&mut log)?;
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
        log.apply(Some(b"k"), Some(b"not json"));
        assert!(log.settle());
        assert!(!log.settle(), "nothing new");
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
        log.apply(Some(key(2).as_bytes()), None);
        assert!(log.settle());
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

    /// The report from scratch: the latest record per key, then the counts.
    fn from_scratch(log: &[(String, Option<Value>)], top: usize) -> Value {
        let mut latest: BTreeMap<&str, &Value> = BTreeMap::new();
        for (k, v) in log {
            match v {
                Some(v) => latest.insert(k, v),
                None => latest.remove(k.as_str()),
            };
        }
        let open: Vec<(&&str, &&Value)> = latest
            .iter()
            .filter(|(_, v)| v["status"] == "open")
            .collect();
        let mut by_kind: BTreeMap<String, i64> = DriftKind::ALL
            .iter()
            .map(|k| (k.name().to_string(), 0))
            .collect();
        let mut by_entity: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        let mut fields: BTreeMap<(String, String), i64> = BTreeMap::new();
        for (_, v) in &open {
            let (entity, kind) = (v["entity"].as_str().unwrap(), v["kind"].as_str().unwrap());
            *by_kind.get_mut(kind).unwrap() += 1;
            *by_entity
                .entry(entity.into())
                .or_insert_with(|| {
                    DriftKind::ALL
                        .iter()
                        .map(|k| (k.name().to_string(), 0))
                        .collect()
                })
                .get_mut(kind)
                .unwrap() += 1;
            for f in v["fields"].as_array().unwrap() {
                *fields
                    .entry((entity.into(), f["field"].as_str().unwrap().into()))
                    .or_default() += 1;
            }
        }
        let mut fields: Vec<_> = fields.into_iter().collect();
        fields.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut oldest: Vec<(u64, &str, &Value)> = open
            .iter()
            .map(|(k, v)| (v["since_ms"].as_u64().unwrap(), **k, **v))
            .collect();
        oldest.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        json!({
            "open": open.len(),
            "by_kind": by_kind,
            "by_entity": by_entity,
            "top_fields": fields.iter().take(top).map(|((e, f), n)| json!({"entity": e, "field": f, "open": n})).collect::<Vec<_>>(),
            "oldest_since_ms": oldest.first().map(|o| o.0),
            "resolved": latest.len() - open.len(),
            "top": oldest.iter().take(top).map(|o| o.2.clone()).collect::<Vec<_>>(),
        })
    }

    #[test]
    fn the_view_equals_a_from_scratch_report_at_every_step() {
        use rand::{Rng, SeedableRng};
        for seed in 0..20u64 {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
            let mut log = Changelog::default();
            let mut history: Vec<(String, Option<Value>)> = Vec::new();
            for step in 0..200 {
                let entity = ["orders", "customers"][rng.gen_range(0..2)];
                let id = rng.gen_range(0..8);
                let key = json!({"entity": entity, "key": {"id": id}}).to_string();
                let kind = ["missing", "orphan", "mismatch"][rng.gen_range(0..3)];
                let status = ["open", "resolved"][rng.gen_range(0..2)];
                let since = rng.gen_range(0..50u64);
                let value = (!rng.gen_bool(0.1)).then(|| {
                    let fields: Vec<Value> = ["a", "b", "c"]
                        .iter()
                        .filter(|_| rng.gen_bool(0.5))
                        .map(|f| json!({"field": f, "source": 1, "target": 2}))
                        .collect();
                    json!({"entity": entity, "key": {"id": id},
                           "kind": kind, "status": status,
                           "fields": fields, "source": null, "target": null,
                           "since_ms": since, "reported_ms": 99})
                });
                let bytes = value.as_ref().map(|v| v.to_string().into_bytes());
                log.apply(Some(key.as_bytes()), bytes.as_deref());
                history.push((key, value));
                if rng.gen_bool(0.2) || step == 199 {
                    assert_eq!(
                        log.to_json(3),
                        from_scratch(&history, 3),
                        "seed {seed}, step {step}"
                    );
                }
            }
        }
    }
}
