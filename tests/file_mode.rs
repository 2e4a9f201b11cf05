//! File mode through the binary (outputs, summary, exit codes), and state that stays flat.

use driftwatch::demo::generator::{generate, GenConfig};
use driftwatch::demo::GeneratedPartition;
use driftwatch::io::Partition;
use std::process::Command;
use std::sync::Arc;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_driftwatch"))
}

#[test]
fn run_writes_outputs_and_a_summary_and_rejects_bad_input_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(&GenConfig {
        events: 3_000,
        keys: 300,
        ..GenConfig::default()
    });
    let (src, tgt) = (dir.path().join("src.jsonl"), dir.path().join("tgt.jsonl"));
    std::fs::write(&src, g.source.join("\n")).unwrap();
    std::fs::write(&tgt, g.target.join("\n") + "\nthis line is not JSON\n").unwrap();
    let out = dir.path().join("out");
    let o = bin()
        .args(["run", "dataflows/orders.toml", "--source-file"])
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
    assert!(
        stderr.contains("source: read 3000")
            && stderr.contains("events/s")
            && stderr.contains("open drift:"),
        "{stderr}"
    );
    let dlq = std::fs::read_to_string(out.join("dlq.jsonl")).unwrap();
    assert_eq!(dlq.lines().count(), 1);
    assert!(
        dlq.contains("not a JSON object")
            && dlq.contains("tgt.jsonl")
            && dlq.contains(&format!("\"line\":{}", g.target.len() + 1)),
        "{dlq}"
    );
    // Latest record per key = the ground truth.
    let mut open = std::collections::BTreeMap::new();
    for line in std::fs::read_to_string(out.join("drift.jsonl"))
        .unwrap()
        .lines()
    {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = r["key"]["id"].as_i64().unwrap();
        if r["status"] == "open" {
            open.insert(id, r["kind"].as_str().unwrap().to_string());
        } else {
            open.remove(&id);
        }
    }
    let want: std::collections::BTreeMap<i64, String> = g
        .expected
        .iter()
        .map(|(k, v)| (*k, v.name().to_string()))
        .collect();
    assert_eq!(open, want);
    assert!(!want.is_empty());
    assert!(std::fs::read_to_string(out.join("corrections.jsonl"))
        .unwrap()
        .contains("driftwatch.kind"));

    let missing = bin()
        .args([
            "run",
            "dataflows/orders.toml",
            "--source-file",
            "/nonexistent",
            "--target-file",
        ])
        .arg(&tgt)
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.starts_with("driftwatch: cannot read input /nonexistent") && err.lines().count() == 1,
        "{err}"
    );
}

/// `validate` refuses `spec` (a file or a directory: exit 2), naming every one of
/// `problems`.
fn refused_by_validate(spec: &std::path::Path, problems: &[&str]) {
    let o = bin().arg("validate").arg(spec).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    for needle in problems {
        assert!(err.contains(needle), "missing `{needle}` in:\n{err}");
    }
}

#[test]
fn validate_reports_every_problem_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let text = include_str!("../dataflows/orders.toml").replace("grace = \"5s\"", "grace = \"5 sec\"\ngrase = \"1s\"").replace("tolerance = 0.005", "tolerance = -1.0").replace("version = \"source.lsn\"\nevent_time = \"source.ts_ms\"\ninput = { topics = [\"replica.public.orders\"] }", "version = \"source..lsn\"\nevent_time = \"source.ts_ms\"\ninput = { topics = [] }");
    std::fs::write(&bad, text).unwrap();
    refused_by_validate(
        &bad,
        &[
            "grace: unknown duration unit",
            "grase: unknown field",
            "fields.amount.tolerance",
            "target.version",
            "target.input",
        ],
    );
    // `select` takes Debezium events by envelope paths; an upsert side has no envelope.
    let upsert = dir.path().join("upsert.toml");
    let text = include_str!("../dataflows/customers.toml").replace(
        "[source]\n",
        "[source]\nselect = { \"source.table\" = \"customers\", \"source..x\" = \"y\" }\n",
    );
    std::fs::write(&upsert, text).unwrap();
    refused_by_validate(
        &upsert,
        &[
            "source.select: select takes `debezium` events",
            "source.select: `source..x` is not a path",
        ],
    );
    let ok = bin()
        .args(["validate", "dataflows/orders.toml"])
        .output()
        .unwrap();
    assert!(
        ok.status.success()
            && String::from_utf8_lossy(&ok.stdout)
                .contains("drift_topic = \"driftwatch.orders.drift\"")
    );
}

#[test]
fn validate_takes_a_directory_and_refuses_what_cannot_run_together() {
    let ok = bin().args(["validate", "dataflows"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success() && stdout.contains("3 specs can run together in one job"),
        "{stdout}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let orders = include_str!("../dataflows/orders.toml");
    std::fs::write(dir.path().join("a.toml"), orders).unwrap();
    // Same entity and outputs, and it reads the other's drift topic.
    let b = orders.replace("\"pg.public.orders\"", "\"driftwatch.orders.drift\"");
    std::fs::write(dir.path().join("b.toml"), b).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a spec").unwrap();
    refused_by_validate(
        dir.path(),
        &[
            "b.toml: entity: `orders` is also the entity of",
            "b.toml: outputs.corrections_topic: topic `driftwatch.orders.corrections` is also",
            "a.toml: outputs.drift_topic: topic `driftwatch.orders.drift` is an input of",
        ],
    );
}

#[test]
fn state_stays_flat_as_history_grows() {
    // 200 keys, 60k changes per side: state must track keys, not history.
    let spec = driftwatch::spec::load_str(driftwatch::demo::ORDERS_SPEC).unwrap();
    let g = generate(&GenConfig {
        events: 60_000,
        keys: 200,
        wrapped: false,
        ..GenConfig::default()
    });
    let (s, t) = (Arc::new(g.source), Arc::new(g.target));
    let parts: driftwatch::run::PartitionFactory = Arc::new(move |_, _| {
        Ok(vec![
            Box::new(GeneratedPartition::new(
                driftwatch::cdc::SideId::Source,
                s.clone(),
                0,
            )) as Box<dyn Partition>,
            Box::new(GeneratedPartition::new(
                driftwatch::cdc::SideId::Target,
                t.clone(),
                0,
            )),
        ])
    });
    let report = driftwatch::run::execute(
        &spec,
        &driftwatch::run::Cluster::local(1),
        parts,
        None,
        10_000,
    )
    .unwrap();
    let samples = &report.samples[0];
    assert!(samples.len() >= 10, "{samples:?}");
    for (read, sizes) in samples {
        // Keys: the 200 source ids plus the replica's extra rows (p_extra 0.001 of 60k).
        assert!(sizes.keys <= 200 + 300, "{read}: {sizes:?}");
        // Changes waiting for their time to complete: bounded by the read-ahead
        // (2 s of event time at one change per 2 ms per side, plus replication lag),
        // never by the history (120k messages here).
        assert!(
            sizes.pending <= 6_000,
            "after {read} messages {} changes are pending: {samples:?}",
            sizes.pending
        );
    }
    let third = samples.len() / 3;
    let peak = |s: &[(u64, driftwatch::dataflow::sides::Sizes)]| {
        s.iter().map(|(_, z)| z.keys + z.pending).max().unwrap()
    };
    assert!(
        peak(&samples[2 * third..]) <= peak(&samples[..third]) * 3 / 2,
        "state grows with history: {samples:?}"
    );
}

#[test]
fn ground_truth_knows_when_each_lasting_difference_began() {
    // The generator's accounting (what the load-test harness measures latency from):
    // for every key that ends different, the event time its lasting episode began must
    // be the `since_ms` of the engine's open record.
    for seed in [1, 2, 3] {
        let g = generate(&GenConfig {
            events: 8_000,
            keys: 500,
            seed,
            p_drop: 0.02,
            p_corrupt: 0.01,
            p_extra: 0.005,
            wrapped: false,
            ..GenConfig::default()
        });
        assert!(g.expected.len() > 20, "seed {seed}: {}", g.expected.len());
        assert_eq!(g.since.len(), g.expected.len(), "seed {seed}");
        let dir = tempfile::tempdir().unwrap();
        let (s, t) = (dir.path().join("s.jsonl"), dir.path().join("t.jsonl"));
        std::fs::write(&s, g.source.join("\n")).unwrap();
        std::fs::write(&t, g.target.join("\n")).unwrap();
        let spec = driftwatch::spec::load_str(driftwatch::demo::ORDERS_SPEC).unwrap();
        let out = dir.path().join("out");
        driftwatch::run::run_files(
            &spec,
            &driftwatch::run::Cluster::local(2),
            vec![s],
            vec![t],
            &out,
        )
        .unwrap();
        let mut latest = std::collections::BTreeMap::new();
        for line in std::fs::read_to_string(out.join("drift.jsonl"))
            .unwrap()
            .lines()
        {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            latest.insert(v["key"]["id"].as_i64().unwrap(), v);
        }
        let open: std::collections::BTreeMap<i64, u64> = latest
            .iter()
            .filter(|(_, v)| v["status"] == "open")
            .map(|(id, v)| (*id, v["since_ms"].as_u64().unwrap()))
            .collect();
        // Reported at the spec's event-time resolution.
        let step = spec.time_resolution.as_millis();
        let since: std::collections::BTreeMap<i64, u64> =
            g.since.iter().map(|(id, t)| (*id, t - t % step)).collect();
        assert_eq!(open, since, "seed {seed}");
    }
}
