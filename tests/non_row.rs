//! Events that are not row changes, end to end in file mode: transaction metadata,
//! heartbeats, logical decoding messages and schema changes are counted and skipped
//! (never dead letters); a truncate empties its side at its time; a primary-key update
//! (a delete of the old key, a create of the new) just works.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::Command;

const SPEC: &str = r#"
entity = "orders"
key = ["id"]
grace = "100ms"
[source]
format = "debezium"
version = "source.lsn"
event_time = "source.ts_ms"
input = { files = ["unused"] }
[target]
format = "debezium"
version = ["source.file", "source.pos", "source.row"]
event_time = "source.ts_ms"
input = { files = ["unused"] }
"#;

fn pg(op: &str, id: i64, lsn: u64, ts: u64) -> Value {
    let row = json!({"id": id, "status": "new"});
    let (before, after) = match op {
        "d" => (json!({"id": id}), Value::Null),
        _ => (Value::Null, row),
    };
    json!({"before": before, "after": after, "op": op,
           "source": {"connector": "postgresql", "lsn": lsn, "ts_ms": ts}})
}

fn mysql(op: &str, id: i64, pos: u64, ts: u64) -> Value {
    let row = json!({"id": id, "status": "new"});
    let (before, after) = match op {
        "d" => (row, Value::Null),
        _ => (Value::Null, row),
    };
    json!({"before": before, "after": after, "op": op,
           "source": {"connector": "mysql", "file": "mysql-bin.000003", "pos": pos, "row": 0, "ts_ms": ts}})
}

/// The latest drift record per key: kind, or "resolved".
fn latest(drift: &str) -> BTreeMap<i64, String> {
    let mut out = BTreeMap::new();
    for line in drift.lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        let state = match r["status"].as_str().unwrap() {
            "open" => r["kind"].as_str().unwrap().to_string(),
            other => other.to_string(),
        };
        out.insert(r["key"]["id"].as_i64().unwrap(), state);
    }
    out
}

#[test]
fn non_row_events_are_counted_truncates_empty_a_side_and_key_updates_just_work() {
    let heartbeat = |ts: u64| json!({"ts_ms": ts});
    let source = [
        json!({"status": "BEGIN", "id": "571:10", "ts_ms": 1000, "event_count": null}),
        pg("c", 1, 10, 1_000),
        pg("c", 2, 11, 1_000),
        pg("c", 5, 12, 1_000),
        json!({"status": "END", "id": "571:10", "ts_ms": 1000, "event_count": 3}),
        json!({"op": "m", "ts_ms": 1500, "source": {"lsn": 13, "ts_ms": 1500},
               "message": {"prefix": "p", "content": "eA=="}}),
        // The primary key of 5 becomes 6: a delete of the old key, a create of the new.
        pg("d", 5, 14, 1_500),
        Value::Null,
        pg("c", 6, 14, 1_500),
        json!({"op": "t", "source": {"lsn": 20, "ts_ms": 2_000}, "ts_ms": 2_001}),
        // A change the database made before the truncate, delivered after it, for a key
        // nothing has seen yet: stale, it must not bring the row back.
        pg("c", 3, 15, 2_500),
        pg("c", 4, 25, 2_500),
        heartbeat(9_000),
    ];
    let target = [
        json!({"source": {"file": "mysql-bin.000003", "pos": 100, "ts_ms": 900},
               "databaseName": "shop", "ddl": "CREATE TABLE orders (id INT PRIMARY KEY)"}),
        mysql("c", 1, 200, 1_000),
        mysql("c", 2, 300, 1_000),
        mysql("c", 5, 400, 1_000),
        mysql("d", 5, 500, 1_600),
        mysql("c", 6, 600, 1_600),
        mysql("c", 4, 700, 2_600),
        heartbeat(9_000),
    ];
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, lines: &[Value]| {
        let path = dir.path().join(name);
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&path, text).unwrap();
        path
    };
    let (src, tgt) = (write("src.jsonl", &source), write("tgt.jsonl", &target));
    let spec = dir.path().join("spec.toml");
    std::fs::write(&spec, SPEC).unwrap();
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_driftwatch"))
        .arg("run")
        .arg(&spec)
        .arg("--source-file")
        .arg(&src)
        .arg("--target-file")
        .arg(&tgt)
        .arg("--out")
        .arg(&out)
        .args(["-w", "2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let dlq = std::fs::read_to_string(out.join("dlq.jsonl")).unwrap();
    assert_eq!(dlq, "", "no dead letters");
    assert!(
        stderr.contains(
            "not row changes: truncate 1, message 1, transaction 2, heartbeat 1, schema_change 0"
        ) && stderr.contains(
            "not row changes: truncate 0, message 0, transaction 0, heartbeat 1, schema_change 1"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("stale 1"), "{stderr}");
    let drift = std::fs::read_to_string(out.join("drift.jsonl")).unwrap();
    // After the truncate the target's 1, 2 and 6 are orphans; 3 never came back; 4 is
    // in sync; 5 and 6 (the key update) were in sync before the truncate.
    let want: BTreeMap<i64, String> = [(1, "orphan"), (2, "orphan"), (6, "orphan")]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
    assert_eq!(latest(&drift), want, "{drift}");
}
