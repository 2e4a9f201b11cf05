//! Every type that crosses a worker boundary survives timely's serialization between
//! processes (bincode, through the same `ContainerBytes` code timely's channels call).
//!
//! A type that serializes but cannot be decoded by bincode (`#[serde(untagged)]`,
//! `flatten`, anything that needs `deserialize_any`) works in one process, where
//! timely moves values without serializing them, and crashes the first multi-process
//! cluster that ships one. The builders below match exhaustively on every enum, so a new
//! variant does not compile until it is covered here.

use driftwatch::cdc::{Change, Origin, SideId, Version};
use driftwatch::dataflow::{
    Correction, DeadLetter, DriftKind, DriftRecord, DriftState, Meta, Output, Status, Time,
};
use driftwatch::row::{Decimal, FieldDiff, Key, Row, RowBuilder, Value, ValueRef};
use std::fmt::Debug;
use std::sync::Arc;
use timely::bytes::arc::BytesMut;
use timely::dataflow::channels::ContainerBytes;

/// Serializes a batch as timely does between processes and decodes it back.
fn round_trip<T>(batch: Vec<T>) -> Vec<T>
where
    T: serde::Serialize + for<'a> serde::Deserialize<'a>,
{
    let mut bytes = Vec::with_capacity(batch.length_in_bytes());
    batch.into_bytes(&mut bytes);
    assert_eq!(bytes.len(), batch.length_in_bytes());
    <Vec<T> as ContainerBytes>::from_bytes(BytesMut::from(bytes).freeze())
}

fn assert_round_trips<T>(batch: Vec<T>)
where
    T: serde::Serialize + for<'a> serde::Deserialize<'a> + PartialEq + Debug + Clone,
{
    assert!(!batch.is_empty());
    assert_eq!(round_trip(batch.clone()), batch);
}

fn row(values: &[(&str, ValueRef<'_>)]) -> Row {
    let mut b = RowBuilder::default();
    for (name, v) in values {
        b.push(name, *v).unwrap();
    }
    b.finish_row()
}

fn key(id: i64) -> Key {
    let mut b = RowBuilder::default();
    b.push("id", ValueRef::Int(id)).unwrap();
    b.finish_key()
}

/// One value of every `Value` variant.
fn every_value() -> Vec<Value> {
    let all = [
        Value::Null,
        Value::Bool(true),
        Value::Int(-7),
        Value::Float(2.5),
        Value::Decimal(Decimal::parse("12.50").unwrap()),
        Value::Str("é ✓".into()),
        Value::Timestamp(1_700_000_000_000_000_123),
        Value::Date(19_000),
        Value::Json(r#"{"a":[1,2]}"#.into()),
        Value::Time(45_296_789_000_000),
        Value::Bytes(vec![0, 0xFE, 0xFF, 7]),
        Value::Unavailable,
    ];
    for v in &all {
        match v {
            Value::Null
            | Value::Bool(_)
            | Value::Int(_)
            | Value::Float(_)
            | Value::Decimal(_)
            | Value::Str(_)
            | Value::Timestamp(_)
            | Value::Date(_)
            | Value::Json(_)
            | Value::Time(_)
            | Value::Bytes(_)
            | Value::Unavailable => {}
        }
    }
    all.into()
}

fn full_row() -> Row {
    row(&[
        ("amount", ValueRef::Decimal(Decimal::parse("9.99").unwrap())),
        ("flag", ValueRef::Bool(false)),
        ("id", ValueRef::Int(1)),
        ("note", ValueRef::Str("x")),
        ("null", ValueRef::Null),
        ("ratio", ValueRef::Float(0.25)),
        ("ts", ValueRef::Timestamp(1)),
        ("day", ValueRef::Date(2)),
        ("doc", ValueRef::Json("[]")),
        ("at", ValueRef::Time(1_000)),
        ("blob", ValueRef::Bytes(&[1, 2, 0xFE, 0xFF])),
        ("toasted", ValueRef::Unavailable),
    ])
}

/// One origin of every kind.
fn every_origin() -> Vec<Origin> {
    let all = vec![
        Origin::File {
            file: Arc::from("/data/source.jsonl"),
            line: 42,
        },
        Origin::Kafka {
            topic: Arc::from("shop.public.orders"),
            partition: 3,
            offset: 1_234_567,
        },
        Origin::Generated {
            stream: Arc::from("replica"),
            seq: 9,
        },
    ];
    for o in &all {
        match o {
            Origin::File { .. } | Origin::Kafka { .. } | Origin::Generated { .. } => {}
        }
    }
    all
}

/// Outputs of every kind: drift (open and resolved, every kind), corrections (upsert
/// and delete), and dead letters of every origin, with and without key and value.
fn every_output() -> Vec<Output> {
    let fields: Vec<FieldDiff> = every_value()
        .into_iter()
        .enumerate()
        .map(|(i, v)| FieldDiff {
            field: format!("f{i}"),
            source: Some(v.clone()),
            target: (i % 2 == 0).then_some(v),
        })
        .collect();
    let mut all = Vec::new();
    for kind in DriftKind::ALL {
        for status in [Status::Open, Status::Resolved] {
            all.push(Output::Drift(DriftRecord {
                key: key(kind as i64),
                status,
                drift: DriftState {
                    kind,
                    fields: fields.clone(),
                    source: Some(Meta {
                        version: Version::Num(3),
                        ts_ms: 10,
                    }),
                    target: (kind != DriftKind::Missing).then(|| Meta {
                        version: mysql_version(),
                        ts_ms: 9,
                    }),
                    source_row: (kind != DriftKind::Orphan).then(full_row),
                },
                since: 1,
                reported: 2,
                resolved: (status == Status::Resolved).then_some(3),
            }));
        }
        all.push(Output::Correction(Correction {
            key: key(10),
            kind,
            row: (kind != DriftKind::Orphan).then(full_row),
        }));
    }
    for (i, origin) in every_origin().into_iter().enumerate() {
        for side in SideId::BOTH {
            all.push(Output::DeadLetter(DeadLetter {
                side,
                origin: origin.clone(),
                reason: "expected value at line 1 column 1".into(),
                key: (i != 1).then(|| b"{\"id\":1}".to_vec()),
                value: (i != 2).then(|| vec![0xff, 0xfe, b'{']),
                truncated: i == 0,
            }));
        }
    }
    for o in &all {
        match o {
            Output::Drift(_) | Output::Correction(_) | Output::DeadLetter(_) => {}
        }
    }
    all
}

#[test]
fn outputs_of_every_kind_cross_processes() {
    let outputs = every_output();
    assert_round_trips(outputs.iter().map(|o| (o.clone(), 5 as Time)).collect());
    assert_round_trips(outputs);
}

#[test]
fn dead_letters_of_every_origin_cross_processes() {
    // The bug this file was written for: an untagged `Origin` inside a dead letter.
    assert_round_trips(every_origin());
    let dead: Vec<Output> = every_output()
        .into_iter()
        .filter(|o| matches!(o, Output::DeadLetter(_)))
        .collect();
    assert_eq!(dead.len(), 6);
    assert_round_trips(dead.into_iter().map(|d| (d, 7 as Time)).collect());
}

/// A composite version (MySQL's file, pos and row), in its byte encoding.
fn mysql_version() -> Version {
    Version::from_encoded(b"\x02mysql-bin.000003\x00\x00\x01\x03154\x01\x011")
}

#[test]
fn changes_cross_processes() {
    // Inserts/updates, deletes (no row), and upsert deletes (no version, no time).
    let changes = vec![
        (
            Change {
                key: key(1),
                version: Some(Version::Num(5)),
                time_ms: Some(1_700_000_000_000),
                row: Some(full_row()),
            },
            1_700_000_000_000 as Time,
        ),
        (
            Change {
                key: key(2),
                version: Some(mysql_version()),
                time_ms: Some(1),
                row: None,
            },
            1,
        ),
        (
            Change {
                key: key(3),
                version: None,
                time_ms: None,
                row: None,
            },
            2,
        ),
    ];
    assert_round_trips(changes);
}

#[test]
fn checkpoint_control_messages_cross_processes() {
    // (boundary, write?, next boundary), broadcast by the checkpointer.
    let control: Vec<(Time, bool, Time)> = vec![(10, true, 20), (20, false, 30)];
    assert_round_trips(control);
}

#[test]
fn values_of_every_kind_cross_processes() {
    let values = every_value();
    let got = round_trip(values.clone());
    // Value has no PartialEq (floats); compare the debug forms.
    assert_eq!(format!("{got:?}"), format!("{values:?}"));
}
