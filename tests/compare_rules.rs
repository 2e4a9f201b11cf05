//! Column types and compare rules: the same row spelled as two real captures spell it
//! compares equal, and a real difference in any one column is reported as exactly that
//! column. The source is a schema'd Debezium event (Connect logical types decide), the
//! target a flat upsert (the spec's declarations decide).

use driftwatch::cdc::{Decoded, Decoder, Message, SideId};
use driftwatch::row::{CompareRules, Row};
use serde_json::{json, Value};

const SPEC: &str = r#"
entity = "t"
key = ["id"]
[source]
format = "debezium"
version = "source.lsn"
event_time = "source.ts_ms"
input = { files = ["unused"] }
[target]
format = "upsert"
event_time = "@timestamp"
input = { files = ["unused"] }
[compare]
ignore = ["_airbyte_*", "_synced_at"]
[fields.amount]
type = "decimal"
[fields.at]
type = "time"
unit = "us"
precision = "ms"
[fields.ts]
type = "timestamp"
unit = "us"
precision = "ms"
[fields.uid]
type = "uuid"
[fields.flags]
type = "set"
[fields.blob]
type = "bytes"
encoding = "hex"
[fields.doc]
type = "json"
[fields.name]
trim = true
case_insensitive = true
[fields.note]
empty_equals_null = true
[fields.ratio]
relative_tolerance = 1e-9
[fields.total]
type = "decimal"
target = "total_amount"
"#;

fn field(name: &str, ty: &str, logical: Option<&str>) -> Value {
    let mut f = json!({"type": ty, "optional": true, "field": name});
    if let Some(l) = logical {
        f["name"] = l.into();
    }
    f
}

/// The source event: Debezium's PostgreSQL connector with its Connect schema.
fn source_event() -> String {
    let after = json!({
        "id": 1,
        // VariableScaleDecimal 12.345 (unscaled 12345 = 0x3039).
        "amount": {"scale": 3, "value": "MDk="},
        "at": 45_296_789_123i64,                       // 12:34:56.789123 (MicroTime)
        "ts": 1_772_323_200_123_456i64,                // MicroTimestamp
        "uid": "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
        "flags": "b,a",
        "blob": "3q2+7w==",
        "doc": "{\"b\": [1, 2.0], \"a\": 1e2}",
        "name": "  Alice ",
        "note": "",
        "ratio": 0.1 + 0.2,
        "total": "99.50",
    });
    let fields = vec![
        field("id", "int32", None),
        field(
            "amount",
            "struct",
            Some("io.debezium.data.VariableScaleDecimal"),
        ),
        field("at", "int64", Some("io.debezium.time.MicroTime")),
        field("ts", "int64", Some("io.debezium.time.MicroTimestamp")),
        field("uid", "string", Some("io.debezium.data.Uuid")),
        field("flags", "string", Some("io.debezium.data.EnumSet")),
        field("blob", "bytes", None),
        field("doc", "string", Some("io.debezium.data.Json")),
        field("name", "string", None),
        field("note", "string", None),
        field("ratio", "double", None),
        field("total", "string", None),
    ];
    json!({
        "schema": {"type": "struct", "fields": [
            {"type": "struct", "fields": fields, "optional": true, "field": "after"}]},
        "payload": {"before": null, "after": after, "op": "c",
                    "source": {"lsn": 5, "ts_ms": 1_772_323_200_000i64}}
    })
    .to_string()
}

/// The same row as the target stores it, spelled differently everywhere.
fn target_row() -> Value {
    json!({
        "id": 1,
        "amount": "12.3450",
        "at": "12:34:56.789",                          // milliseconds kept
        "ts": "2026-03-01T02:00:00.123+02:00",         // another zone, milliseconds
        "uid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "flags": "a,b",
        "blob": "DEADBEEF",
        "doc": {"a": 100, "b": [1, 2]},
        "name": "alice",
        "note": null,
        "ratio": 0.3,
        "total_amount": 99.5,
        "_airbyte_extracted_at": "2026-03-01T00:00:00Z",
        "_synced_at": "later",
    })
}

fn decode(spec: &driftwatch::spec::Spec, side: SideId, key: Option<&str>, value: &str) -> Row {
    let msg = Message {
        key: key.map(str::as_bytes),
        value: Some(value.as_bytes()),
        timestamp_ms: Some(1_772_323_200_000),
    };
    match Decoder::new(spec, side).decode(&msg) {
        Ok(Decoded::Change(c)) => c.row.expect("a row"),
        other => panic!("{side:?}: {other:?}"),
    }
}

fn diff(spec: &str, target: &Value) -> Vec<String> {
    let spec = driftwatch::spec::load_str(spec).expect("a valid spec");
    let s = decode(&spec, SideId::Source, None, &source_event());
    let t = decode(
        &spec,
        SideId::Target,
        Some(r#"{"id":1}"#),
        &target.to_string(),
    );
    let rules = CompareRules::new(&spec);
    let fields: Vec<String> = rules.diff(&s, &t).into_iter().map(|d| d.field).collect();
    assert_eq!(rules.equal(&s, &t), fields.is_empty());
    fields
}

#[test]
fn the_same_row_spelled_two_ways_is_equal_and_each_real_difference_is_found() {
    assert_eq!(diff(SPEC, &target_row()), Vec::<String>::new());
    let changed = [
        ("amount", json!("12.346")),
        ("at", json!("12:34:56.791")),
        ("ts", json!("2026-03-01T00:00:00.125Z")),
        ("uid", json!("b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")),
        ("flags", json!("a,b,c")),
        ("blob", json!("DEADBEEE")),
        ("doc", json!({"a": 100, "b": [2, 1]})),
        ("name", json!("Alicia")),
        ("note", json!("x")),
        ("ratio", json!(0.3000001)),
    ];
    for (name, value) in changed {
        let mut t = target_row();
        t[name] = value;
        assert_eq!(diff(SPEC, &t), vec![name.to_string()], "{name}");
    }
    // A renamed column is compared under the spec's name.
    let mut t = target_row();
    t["total_amount"] = json!(99.51);
    assert_eq!(diff(SPEC, &t), vec!["total".to_string()]);
    // Without the string rules, spelling matters again.
    let strict = SPEC.replace("trim = true\ncase_insensitive = true\n", "");
    assert_eq!(diff(&strict, &target_row()), vec!["name".to_string()]);
    // `only` compares just the listed columns.
    let only = SPEC.replace("[compare]\n", "[compare]\nonly = [\"id\", \"name\"]\n");
    let mut t = target_row();
    t["amount"] = json!("1");
    t["name"] = json!("Bob");
    assert_eq!(diff(&only, &t), vec!["name".to_string()]);
}

#[test]
fn corrections_carry_the_targets_column_names() {
    let spec = driftwatch::spec::load_str(SPEC).unwrap();
    let s = decode(&spec, SideId::Source, None, &source_event());
    let renamed = CompareRules::new(&spec).target_names(&s);
    assert!(renamed.get("total").is_none() && renamed.get("total_amount").is_some());
    assert_eq!(renamed.get("name"), s.get("name"));
}

#[test]
fn validate_reports_every_misused_rule_with_its_path() {
    let bad = SPEC
        .replace(
            "precision = \"ms\"\n[fields.uid]",
            "[fields.uid]\nprecision = \"ms\"",
        )
        .replace("encoding = \"hex\"", "encoding = \"hex\"\ntrim = true")
        .replace("[compare]\n", "[compare]\nonly = [\"\"]\n")
        .replace("\"_airbyte_*\"", "\"_airbyte_[\"")
        .replace("target = \"total_amount\"", "target = \"name\"")
        + "[fields.x]\ntype = \"time\"\nrelative_tolerance = -1.0\n";
    let bad = bad.replace("[target]", "unavailable_placeholder = \"hex:zz\"\n[target]");
    let problems = driftwatch::spec::load_str(&bad).unwrap_err();
    let err: Vec<String> = problems.iter().map(ToString::to_string).collect();
    let err = err.join("\n");
    for needle in [
        "fields.uid.precision",
        "fields.blob.trim",
        "fields.total.target: `name` is also declared",
        "fields.x.relative_tolerance: must be a finite number",
        "fields.x.relative_tolerance: `relative_tolerance` applies to numeric",
        "compare.ignore.0: not a valid pattern",
        "compare.only.0",
        "source.unavailable_placeholder",
    ] {
        assert!(err.contains(needle), "missing `{needle}` in:\n{err}");
    }
}
