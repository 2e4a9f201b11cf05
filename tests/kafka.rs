//! End to end on a real Apache Kafka broker (started by `scripts/broker`): CDC for
//! both sides in, drift, corrections and dead letters out, checked against the
//! generator's ground truth.

mod support {
    pub mod broker;
}

use driftwatch::dataflow::DriftKind;
use driftwatch::demo::generator::{generate, GenConfig, Generated};
use driftwatch::io::now_ms;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;
use support::broker::{free_port, keyed, scrape, Broker, RawMessage, Record};

fn setup(broker: &Broker, g: &Generated, prefix: &str) {
    broker.create_topic(&format!("{prefix}.src"), 2);
    broker.create_topic(&format!("{prefix}.tgt"), 2);
    broker.produce(&format!("{prefix}.src"), &keyed(&g.source));
    broker.produce(&format!("{prefix}.tgt"), &keyed(&g.target));
}

/// Runs the orders job over `prefix`'s topics to their ends; extra args (cluster).
fn run_job(broker: &Broker, prefix: &str, out: &str, extra: &[&str]) -> std::process::Output {
    spawn_job(broker, "dataflows/orders.toml", prefix, out, extra)
        .wait_with_output()
        .unwrap()
}

/// Starts the job of `spec` over `prefix`'s topics to their ends, writing to `out`'s;
/// extra args (cluster).
fn spawn_job(
    broker: &Broker,
    spec: &str,
    prefix: &str,
    out: &str,
    extra: &[&str],
) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_driftwatch"))
        .args(["run", spec, "--stop-at-end", "--brokers"])
        .arg(broker.addr())
        .args(["--source-topic", &format!("{prefix}.src")])
        .args(["--target-topic", &format!("{prefix}.tgt")])
        .args(["--drift-topic", &format!("{out}.drift")])
        .args(["--corrections-topic", &format!("{out}.corrections")])
        .args(["--dlq-topic", &format!("{out}.dlq")])
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for every process of a job; each must succeed.
fn succeed(children: Vec<std::process::Child>) {
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
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
    assert!(
        g.expected.len() >= 10,
        "too few faults to test: {:?}",
        g.expected
    );
    setup(&broker, &g, "e2e");
    broker.produce(
        "e2e.tgt",
        &[(Some(r#"{"id":7}"#.into()), Some("{not json".into()))],
    );
    let out = run_job(&broker, "e2e", "e2e.out", &["-w", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

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

    // Read offsets are committed under the job's group, for standard lag tools.
    for topic in ["e2e.src", "e2e.tgt"] {
        assert_eq!(
            broker.committed("driftwatch.orders", topic, 2),
            broker.ends(topic, 2),
            "{topic}"
        );
    }

    // `driftwatch report` renders the same open drift from the topic.
    let report = Command::new(env!("CARGO_BIN_EXE_driftwatch"))
        .args([
            "report",
            "dataflows/orders.toml",
            "--format",
            "json",
            "--top",
            "3",
        ])
        .args([
            "--brokers",
            &broker.addr(),
            "--drift-topic",
            "e2e.out.drift",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["open"], g.expected.len(), "{report}");
    for (kind, name) in [
        (DriftKind::Missing, "missing"),
        (DriftKind::Orphan, "orphan"),
        (DriftKind::Mismatch, "mismatch"),
    ] {
        let n = g.expected.values().filter(|k| **k == kind).count();
        assert_eq!(report["by_kind"][name], n, "{report}");
    }
    let top = report["top"].as_array().unwrap();
    assert_eq!(top.len(), 3.min(g.expected.len()));
    assert!(top[0]["since_ms"].as_u64() <= top[top.len() - 1]["since_ms"].as_u64());
    assert_eq!(report["oldest_since_ms"], top[0]["since_ms"]);

    let dlq = broker.consume_all("e2e.out.dlq");
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!(dlq[0].key.as_deref(), Some(r#"{"id":7}"#));
    let reason = &dlq[0]
        .headers
        .iter()
        .find(|(k, _)| k == "driftwatch.reason")
        .unwrap()
        .1;
    assert!(reason.contains("JSON"), "{reason}");
    let letter: Value = serde_json::from_str(dlq[0].value.as_deref().unwrap()).unwrap();
    assert_eq!(letter["origin"]["topic"], "e2e.tgt", "{letter}");
}

/// Each key's records in order (a changelog's meaning), whatever the partitioning.
fn per_key(records: &[Record]) -> BTreeMap<String, Vec<Option<String>>> {
    let mut out: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    for r in records {
        out.entry(r.key.clone().unwrap_or_default())
            .or_default()
            .push(r.value.clone());
    }
    out
}

#[test]
fn one_worker_four_workers_and_two_processes_give_the_same_drift() {
    let broker = Broker::start();
    let g = gen(33);
    setup(&broker, &g, "eq");
    // Malformed messages and tombstones on every partition of both sides, so dead
    // letters (with their origins) cross process boundaries on their way to worker 0;
    // the generated changes include deletes.
    let mut malformed = 0;
    for topic in ["eq.src", "eq.tgt"] {
        for partition in 0..2 {
            let id = |n: i32| Some(format!(r#"{{"id":{n}}}"#).into_bytes());
            let bad: Vec<RawMessage> = vec![
                (id(partition), Some(b"{not json".to_vec())),
                (None, Some(vec![0xff, 0xfe, 0x00, b'{'])),
                (
                    id(1),
                    Some(br#"{"op":"u","after":null,"source":{}}"#.to_vec()),
                ),
            ];
            malformed += bad.len();
            broker.produce_raw(topic, partition, &bad);
            broker.produce_raw(topic, partition, &[(id(partition + 1), None)]);
        }
    }
    for out in ["eq.w1", "eq.w4", "eq.n2", "eq.c2", "eq.cn2"] {
        broker.create_outputs(out);
    }
    let one = run_job(&broker, "eq", "eq.w1", &["-w", "1"]);
    assert!(
        one.status.success(),
        "{}",
        String::from_utf8_lossy(&one.stderr)
    );
    let four = run_job(&broker, "eq", "eq.w4", &["-w", "4"]);
    assert!(
        four.status.success(),
        "{}",
        String::from_utf8_lossy(&four.stderr)
    );

    // Two processes of two workers each, on loopback.
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..2).map(|_| free_port()).collect();
    let hostfile = dir.path().join("hosts");
    std::fs::write(
        &hostfile,
        ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}\n"))
            .collect::<String>(),
    )
    .unwrap();
    let hosts = hostfile.to_str().unwrap().to_string();
    let n2: Vec<_> = (0..2)
        .map(|p| {
            let args = ["-w", "2", "-n", "2", "-p", &p.to_string(), "-h", &hosts];
            spawn_job(&broker, "dataflows/orders.toml", "eq", "eq.n2", &args)
        })
        .collect();
    succeed(n2);

    // Declared co-partitioned (both topics keyed alike, two partitions each): each
    // partition's keys kept by the worker that reads it, in one process and in two
    // (whose claims cross between the processes).
    let co = dir.path().join("orders-co.toml");
    let spec = std::fs::read_to_string("dataflows/orders.toml").unwrap();
    std::fs::write(&co, format!("co_partitioned = true\n{spec}")).unwrap();
    let co = co.to_str().unwrap();
    succeed(vec![spawn_job(&broker, co, "eq", "eq.c2", &["-w", "2"])]);
    let cn2: Vec<_> = (0..2)
        .map(|p| {
            let args = ["-n", "2", "-p", &p.to_string(), "-h", &hosts];
            spawn_job(&broker, co, "eq", "eq.cn2", &args)
        })
        .collect();
    succeed(cn2);
    // Topics of different partition counts cannot be co-partitioned: refused.
    broker.create_topic("eq.tgt3", 3);
    let refused = Command::new(env!("CARGO_BIN_EXE_driftwatch"))
        .args(["run", co, "--stop-at-end", "--brokers"])
        .arg(broker.addr())
        .args(["--source-topic", "eq.src", "--target-topic", "eq.tgt3"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains(
            "declares co_partitioned, but topic eq.src has 2 partitions and topic eq.tgt3 3"
        ),
        "{said}"
    );

    let drift = |out: &str| per_key(&broker.consume_all(&format!("{out}.drift")));
    let corrections = |out: &str| per_key(&broker.consume_all(&format!("{out}.corrections")));
    let reference = drift("eq.w1");
    assert_eq!(open_drift(&broker.consume_all("eq.w1.drift")), g.expected);
    assert!(!reference.is_empty());
    assert_eq!(drift("eq.w4"), reference, "1x4 vs 1x1");
    assert_eq!(drift("eq.n2"), reference, "2x2 vs 1x1");
    assert_eq!(drift("eq.c2"), reference, "1x2 co-partitioned vs 1x1");
    assert_eq!(drift("eq.cn2"), reference, "2x1 co-partitioned vs 1x1");
    let reference = corrections("eq.w1");
    assert_eq!(corrections("eq.w4"), reference, "1x4 vs 1x1");
    assert_eq!(corrections("eq.n2"), reference, "2x2 vs 1x1");
    assert_eq!(corrections("eq.c2"), reference, "1x2 co-partitioned vs 1x1");
    assert_eq!(
        corrections("eq.cn2"),
        reference,
        "2x1 co-partitioned vs 1x1"
    );
    // Every malformed message is a dead letter once, with its origin, in every shape.
    let dead = |out: &str| {
        let mut d: Vec<Record> = broker.consume_all(&format!("{out}.dlq"));
        // Partitions may differ (the DLQ is keyed); the records may not.
        d.iter_mut().for_each(|r| r.partition = 0);
        d.sort();
        d
    };
    let reference = dead("eq.w1");
    assert_eq!(reference.len(), malformed, "{reference:?}");
    for r in &reference {
        let letter: Value = serde_json::from_str(r.value.as_deref().unwrap()).unwrap();
        assert!(letter["origin"]["offset"].is_u64(), "{letter}");
    }
    assert_eq!(dead("eq.w4"), reference, "1x4 vs 1x1");
    assert_eq!(dead("eq.n2"), reference, "2x2 vs 1x1");
    assert_eq!(dead("eq.c2"), reference, "1x2 co-partitioned vs 1x1");
    assert_eq!(dead("eq.cn2"), reference, "2x1 co-partitioned vs 1x1");
}

#[test]
fn corrections_applied_to_the_target_resolve_the_drift() {
    let broker = Broker::start();
    let g = gen(45);
    assert!(!g.expected.is_empty());
    setup(&broker, &g, "loop");
    let first = run_job(&broker, "loop", "loop.1", &["-w", "2"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(open_drift(&broker.consume_all("loop.1.drift")), g.expected);

    // A consumer applies the corrections to the replica, which emits CDC for them.
    let last_ts =
        GenConfig::default().start_ms + 3_000 * GenConfig::default().step_us / 1_000 + 120_000;
    let fixes: Vec<(Option<String>, Option<String>)> =
        latest(&broker.consume_all("loop.1.corrections"))
            .into_iter()
            .enumerate()
            .map(|(i, (key, row))| {
                let id: Value = serde_json::from_str(&key).unwrap();
                let source = format!(
                    r#""source":{{"lsn":{},"ts_ms":{}}}"#,
                    90_000_000 + i,
                    last_ts
                );
                let event = match row {
                    Some(row) => format!(r#"{{"before":null,"after":{row},{source},"op":"u"}}"#),
                    None => format!(r#"{{"before":{id},"after":null,{source},"op":"d"}}"#),
                };
                (Some(key), Some(event))
            })
            .collect();
    assert_eq!(fixes.len(), g.expected.len());
    broker.produce("loop.tgt", &fixes);

    let second = run_job(&broker, "loop", "loop.2", &["-w", "2"]);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let drift = broker.consume_all("loop.2.drift");
    assert!(!drift.is_empty(), "the drift was reported, then resolved");
    assert_eq!(
        open_drift(&drift),
        BTreeMap::new(),
        "every difference resolved"
    );
    let summary = String::from_utf8_lossy(&second.stderr);
    assert!(
        summary.contains("open drift: missing 0, orphan 0, mismatch 0"),
        "{summary}"
    );
}

/// A child process killed if the test fails before it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A bare Debezium orders event for a hand-made fault: the row was updated at
/// `updated_ms`, the change committed at `ts_ms`.
fn order_event(
    id: i64,
    lsn: u64,
    updated_ms: u64,
    ts_ms: u64,
    op: &str,
) -> (Option<String>, Option<String>) {
    let row = format!(
        r#"{{"id":{id},"customer_id":1,"status":"paid","amount":"AQ==","items":1,"note":null,"updated_at":{}}}"#,
        updated_ms * 1000
    );
    let after = if op == "d" { "null".to_string() } else { row };
    let before = if op == "d" {
        format!(r#"{{"id":{id}}}"#)
    } else {
        "null".into()
    };
    let value = format!(
        r#"{{"before":{before},"after":{after},"source":{{"lsn":{lsn},"ts_ms":{ts_ms}}},"op":"{op}"}}"#
    );
    (Some(format!(r#"{{"id":{id}}}"#)), Some(value))
}

/// Polls the drift topic until `done` holds for its open drift, failing on any open
/// record for a key outside `allowed` (false drift).
fn wait_for_drift(
    broker: &Broker,
    topic: &str,
    allowed: &[i64],
    done: impl Fn(&BTreeMap<i64, DriftKind>, &[Record]) -> bool,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let records = broker.consume_all(topic);
        for r in &records {
            let v: Value = serde_json::from_str(r.value.as_deref().unwrap()).unwrap();
            let id = v["key"]["id"].as_i64().unwrap();
            assert!(allowed.contains(&id), "false drift: {v}");
        }
        if done(&open_drift(&records), &records) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out: {records:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

#[test]
fn live_job_reports_drift_on_heartbeats_resolves_it_and_stops_on_sigterm() {
    let broker = Broker::start();
    // A healthy replica of recent changes (no injected faults): the target's whole
    // backlog is in its topic before the job starts, so its consumer begins behind.
    let start = now_ms() - 30_000;
    let g = generate(&GenConfig {
        events: 2_000,
        keys: 200,
        seed: 5,
        start_ms: start,
        step_us: 5_000,
        p_drop: 0.0,
        p_corrupt: 0.0,
        p_extra: 0.0,
        wrapped: false,
        ..GenConfig::default()
    });
    assert!(g.expected.is_empty());
    setup(&broker, &g, "live");
    // One order the replica never gets, committed 20 s ago.
    let updated = start + 10_000;
    broker.produce(
        "live.src",
        &[order_event(5_000, 99_000_000, updated, updated, "c")],
    );

    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let mut job = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_driftwatch"))
            .args(["run", "dataflows/orders.toml", "-w", "2"])
            .args(["--metrics-addr", &metrics_addr, "--brokers"])
            .arg(broker.addr())
            .args(["--source-topic", "live.src", "--target-topic", "live.tgt"])
            .args([
                "--drift-topic",
                "live.drift",
                "--corrections-topic",
                "live.corrections",
            ])
            .args(["--dlq-topic", "live.dlq"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let job = &mut job.0;

    // No new input arrives: only the caught-up partitions' heartbeats move time past
    // the grace period, and the missing order is reported; nothing else ever is.
    wait_for_drift(&broker, "live.drift", &[5_000], |open, _| {
        open.get(&5_000) == Some(&DriftKind::Missing)
    });
    // The metrics say the same, and show each partition's consumer lag (published by
    // the workers once a second).
    let expected = [
        r#"driftwatch_open_drift{entity="orders",kind="missing"} 1"#,
        r#"driftwatch_open_drift{entity="orders",kind="mismatch"} 0"#,
        r#"driftwatch_consumer_lag{side="source",topic="live.src",partition="0"} 0"#,
        r#"driftwatch_consumer_lag{side="target",topic="live.tgt",partition="1"} 0"#,
        r#"driftwatch_events_total{entity="orders",side="source",outcome="read"} 2001"#,
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let metrics = scrape(&metrics_addr);
        assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
        let missing: Vec<_> = expected.iter().filter(|l| !metrics.contains(*l)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "missing {missing:?} in\n{metrics}"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }

    // The replica catches up: the drift resolves, live.
    let fix = order_event(5_000, 99_000_000, updated, now_ms(), "c");
    broker.produce("live.tgt", &[fix]);
    wait_for_drift(&broker, "live.drift", &[5_000], |open, records| {
        open.is_empty() && records.len() >= 2
    });

    // SIGTERM: the job stops cleanly and prints its summary.
    let pid = job.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(s) = job.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the job ignored SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(job.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("source: read 2001"), "{stderr}");
}

#[test]
fn a_partition_vouches_for_the_wall_clock_only_once_caught_up() {
    use driftwatch::io::kafka::{config::KafkaConfig, source::KafkaInputs};
    let broker = Broker::start();
    broker.create_topic("hb.src", 1);
    broker.create_topic("hb.tgt", 1);
    let g = gen(3);
    broker.produce("hb.tgt", &keyed(&g.target[..200]));
    let spec = driftwatch::spec::load_str(driftwatch::demo::ORDERS_SPEC).unwrap();
    let config = KafkaConfig::new(&spec, Some(&broker.addr())).unwrap();
    let topics = |t: &str| vec![t.to_string()];
    let inputs =
        KafkaInputs::discover(config, &topics("hb.src"), &topics("hb.tgt"), 2_000).unwrap();
    let mut parts = inputs.open(0, 1).unwrap();
    assert_eq!(parts.len(), 2);
    let (src, tgt) = parts.split_at_mut(1);
    let (src, tgt) = (&mut src[0], &mut tgt[0]);

    // A lagging consumer (messages unread) holds its time back however long it waits;
    // an empty partition is caught up as soon as its end is known.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let mut empty_vouched = false;
    while std::time::Instant::now() < deadline {
        assert_eq!(
            tgt.heartbeat(),
            None,
            "a lagging partition vouched for the wall clock"
        );
        let _ = src.poll(10, &mut |_, _| panic!("hb.src is empty"));
        empty_vouched |= src.heartbeat().is_some();
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        empty_vouched,
        "an empty, caught-up partition never advanced"
    );

    // Once everything is read: the wall clock less the skew allowance.
    let mut read = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while read < 200 {
        assert!(std::time::Instant::now() < deadline, "read {read} of 200");
        let _ = tgt.poll(64, &mut |_, _| read += 1).unwrap();
    }
    let mut vouched = None;
    while vouched.is_none() && std::time::Instant::now() < deadline {
        let _ = tgt.poll(64, &mut |_, _| panic!("nothing more to read"));
        vouched = tgt.heartbeat();
    }
    let vouched = vouched.expect("a caught-up partition vouches for the wall clock");
    let expected = now_ms() - 2_000;
    assert!(
        vouched <= expected && vouched + 5_000 >= expected,
        "{vouched} vs {expected}"
    );
}

#[test]
fn a_partition_that_stops_fetching_does_not_vouch_past_messages_it_has_not_seen() {
    // librdkafka's cached end of a partition is only as new as its last fetch. A paused
    // partition fetches nothing (as a slow broker answers late): messages produced
    // meanwhile must hold its time back, or they would arrive after its clock had
    // passed them.
    use driftwatch::io::kafka::{config::KafkaConfig, source::KafkaInputs};
    let broker = Broker::start();
    broker.create_topic("stale.src", 1);
    broker.create_topic("stale.tgt", 1);
    let spec = driftwatch::spec::load_str(driftwatch::demo::ORDERS_SPEC).unwrap();
    let config = KafkaConfig::new(&spec, Some(&broker.addr())).unwrap();
    let topics = |t: &str| vec![t.to_string()];
    let inputs =
        KafkaInputs::discover(config, &topics("stale.src"), &topics("stale.tgt"), 500).unwrap();
    let mut parts = inputs.open(0, 1).unwrap();
    let src = &mut parts[0];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while src.heartbeat().is_none() {
        assert!(std::time::Instant::now() < deadline, "never caught up");
        let _ = src.poll(10, &mut |_, _| panic!("stale.src is empty"));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    src.set_paused(true).unwrap();
    let produced_at = now_ms();
    broker.produce("stale.src", &keyed(&gen(3).source[..20]));
    // Once the end has been asked again, the unread messages hold the partition back.
    std::thread::sleep(std::time::Duration::from_millis(600));
    let until = std::time::Instant::now() + std::time::Duration::from_millis(1_500);
    while std::time::Instant::now() < until {
        if let Some(t) = src.heartbeat() {
            assert!(
                t < produced_at,
                "vouched for {t}, past messages produced at {produced_at} and not read"
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    // Resumed and read: it vouches again, for a time after they were produced.
    src.set_paused(false).unwrap();
    let mut read = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let vouched = loop {
        assert!(std::time::Instant::now() < deadline, "read {read} of 20");
        let _ = src.poll(64, &mut |_, _| read += 1).unwrap();
        if read == 20 {
            if let Some(t) = src.heartbeat().filter(|t| *t + 500 > produced_at) {
                break t;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(vouched <= now_ms() - 500, "{vouched}");
}

#[test]
fn messages_fetched_before_the_queues_are_split_are_read_in_order_not_lost() {
    // The queues can only be split after the assignment; a fetch answered in between
    // lands on the consumer's main queue. A pause there makes it certain.
    use driftwatch::io::kafka::{config::KafkaConfig, source::KafkaInputs};
    let broker = Broker::start();
    broker.create_topic("split.src", 2);
    broker.create_topic("split.tgt", 1);
    let g = gen(5);
    broker.produce("split.src", &keyed(&g.source[..400]));
    let spec = driftwatch::spec::load_str(driftwatch::demo::ORDERS_SPEC).unwrap();
    let config = KafkaConfig::new(&spec, Some(&broker.addr())).unwrap();
    let topics = |t: &str| vec![t.to_string()];
    let mut inputs =
        KafkaInputs::discover(config, &topics("split.src"), &topics("split.tgt"), 2_000).unwrap();
    inputs.stop_at_end = true;
    inputs.split_delay = std::time::Duration::from_millis(1_500);
    let mut parts = inputs.open(0, 1).unwrap();
    assert_eq!(parts.len(), 3);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut offsets: Vec<Vec<u64>> = vec![Vec::new(); 3];
    let mut done = [false; 3];
    while !done.iter().all(|d| *d) {
        assert!(
            std::time::Instant::now() < deadline,
            "stuck: read {:?} messages",
            offsets.iter().map(Vec::len).collect::<Vec<_>>()
        );
        for (i, part) in parts.iter_mut().enumerate() {
            let poll = part.poll(64, &mut |_, pos| offsets[i].push(pos)).unwrap();
            done[i] |= poll == driftwatch::io::Poll::Done;
        }
    }
    let total: usize = offsets.iter().map(Vec::len).sum();
    assert_eq!(total, 400, "every message read once");
    for o in &offsets {
        let expected: Vec<u64> = (0..o.len() as u64).collect();
        assert_eq!(o, &expected, "in offset order, none twice");
    }
}
