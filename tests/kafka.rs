//! End to end on a real Kafka-API broker (tansu, started by `scripts/broker`): CDC for
//! both sides in, drift, corrections and dead letters out, checked against the
//! generator's ground truth.

mod support {
    pub mod broker;
}

use driftwatch::dataflow::DriftKind;
use driftwatch::demo::generator::{generate, GenConfig, Generated};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;
use support::broker::{Broker, Record};

/// The order id of a generated event (wrapped or bare; `after`, or `before` for deletes).
fn order_id(line: &str) -> i64 {
    let v: Value = serde_json::from_str(line).unwrap();
    let env = if v.get("payload").is_some() { &v["payload"] } else { &v };
    let row = if env["after"].is_null() { &env["before"] } else { &env["after"] };
    row["id"].as_i64().unwrap()
}

/// Debezium-style keyed messages: key `{"id":N}`.
fn keyed(lines: &[String]) -> Vec<(Option<String>, Option<String>)> {
    lines
        .iter()
        .map(|l| (Some(format!(r#"{{"id":{}}}"#, order_id(l))), Some(l.clone())))
        .collect()
}

fn setup(broker: &Broker, g: &Generated, prefix: &str) {
    broker.create_topic(&format!("{prefix}.src"), 2);
    broker.create_topic(&format!("{prefix}.tgt"), 2);
    broker.produce(&format!("{prefix}.src"), &keyed(&g.source));
    broker.produce(&format!("{prefix}.tgt"), &keyed(&g.target));
}

/// Runs the orders job over `prefix`'s topics to their ends; extra args (cluster).
fn run_job(broker: &Broker, prefix: &str, out: &str, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_driftwatch"))
        .args(["run", "dataflows/orders.toml", "--stop-at-end", "--brokers"])
        .arg(broker.addr())
        .args(["--source-topic", &format!("{prefix}.src")])
        .args(["--target-topic", &format!("{prefix}.tgt")])
        .args(["--drift-topic", &format!("{out}.drift")])
        .args(["--corrections-topic", &format!("{out}.corrections")])
        .args(["--dlq-topic", &format!("{out}.dlq")])
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

/// The latest record per key.
fn latest(records: &[Record]) -> BTreeMap<String, Option<String>> {
    records
        .iter()
        .map(|r| (r.key.clone().unwrap(), r.value.clone()))
        .collect()
}

/// Open drift by order id, from the drift topic's latest records.
fn open_drift(records: &[Record]) -> BTreeMap<i64, DriftKind> {
    let mut out = BTreeMap::new();
    for (key, value) in latest(records) {
        let k: Value = serde_json::from_str(&key).unwrap();
        assert_eq!(k["entity"], "orders", "{key}");
        let v: Value = serde_json::from_str(value.as_deref().unwrap()).unwrap();
        if v["status"] == "open" {
            let kind = match v["kind"].as_str().unwrap() {
                "missing" => DriftKind::Missing,
                "orphan" => DriftKind::Orphan,
                "mismatch" => DriftKind::Mismatch,
                other => panic!("kind {other}"),
            };
            out.insert(k["key"]["id"].as_i64().unwrap(), kind);
        }
    }
    out
}

fn gen(seed: u64) -> Generated {
    generate(&GenConfig {
        events: 3_000,
        keys: 300,
        seed,
        p_drop: 0.02,
        p_corrupt: 0.01,
        p_extra: 0.005,
        ..GenConfig::default()
    })
}

#[test]
fn orders_end_to_end_match_the_ground_truth_and_reject_malformed_messages() {
    let broker = Broker::start();
    let g = gen(21);
    assert!(g.expected.len() >= 10, "too few faults to test: {:?}", g.expected);
    setup(&broker, &g, "e2e");
    broker.produce(
        "e2e.tgt",
        &[(Some(r#"{"id":7}"#.into()), Some("{not json".into()))],
    );
    let out = run_job(&broker, "e2e", "e2e.out", &["-w", "2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let drift = broker.consume_all("e2e.out.drift");
    assert_eq!(open_drift(&drift), g.expected, "open drift vs ground truth");

    // Corrections: the latest per key upserts the source row, or deletes an orphan.
    let corrections = latest(&broker.consume_all("e2e.out.corrections"));
    for (id, kind) in &g.expected {
        let value = &corrections[&format!(r#"{{"id":{id}}}"#)];
        match kind {
            DriftKind::Orphan => assert_eq!(value, &None, "orphan {id}"),
            _ => {
                let row: Value = serde_json::from_str(value.as_deref().unwrap()).unwrap();
                assert_eq!(row["id"], *id, "{row}");
            }
        }
    }

    let dlq = broker.consume_all("e2e.out.dlq");
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!(dlq[0].key.as_deref(), Some(r#"{"id":7}"#));
    let reason = &dlq[0].headers.iter().find(|(k, _)| k == "driftwatch.reason").unwrap().1;
    assert!(reason.contains("JSON"), "{reason}");
    let letter: Value = serde_json::from_str(dlq[0].value.as_deref().unwrap()).unwrap();
    assert_eq!(letter["origin"]["topic"], "e2e.tgt", "{letter}");
}
