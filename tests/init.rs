//! `driftwatch init`: specs from the topics themselves, from sample dumps and from a real
//! Kafka broker (the two give the same specs), built from real Debezium events.

mod support {
    #[allow(dead_code)] // this file uses a subset of the broker helpers
    pub mod broker;
}

use std::path::Path;
use std::process::Command;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/debezium");

fn corpus(file: &str, line: usize) -> String {
    let text = std::fs::read_to_string(format!("{CORPUS}/{file}")).unwrap();
    text.lines().nth(line - 1).unwrap().to_string()
}

/// An orders event from Debezium's PostgreSQL connector, with its Connect schema.
fn pg_orders() -> String {
    r#"{"schema":{"type":"struct","fields":[{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"},{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"12"},"field":"amount"},{"type":"string","optional":false,"name":"io.debezium.time.ZonedTimestamp","version":1,"field":"updated_at"},{"type":"string","optional":true,"name":"io.debezium.data.Json","version":1,"field":"attrs"}],"optional":true,"name":"shop.public.orders.Value","field":"after"}],"optional":false,"name":"shop.public.orders.Envelope"},"payload":{"before":null,"after":{"id":1,"amount":"MDk=","updated_at":"2026-03-01T00:00:00.000000Z","attrs":"{}"},"source":{"connector":"postgresql","ts_ms":1772323200000,"lsn":1234},"op":"c","ts_ms":1772323200001}}"#.into()
}

/// A topic's messages: (key, value).
type Messages = Vec<(Option<String>, String)>;

/// Each topic's messages.
fn topics() -> Vec<(&'static str, Messages)> {
    let begin = corpus("transactions.jsonl", 1);
    vec![
        // PostgreSQL source, MySQL-captured target of the same customers table.
        (
            "shop.public.customers",
            vec![(
                Some(r#"{"id":1}"#.into()),
                corpus("postgres-envelope.jsonl", 1),
            )],
        ),
        (
            "replica.public.customers",
            vec![
                (None, begin.clone()),
                (Some(corpus("keys.jsonl", 3)), corpus("mysql.jsonl", 1)),
            ],
        ),
        (
            "shop.public.orders",
            vec![(None, begin), (Some(r#"{"id":1}"#.into()), pg_orders())],
        ),
        (
            "replica.public.orders",
            vec![(Some(r#"{"id":1}"#.into()), pg_orders())],
        ),
        // No partner: listed, not guessed.
        (
            "shop.public.lonely",
            vec![(Some(r#"{"id":1}"#.into()), pg_orders())],
        ),
        // A pair with nothing to learn from: a heartbeat only.
        ("shop.public.quiet", vec![(None, r#"{"ts_ms":1}"#.into())]),
        (
            "replica.public.quiet",
            vec![(None, r#"{"ts_ms":1}"#.into())],
        ),
    ]
}

fn init_output(args: &[&str], out: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_driftwatch"))
        .arg("init")
        .args(args)
        .args([
            "--source-prefix",
            "shop",
            "--target-prefix",
            "replica",
            "--out",
        ])
        .arg(out)
        .output()
        .unwrap()
}

fn init(args: &[&str], out: &Path) -> String {
    let o = init_output(args, out);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    stdout
}

fn check(out: &Path, stdout: &str) {
    assert!(
        stdout.contains("2 spec(s) written, 1 topic(s) unpaired, 1 pair(s) without a sample")
            && stdout.contains("unpaired: shop.public.lonely")
            && stdout
                .contains("no row change to learn from: shop.public.quiet / replica.public.quiet"),
        "{stdout}"
    );
    let customers = driftwatch::spec::load(&out.join("customers.toml")).unwrap();
    assert_eq!(customers.key, ["id"]);
    assert_eq!(customers.source.input.topics, ["shop.public.customers"]);
    let versions = |s: &driftwatch::spec::Side| s.version.as_ref().unwrap().list().to_vec();
    assert_eq!(versions(&customers.source), ["source.lsn"]);
    assert_eq!(
        versions(&customers.target),
        ["source.file", "source.pos", "source.row"]
    );
    assert!(
        customers.source.unavailable_placeholders && !customers.target.unavailable_placeholders
    );
    let orders = driftwatch::spec::load(&out.join("orders.toml")).unwrap();
    let kinds: Vec<String> = orders
        .fields
        .iter()
        .map(|(n, f)| format!("{n}: {:?} {:?}", f.kind, f.scale))
        .collect();
    assert_eq!(
        kinds,
        [
            "amount: Decimal Some(2)",
            "attrs: Json None",
            "updated_at: Timestamp None"
        ]
    );
}

fn write_dumps(dir: &Path) {
    for (topic, messages) in topics() {
        let lines: String = messages
            .iter()
            .map(|(k, v)| {
                let value: serde_json::Value = serde_json::from_str(v).unwrap();
                let key: serde_json::Value = k.as_deref().map_or(serde_json::Value::Null, |k| {
                    serde_json::from_str(k).unwrap()
                });
                serde_json::json!({"key": key, "value": value}).to_string() + "\n"
            })
            .collect();
        std::fs::write(dir.join(format!("{topic}.jsonl")), lines).unwrap();
    }
}

#[test]
fn specs_from_sample_dumps() {
    let dir = tempfile::tempdir().unwrap();
    let (samples, out) = (dir.path().join("samples"), dir.path().join("specs"));
    std::fs::create_dir_all(&samples).unwrap();
    write_dumps(&samples);
    let stdout = init(&["--from-files", samples.to_str().unwrap()], &out);
    check(&out, &stdout);
    // An existing spec is not overwritten without --force.
    let o = init_output(&["--from-files", samples.to_str().unwrap()], &out);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
}

#[test]
fn specs_from_a_kafka_broker_equal_those_from_dumps() {
    let broker = support::broker::Broker::start();
    for (topic, messages) in topics() {
        broker.create_topic(topic, 1);
        let messages: Vec<(Option<String>, Option<String>)> =
            messages.into_iter().map(|(k, v)| (k, Some(v))).collect();
        broker.produce(topic, &messages);
    }
    let dir = tempfile::tempdir().unwrap();
    let (samples, from_files, from_kafka) = (
        dir.path().join("samples"),
        dir.path().join("a"),
        dir.path().join("b"),
    );
    std::fs::create_dir_all(&samples).unwrap();
    write_dumps(&samples);
    init(&["--from-files", samples.to_str().unwrap()], &from_files);
    let stdout = init(&["--brokers", &broker.addr()], &from_kafka);
    check(&from_kafka, &stdout);
    for name in ["customers.toml", "orders.toml"] {
        let kafka = std::fs::read_to_string(from_kafka.join(name)).unwrap();
        let files = std::fs::read_to_string(from_files.join(name)).unwrap();
        let brokers = format!("\n[kafka]\nbrokers = \"{}\"\n", broker.addr());
        assert_eq!(kafka.replace(&brokers, ""), files, "{name}");
    }
}
