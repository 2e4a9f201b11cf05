//! Unavailable values (unchanged TOAST columns) end to end: the placeholder means "the
//! previous value stands"; with no previous value the column is unknown (never compared,
//! filled in by the next real value); in an insert it is a literal value; on a side whose
//! capture never sends it, it is a literal value too, so a sink that wrote the placeholder
//! into the copy is real drift; and real drift in the TOASTed column is still found.

use driftwatch::run::{run_files, Cluster};
use serde_json::{json, Value};
use std::collections::BTreeMap;

const P: &str = "__debezium_unavailable_value";

const SPEC: &str = r#"
entity = "customers"
key = ["id"]
grace = "10ms"
[source]
format = "debezium"
version = "source.lsn"
event_time = "source.ts_ms"
input = { files = ["unused"] }
[target]
format = "debezium"
version = "source.lsn"
event_time = "source.ts_ms"
input = { files = ["unused"] }
unavailable_placeholders = false
[fields.tags]
type = "json"
"#;

fn ev(op: &str, id: i64, bio: &str, status: &str, lsn: u64, ts: u64) -> Value {
    json!({"before": null, "after": {"id": id, "bio": bio, "status": status},
           "op": op, "source": {"lsn": lsn, "ts_ms": ts}})
}

/// The latest drift record per key: the kind and the differing fields, or "resolved".
fn latest(out: &std::path::Path) -> BTreeMap<i64, String> {
    let text = std::fs::read_to_string(out.join("drift.jsonl")).unwrap();
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        let fields: Vec<String> = r["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap().to_string())
            .collect();
        let state = match r["status"].as_str().unwrap() {
            "open" => format!("{} {}", r["kind"].as_str().unwrap(), fields.join(",")),
            other => other.to_string(),
        };
        m.insert(r["key"]["id"].as_i64().unwrap(), state);
    }
    m
}

fn run(source: &[Value], target: &[Value], spec: &str) -> (BTreeMap<i64, String>, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    // Each file in event-time order (a change read after a later one takes its time).
    let write = |name: &str, lines: &[Value]| {
        let path = dir.path().join(name);
        let mut lines = lines.to_vec();
        lines.sort_by_key(|l| l["source"]["ts_ms"].as_u64().or(l["ts_ms"].as_u64()));
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&path, text).unwrap();
        path
    };
    let (s, t) = (write("s.jsonl", source), write("t.jsonl", target));
    let spec = driftwatch::spec::load_str(spec).unwrap();
    let out = dir.path().join("out");
    run_files(&spec, &Cluster::local(2), vec![s], vec![t], &out).unwrap();
    let dlq = std::fs::read_to_string(out.join("dlq.jsonl")).unwrap();
    assert_eq!(dlq, "", "no dead letters");
    let fixes = std::fs::read_to_string(out.join("corrections.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (latest(&out), fixes)
}

#[test]
fn placeholders_mean_unchanged_or_unknown_and_real_drift_is_still_found() {
    let source = [
        // 1: an update that left the TOASTed bio alone: the previous value stands.
        ev("c", 1, "a long biography", "new", 10, 1_000),
        ev("u", 1, P, "paid", 11, 1_100),
        // 2: the first change seen is such an update: bio is unknown, never compared.
        ev("u", 2, P, "paid", 12, 1_000),
        // 3: the replica's copy of bio is edited behind the pipeline's back.
        ev("c", 3, "bio three", "new", 13, 1_000),
        ev("u", 3, P, "paid", 14, 1_100),
        // 4: an insert holding the placeholder's text holds it as a value.
        ev("c", 4, P, "new", 15, 1_000),
        // 5: the source has the real bio; the replica's sink wrote the placeholder.
        ev("c", 5, "bio five", "new", 16, 1_000),
        ev("u", 5, P, "paid", 17, 1_100),
        // 6: unknown at first, then a real value arrives, and it differs.
        ev("u", 6, P, "new", 18, 1_000),
        ev("u", 6, "bio six", "paid", 19, 1_100),
    ];
    let target = [
        ev("c", 1, "a long biography", "new", 100, 1_000),
        ev("u", 1, "a long biography", "paid", 101, 1_100),
        ev("c", 2, "whatever the replica has", "paid", 102, 1_000),
        ev("c", 3, "bio three", "new", 103, 1_000),
        ev("u", 3, "bio three", "paid", 104, 1_100),
        ev("u", 3, "edited behind our back", "paid", 105, 1_200),
        ev("c", 4, P, "new", 106, 1_000),
        ev("c", 5, "bio five", "new", 107, 1_000),
        ev("u", 5, P, "paid", 108, 1_100),
        ev("c", 6, "bio 6", "paid", 109, 1_100),
        json!({"ts_ms": 5_000}),
    ];
    let (drift, fixes) = run(&source, &target, SPEC);
    let want: BTreeMap<i64, String> = [
        (3, "mismatch bio"),
        (5, "mismatch bio"),
        (6, "mismatch bio"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect();
    assert_eq!(drift, want);
    // The corrections carry the source's real values.
    let bio = |id: i64| {
        fixes
            .iter()
            .rev()
            .find(|c| c["key"]["id"] == id)
            .map(|c| c["value"]["bio"].clone())
    };
    assert_eq!(bio(3), Some(json!("bio three")));
    assert_eq!(bio(5), Some(json!("bio five")));
}

#[test]
fn a_configured_placeholder_in_its_bytes_and_array_forms() {
    let spec = SPEC.replace(
        "[target]",
        "unavailable_placeholder = \"hex:c0ffee\"\n[target]",
    ) + "[fields.blob]\ntype = \"bytes\"\n";
    let row = |id: i64, blob: &str, tags: Value, note: &str, lsn: u64, op: &str| {
        json!({"before": null, "after": {"id": id, "blob": blob, "tags": tags, "note": note},
               "op": op, "source": {"lsn": lsn, "ts_ms": 1_000 + lsn}})
    };
    // 0xC0FFEE in base64 is "wP/u"; as Java's signed byte codes [-64,-1,-18].
    let source = [
        row(1, "AQI=", json!(["a"]), "n", 1, "c"),
        row(1, "wP/u", json!([-64, -1, -18]), "n", 2, "u"),
        // The default placeholder is an ordinary value on this side.
        row(2, "AQI=", json!(["a"]), "n", 3, "c"),
        row(2, "AQI=", json!(["a"]), P, 4, "u"),
    ];
    let target = [
        row(1, "AQI=", json!("[\"a\"]"), "n", 1, "c"),
        row(2, "AQI=", json!("[ \"a\" ]"), "n", 2, "c"),
        json!({"ts_ms": 5_000}),
    ];
    let (drift, _) = run(&source, &target, &spec);
    assert_eq!(drift.get(&1), None, "{drift:?}");
    assert_eq!(drift.get(&2).map(String::as_str), Some("mismatch note"));
}
