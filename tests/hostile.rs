//! Hostile input: the decoders fuzzed with arbitrary bytes and with mutations of real
//! events (proptest, a bounded number of cases so CI runs it every time), and a corpus of
//! hostile messages pushed through a whole file-mode job: it must finish, and every
//! message must either decode or land in the dead-letter output with a reason.

use driftwatch::cdc::{Decoded, Decoder, Message, SideId};
use driftwatch::demo::generator::{generate, GenConfig};
use proptest::prelude::*;
use std::sync::OnceLock;

const ORDERS: &str = include_str!("../dataflows/orders.toml");
const CUSTOMERS: &str = include_str!("../dataflows/customers.toml");

fn decoders() -> Vec<Decoder> {
    let mut out = Vec::new();
    for text in [ORDERS, CUSTOMERS] {
        let spec = driftwatch::spec::load_str(text).unwrap();
        out.push(Decoder::new(&spec, SideId::Source));
        out.push(Decoder::new(&spec, SideId::Target));
    }
    out
}

/// Real events to mutate: wrapped and bare Debezium, and flat upserts.
fn seeds() -> &'static Vec<String> {
    static SEEDS: OnceLock<Vec<String>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let g = generate(&GenConfig {
            events: 40,
            keys: 10,
            ..GenConfig::default()
        });
        let mut seeds: Vec<String> = g.source.into_iter().take(8).collect();
        seeds.extend(g.target.into_iter().take(8));
        seeds.push(
            r#"{"key":{"customer_id":7},"value":{"customer_id":7,"name":"Ada","_version":3,"updated_at":"2026-03-01T00:00:00Z","lifetime_value":"12.50"}}"#.into(),
        );
        seeds.push(r#"{"key":{"customer_id":7},"value":null}"#.into());
        seeds
    })
}

/// Decodes with every decoder; a rejection must carry a reason.
fn check(key: Option<&[u8]>, value: Option<&[u8]>) {
    for d in &mut decoders() {
        let msg = Message {
            key,
            value,
            timestamp_ms: Some(1_772_323_200_000),
        };
        match d.decode(&msg) {
            Ok(Decoded::Change(c)) => assert!(!c.key.as_bytes().is_empty()),
            Ok(Decoded::Skip | Decoded::NonRow { .. } | Decoded::Truncate { .. }) => {}
            Err(e) => assert!(!e.0.trim().is_empty(), "a rejection without a reason"),
        }
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
    Delete(usize, usize),
    Duplicate(usize, usize),
}

fn mutate(seed: &str, mutations: &[Mutation]) -> Vec<u8> {
    let mut b = seed.as_bytes().to_vec();
    for m in mutations {
        let n = b.len().max(1);
        match *m {
            Mutation::Flip(i, x) => {
                if let Some(c) = b.get_mut(i % n) {
                    *c ^= x;
                }
            }
            Mutation::Truncate(i) => b.truncate(i % n),
            Mutation::Insert(i, x) => b.insert((i % n).min(b.len()), x),
            Mutation::Delete(i, len) => {
                let start = (i % n).min(b.len());
                let end = (start + len).min(b.len());
                b.drain(start..end);
            }
            Mutation::Duplicate(i, len) => {
                let start = (i % n).min(b.len());
                let end = (start + len).min(b.len());
                let chunk = b[start..end].to_vec();
                b.splice(end..end, chunk);
            }
        }
    }
    b
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Bytes that matter to JSON, and any byte.
    let byte = prop_oneof![
        prop::sample::select(b"{}[]\":,\\0123456789-.eEnulltruefalse ".to_vec()),
        any::<u8>(),
    ];
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Mutation::Flip(i, x)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), byte).prop_map(|(i, x)| Mutation::Insert(i, x)),
        (any::<usize>(), 1..40usize).prop_map(|(i, l)| Mutation::Delete(i, l)),
        (any::<usize>(), 1..200usize).prop_map(|(i, l)| Mutation::Duplicate(i, l)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(
        key in prop::option::of(prop::collection::vec(any::<u8>(), 0..64)),
        value in prop::option::of(prop::collection::vec(any::<u8>(), 0..600)),
    ) {
        check(key.as_deref(), value.as_deref());
    }

    #[test]
    fn mutated_real_events_never_panic(
        seed in 0..18usize,
        mutations in prop::collection::vec(mutation(), 1..6),
        keyed in any::<bool>(),
    ) {
        let seed = &seeds()[seed % seeds().len()];
        let value = mutate(seed, &mutations);
        let key = keyed.then(|| mutate(r#"{"id":42}"#, &mutations[..1]));
        check(key.as_deref(), Some(&value));
    }
}

/// Messages built to hurt: each must be rejected (or decoded), never crash the job.
fn corpus() -> Vec<String> {
    let env = |after: &str| {
        format!(
            r#"{{"before":null,"after":{after},"source":{{"lsn":1,"ts_ms":1772323200000}},"op":"c"}}"#
        )
    };
    let deep = "[".repeat(50_000) + &"]".repeat(50_000);
    vec![
        env(&format!(r#"{{"id":1,"x":{deep}}}"#)),
        "{".repeat(100_000),
        env(r#"{"id":1e999999}"#),
        env(r#"{"id":123456789012345678901234567890}"#),
        env(r#"{"id":1,"note":"\ud800"}"#),
        env(r#"{"id":1,"amount":"////////////////////////////////////////////////"}"#),
        env(r#"{"id":1,"amount":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#),
        env(r#"{"id":1,"updated_at":9223372036854775807}"#),
        env(r#"{"id":1,"updated_at":-9223372036854775808}"#),
        env(r#"{"id":1,"updated_at":"+999999-12-31T23:59:59Z"}"#),
        env(r#"{"id":1,"id":{"nested":true}}"#),
        env(r#"{"id":[1,2]}"#),
        env(r#""a string row""#),
        r#"{"schema":{"type":"struct","fields":[{"type":"struct","fields":[{"type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"100000"},"field":"amount"}],"field":"after"}]},"payload":{"before":null,"after":{"id":1,"amount":"AQ=="},"source":{"lsn":1,"ts_ms":1},"op":"c"}}"#.into(),
        r#"{"schema":{"type":"struct","fields":"nope"},"payload":{"after":{"id":1},"source":{"lsn":1,"ts_ms":1},"op":"c"}}"#.into(),
        r#"{"schema":null,"payload":"not an object"}"#.into(),
        r#"{"op":"c","after":{"id":1},"source":{"lsn":"18446744073709551616","ts_ms":1}}"#.into(),
        r#"{"op":"c","after":{"id":1},"source":{"lsn":1,"ts_ms":-5}}"#.into(),
        r#"{"op":"c","after":{"id":1},"source":{"lsn":1,"ts_ms":1e300}}"#.into(),
        "\u{feff}{\"op\":\"c\"}".into(),
        "x".repeat(3 << 20),
    ]
}

#[test]
fn a_job_survives_the_hostile_corpus_and_dead_letters_every_rejection() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = corpus();
    let source = dir.path().join("source.jsonl");
    std::fs::write(&source, corpus.join("\n") + "\n").unwrap();
    let target = dir.path().join("target.jsonl");
    std::fs::write(&target, "").unwrap();
    let out = dir.path().join("out");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_driftwatch"))
        .args(["run", "dataflows/orders.toml", "--source-file"])
        .arg(&source)
        .arg("--target-file")
        .arg(&target)
        .arg("--out")
        .arg(&out)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let summary = String::from_utf8_lossy(&status.stderr).into_owned();
    let dlq = std::fs::read_to_string(out.join("dlq.jsonl")).unwrap();
    let letters: Vec<serde_json::Value> = dlq
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for l in &letters {
        assert!(!l["reason"].as_str().unwrap().is_empty(), "{l}");
        assert!(l["origin"]["line"].as_u64().unwrap() >= 1, "{l}");
    }
    // Every line was either applied or rejected: nothing lost, nothing silently dropped.
    let number = |what: &str| -> u64 {
        let at = summary
            .find(what)
            .unwrap_or_else(|| panic!("{what} in {summary}"));
        summary[at + what.len()..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let read = number("source: read ");
    let rejected = number("rejected ");
    let accepted = number("applied ") + number("duplicate ") + number("stale ");
    assert_eq!(read, corpus.len() as u64, "{summary}");
    assert_eq!(rejected, letters.len() as u64, "{summary}");
    assert_eq!(
        accepted + number("tombstones ") + rejected,
        read,
        "{summary}\n{dlq}"
    );
    let lines: Vec<u64> = letters
        .iter()
        .map(|l| l["origin"]["line"].as_u64().unwrap())
        .collect();
    let accepted_lines: Vec<usize> = (1..=corpus.len())
        .filter(|n| !lines.contains(&(*n as u64)))
        .collect();
    // Only two lines are data: 14 (its schema's absurd scale is ignored for the spec's
    // own) and 17 (a version beyond 64 bits is a number all the same, as Oracle's SCNs).
    assert_eq!(accepted_lines, vec![14, 17], "{dlq}");
    assert!(
        rejected >= corpus.len() as u64 - 4,
        "most of the corpus is rejected: {summary}"
    );
    assert!(
        letters.iter().any(|l| l["truncated"] == true),
        "the oversized message is cut in its dead letter"
    );
}
