//! Decoders against hand-written, real-shaped Debezium and upsert messages, and a corpus
//! of malformed messages that must each be rejected with a reason.

use driftwatch::cdc::{Decoded, Decoder, Message, SideId, Version};
use driftwatch::row::{JsonRow, ValueRef};

const SPEC: &str = include_str!("../dataflows/orders.toml");

fn decoder(side: SideId) -> Decoder {
    Decoder::new(&driftwatch::spec::load_str(SPEC).unwrap(), side)
}

fn decode(side: SideId, key: Option<&str>, value: &str) -> Result<Decoded, String> {
    decoder(side)
        .decode(&Message {
            key: key.map(str::as_bytes),
            value: Some(value.as_bytes()),
            timestamp_ms: None,
        })
        .map_err(|e| e.0)
}

fn change(side: SideId, key: Option<&str>, value: &str) -> driftwatch::cdc::Change {
    match decode(side, key, value) {
        Ok(Decoded::Change(c)) => c,
        other => panic!("expected a change, got {other:?}"),
    }
}

const WRAPPED: &str = r#"{"schema":{"type":"struct","fields":[{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"10"},"field":"amount"},{"type":"int64","optional":false,"name":"io.debezium.time.MicroTimestamp","version":1,"field":"updated_at"},{"type":"string","optional":true,"field":"status"}],"optional":true,"name":"pg.public.orders.Value","field":"after"}],"name":"pg.public.orders.Envelope"},"payload":{"before":null,"after":{"id":42,"amount":"MDk=","updated_at":1772323200123456,"status":"shipped"},"source":{"version":"2.7.0.Final","connector":"postgresql","name":"pg","ts_ms":1772323200000,"snapshot":"false","db":"shop","schema":"public","table":"orders","txId":771,"lsn":48211,"xmin":null},"op":"u","ts_ms":1772323200010,"transaction":null}}"#;

const BARE_REPLICA: &str = r#"{"before":null,"after":{"id":42,"amount":123.45,"updated_at":"2026-03-01T02:00:00.123456+02:00","status":"shipped","_synced_at":"2026-03-01T00:00:01Z"},"source":{"connector":"postgresql","ts_ms":1772323201000,"lsn":900345},"op":"c","ts_ms":1772323201005}"#;

#[test]
fn wrapped_and_bare_events_decode_to_the_same_values() {
    let s = change(
        SideId::Source,
        Some(r#"{"schema":{"type":"struct","fields":[]},"payload":{"id":42}}"#),
        WRAPPED,
    );
    assert_eq!(
        (s.version, s.time_ms),
        (Some(Version::Num(48211)), Some(1_772_323_200_000))
    );
    let t = change(SideId::Target, None, BARE_REPLICA);
    assert_eq!(
        (t.version, t.time_ms),
        (Some(Version::Num(900_345)), Some(1_772_323_201_000))
    );
    assert_eq!(s.key, t.key, "message key and row key agree");
    let (sr, tr) = (s.row.unwrap(), t.row.unwrap());
    assert!(
        tr.get("_synced_at").is_none(),
        "ignored replica column dropped"
    );
    let rules = driftwatch::row::CompareRules::new(&driftwatch::spec::load_str(SPEC).unwrap());
    assert!(
        rules.diff(&sr, &tr).is_empty(),
        "Decimal bytes = 123.45 and micros = RFC 3339: {:?}",
        rules.diff(&sr, &tr)
    );
    assert_eq!(
        serde_json::to_string(&JsonRow(&sr)).unwrap(),
        r#"{"amount":123.45,"id":42,"status":"shipped","updated_at":"2026-03-01T00:00:00.123456Z"}"#
    );
}

#[test]
fn a_declared_scale_writes_both_sides_decimals_alike() {
    // 123.40 and 123.4: the source's Decimal bytes at scale 2, the replica's JSON
    // number (and a string) with its trailing zero gone. At the spec's scale they are
    // the same bytes, so rows in sync compare by one comparison, not column by column.
    let source = WRAPPED.replace(r#""amount":"MDk=""#, r#""amount":"MDQ=""#);
    let s = change(SideId::Source, None, &source).row.unwrap();
    for amount in ["123.4", "123.40", r#""123.4""#, "123.400"] {
        let replica = BARE_REPLICA.replace("123.45", amount);
        let t = change(SideId::Target, None, &replica).row.unwrap();
        assert_eq!(t.get("amount"), s.get("amount"), "{amount}");
        assert_eq!(t.as_bytes(), s.as_bytes(), "{amount}");
    }
    // More digits than the scale are kept (only zeros are dropped): 123.401 is not
    // 123.40, and its difference is the tolerance's to judge.
    let replica = BARE_REPLICA.replace("123.45", "123.401");
    let t = change(SideId::Target, None, &replica).row.unwrap();
    let exact = driftwatch::row::Decimal {
        mantissa: 123_401,
        scale: 3,
    };
    assert_eq!(t.get("amount"), Some(ValueRef::Decimal(exact)));
}

#[test]
fn deletes_tombstones_and_snapshot_reads() {
    let d = change(
        SideId::Source,
        None,
        r#"{"before":{"id":7},"after":null,"source":{"ts_ms":5,"lsn":9},"op":"d"}"#,
    );
    assert_eq!((d.row, d.version), (None, Some(Version::Num(9))));
    let r = change(
        SideId::Source,
        None,
        r#"{"before":null,"after":{"id":8,"status":"paid"},"source":{"ts_ms":5,"lsn":3,"snapshot":"true"},"op":"r"}"#,
    );
    assert_eq!(r.row.unwrap().get("status"), Some(ValueRef::Str("paid")));
    assert_eq!(
        decode(SideId::Source, Some(r#"{"id":7}"#), "null"),
        Ok(Decoded::Skip)
    );
    assert_eq!(
        decode(
            SideId::Source,
            None,
            r#"{"schema":{"type":"struct"},"payload":null}"#
        ),
        Ok(Decoded::Skip)
    );
    let mut dec = decoder(SideId::Source);
    assert_eq!(
        dec.decode(&Message {
            key: Some(b"{\"id\":7}"),
            value: None,
            timestamp_ms: None
        }),
        Ok(Decoded::Skip)
    );
}

#[test]
fn malformed_messages_are_rejected_with_a_reason() {
    let corpus: &[(&str, &str)] = &[
        ("not json at all", "not a JSON object"),
        ("[1,2,3]", "not a JSON object"),
        (
            r#"{"after":{"id":1},"source":{"ts_ms":1,"lsn":1}}"#,
            "no `op`",
        ),
        (
            r#"{"after":{"id":1},"source":{"ts_ms":1,"lsn":1},"op":"x"}"#,
            "unknown op `x`",
        ),
        (
            r#"{"after":null,"source":{"ts_ms":1,"lsn":1},"op":"c"}"#,
            "without an `after`",
        ),
        (
            r#"{"after":{"status":"paid"},"source":{"ts_ms":1,"lsn":1},"op":"c"}"#,
            "key column `id` is missing",
        ),
        (
            r#"{"after":{"id":null},"source":{"ts_ms":1,"lsn":1},"op":"c"}"#,
            "key column `id` is null",
        ),
        (
            r#"{"after":{"id":{"a":1}},"source":{"ts_ms":1,"lsn":1},"op":"c"}"#,
            "wrong type for key column `id`",
        ),
        (
            r#"{"after":{"id":1},"source":{"ts_ms":1},"op":"c"}"#,
            "no version at `source.lsn`",
        ),
        (
            r#"{"after":{"id":1},"source":{"ts_ms":1,"lsn":-4},"op":"c"}"#,
            "not a non-negative integer",
        ),
        (
            r#"{"after":{"id":1},"source":{"lsn":1},"op":"c"}"#,
            "no event time at `source.ts_ms`",
        ),
        (
            r#"{"after":{"id":1,"amount":"??"},"source":{"ts_ms":1,"lsn":1},"op":"c"}"#,
            "column `amount`",
        ),
        (
            r#"{"after":{"id":1,"updated_at":"yesterday"},"source":{"ts_ms":1,"lsn":1},"op":"c"}"#,
            "column `updated_at`",
        ),
        (
            r#"{"after":[1],"source":{"ts_ms":1,"lsn":1},"op":"c"}"#,
            "after",
        ),
        (
            r#"{"before":null,"after":null,"source":{"ts_ms":1,"lsn":1},"op":"d"}"#,
            "no key",
        ),
        (
            r#"{"after":{"id":1},"source":{"ts_ms":1,"lsn":1},"op":"c""#,
            "not a JSON object",
        ),
    ];
    for (value, reason) in corpus {
        match decode(SideId::Source, None, value) {
            Err(e) => assert!(
                e.contains(reason),
                "{value}: reason `{e}` should mention `{reason}`"
            ),
            Ok(other) => panic!("{value}: accepted as {other:?}"),
        }
    }
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    assert!(decode(
        SideId::Source,
        None,
        &format!(r#"{{"after":{{"id":1,"x":{deep}}},"op":"c"}}"#)
    )
    .is_err());
    let mut dec = decoder(SideId::Source);
    assert!(dec
        .decode(&Message {
            key: None,
            value: Some(&[0xff, 0xfe, b'{']),
            timestamp_ms: None
        })
        .unwrap_err()
        .0
        .contains("UTF-8"));
    let huge = "x".repeat(2 << 20);
    assert!(decode(SideId::Source, None, &huge)
        .unwrap_err()
        .contains("over the limit"));
}

#[test]
fn upserts_from_files_and_kafka() {
    let spec = driftwatch::spec::load_str(include_str!("../dataflows/customers.toml")).unwrap();
    let mut d = Decoder::new(&spec, SideId::Source);
    let line = br#"{"key":{"customer_id":"c-1"},"value":{"customer_id":"c-1","name":"Ada","lifetime_value":"10.50","_version":3,"updated_at":"2026-03-01T00:00:00Z"}}"#;
    let Decoded::Change(c) = d
        .decode(&Message {
            key: None,
            value: Some(line),
            timestamp_ms: None,
        })
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (c.version, c.time_ms),
        (Some(Version::Num(3)), Some(1_772_323_200_000))
    );
    let del = br#"{"key":{"customer_id":"c-1"},"value":null,"timestamp":1772323201000}"#;
    let Decoded::Change(c) = d
        .decode(&Message {
            key: None,
            value: Some(del),
            timestamp_ms: None,
        })
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (c.row, c.version, c.time_ms),
        (None, None, Some(1_772_323_201_000))
    );
    // Kafka: a plain string key and a null value (delete).
    let Decoded::Change(k) = d
        .decode(&Message {
            key: Some(b"c-1"),
            value: None,
            timestamp_ms: Some(5),
        })
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(k.key, c.key);
    // An event time past year 9999 in a plain row field is garbage, not data.
    let mut plain = spec.clone();
    plain.source.event_time = "ts".into();
    let mut p = Decoder::new(&plain, SideId::Source);
    for (ts, ok) in [("1772323200000", true), ("253402300800000", false)] {
        let line =
            format!(r#"{{"key":"c-3","value":{{"customer_id":"c-3","_version":1,"ts":{ts}}}}}"#);
        let got = p.decode(&Message {
            key: None,
            value: Some(line.as_bytes()),
            timestamp_ms: None,
        });
        assert_eq!(got.is_ok(), ok, "{line}: {got:?}");
    }
    for bad in [
        &br#"{"value":{"customer_id":"c-2"}}"#[..],
        br#"{"key":"c-2"}"#,
        br#"{"key":"c-2","value":7}"#,
    ] {
        assert!(
            d.decode(&Message {
                key: None,
                value: Some(bad),
                timestamp_ms: None
            })
            .is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn a_mysql_replica_of_a_postgresql_table_compares_equal_under_its_shipped_spec() {
    let spec = driftwatch::spec::load_str(include_str!("../dataflows/orders-mysql.toml")).unwrap();
    let mysql = r#"{"schema":{"type":"struct","fields":[{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"10"},"field":"amount"},{"type":"int64","optional":false,"name":"io.debezium.time.Timestamp","version":1,"field":"updated_at"},{"type":"string","optional":true,"field":"status"},{"type":"int64","optional":true,"name":"io.debezium.time.Timestamp","version":1,"field":"_synced_at"}],"optional":true,"name":"mysql.shop.orders.Value","field":"after"}],"name":"mysql.shop.orders.Envelope"},"payload":{"before":null,"after":{"id":42,"amount":"MDk=","updated_at":1772323200123,"status":"SHIPPED","_synced_at":1772323201000},"source":{"version":"3.6.1.Final","connector":"mysql","name":"mysql","ts_ms":1772323201000,"snapshot":"false","db":"shop","table":"orders","server_id":223344,"gtid":null,"file":"mysql-bin.000003","pos":154,"row":1,"thread":7,"query":null},"op":"c","ts_ms":1772323201005}}"#;
    let decode = |side, value: &str| {
        let msg = Message {
            key: None,
            value: Some(value.as_bytes()),
            timestamp_ms: None,
        };
        match Decoder::new(&spec, side).decode(&msg) {
            Ok(Decoded::Change(c)) => c,
            other => panic!("{other:?}"),
        }
    };
    let (s, t) = (
        decode(SideId::Source, WRAPPED),
        decode(SideId::Target, mysql),
    );
    assert_eq!(
        t.version.as_ref().map(Version::to_json),
        Some(serde_json::json!(["mysql-bin.000003", 154, 1]))
    );
    let rules = driftwatch::row::CompareRules::new(&spec);
    let (s, t) = (s.row.unwrap(), t.row.unwrap());
    assert!(rules.equal(&s, &t), "{:?}", rules.diff(&s, &t));
}
