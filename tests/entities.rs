//! Many entities in one job: in file mode, each entity's drift, corrections and dead
//! letters in a job of three equal those of the entity run alone, with 1 and 2 workers;
//! on Apache Kafka, each entity's drift topic holds its own ground truth.

mod support {
    #[allow(dead_code)] // this file uses a subset of the broker helpers
    pub mod broker;
}

use driftwatch::demo::generator::{generate, GenConfig};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_driftwatch"))
}

/// Writes entity `name`'s spec and generated inputs (with a malformed line) into `dir`.
fn entity(dir: &Path, name: &str, seed: u64) -> std::path::PathBuf {
    let g = generate(&GenConfig {
        events: 3_000,
        keys: 300,
        seed,
        ..GenConfig::default()
    });
    let (src, tgt) = (
        dir.join(format!("{name}.src.jsonl")),
        dir.join(format!("{name}.tgt.jsonl")),
    );
    std::fs::write(&src, g.source.join("\n")).unwrap();
    std::fs::write(&tgt, g.target.join("\n") + "\nnot JSON\n").unwrap();
    let spec = include_str!("../dataflows/orders.toml")
        .replace("entity = \"orders\"", &format!("entity = \"{name}\""))
        .replace("driftwatch.orders.", &format!("driftwatch.{name}."))
        .replace(
            "input = { topics = [\"pg.public.orders\"] }",
            &format!("input = {{ files = [{:?}] }}", src.display().to_string()),
        )
        .replace(
            "input = { topics = [\"replica.public.orders\"] }",
            &format!("input = {{ files = [{:?}] }}", tgt.display().to_string()),
        );
    let path = dir.join("specs").join(format!("{name}.toml"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, spec).unwrap();
    path
}

/// Every output line, by entity and file, sorted.
fn outputs(out: &Path) -> BTreeMap<(String, &'static str), Vec<String>> {
    let mut m: BTreeMap<(String, &'static str), Vec<String>> = BTreeMap::new();
    for file in ["drift.jsonl", "corrections.jsonl", "dlq.jsonl"] {
        for line in std::fs::read_to_string(out.join(file)).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let entity = v["entity"]
                .as_str()
                .expect("every line names its entity")
                .to_string();
            m.entry((entity, file)).or_default().push(line.to_string());
        }
    }
    m.values_mut().for_each(|v| v.sort());
    m
}

fn run(specs: &[&Path], out: &Path, workers: &str) {
    let o = bin()
        .arg("run")
        .args(specs)
        .arg("--out")
        .arg(out)
        .args(["-w", workers])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn each_entity_in_a_job_of_three_equals_the_entity_alone() {
    let dir = tempfile::tempdir().unwrap();
    let specs: Vec<_> = [("orders", 1), ("invoices", 2), ("shipments", 3)]
        .iter()
        .map(|(name, seed)| entity(dir.path(), name, *seed))
        .collect();
    let mut alone = BTreeMap::new();
    for spec in &specs {
        let out = dir.path().join(format!(
            "alone-{}",
            spec.file_stem().unwrap().to_string_lossy()
        ));
        run(&[spec], &out, "1");
        alone.extend(outputs(&out));
    }
    assert_eq!(
        alone.len(),
        9,
        "every entity has drift, corrections and dead letters: {:?}",
        alone.keys().collect::<Vec<_>>()
    );
    for workers in ["1", "2"] {
        let out = dir.path().join(format!("together-{workers}"));
        // The directory of specs, as a user would give it.
        run(&[&dir.path().join("specs")], &out, workers);
        assert_eq!(outputs(&out), alone, "{workers} workers");
    }
    // Options for one entity are refused with several.
    let o = bin()
        .arg("run")
        .arg(dir.path().join("specs"))
        .args(["--source-file", "x.jsonl"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("--source-file applies when one entity is given"));
}

/// An entity's spec reading `name.src` and `name.tgt`, writing `name.out.*`.
fn kafka_spec(dir: &Path, name: &str) -> std::path::PathBuf {
    let spec = include_str!("../dataflows/orders.toml")
        .replace("entity = \"orders\"", &format!("entity = \"{name}\""))
        .replace("driftwatch.orders.", &format!("{name}.out."))
        .replace("pg.public.orders", &format!("{name}.src"))
        .replace("replica.public.orders", &format!("{name}.tgt"));
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, spec).unwrap();
    path
}

/// Produces `name`'s generated source and target to its topics; returns the truth.
fn produce_entity(
    broker: &support::broker::Broker,
    name: &str,
    seed: u64,
) -> BTreeMap<i64, driftwatch::dataflow::DriftKind> {
    let g = generate(&GenConfig {
        events: 2_000,
        keys: 200,
        seed,
        ..GenConfig::default()
    });
    for (side, lines) in [("src", &g.source), ("tgt", &g.target)] {
        let topic = format!("{name}.{side}");
        broker.create_topic(&topic, 2);
        broker.produce(&topic, &support::broker::keyed(lines));
    }
    for t in ["drift", "corrections", "dlq"] {
        broker.create_topic(&format!("{name}.out.{t}"), 1);
    }
    g.expected
}

/// The open drift on `name`'s drift topic, by order id.
fn open_on_kafka(broker: &support::broker::Broker, name: &str) -> BTreeMap<i64, String> {
    let mut open = BTreeMap::new();
    for r in broker.consume_all(&format!("{name}.out.drift")) {
        let k: serde_json::Value = serde_json::from_str(r.key.as_deref().unwrap()).unwrap();
        assert_eq!(k["entity"], name);
        let v: serde_json::Value = serde_json::from_str(r.value.as_deref().unwrap()).unwrap();
        let id = k["key"]["id"].as_i64().unwrap();
        match v["status"].as_str().unwrap() {
            "open" => open.insert(id, v["kind"].as_str().unwrap().to_string()),
            _ => open.remove(&id),
        };
    }
    open
}

fn truth(expected: &BTreeMap<i64, driftwatch::dataflow::DriftKind>) -> BTreeMap<i64, String> {
    expected
        .iter()
        .map(|(id, kind)| (*id, kind.name().to_string()))
        .collect()
}

#[test]
fn one_checkpoint_covers_every_entity_and_a_new_one_starts_from_the_beginning() {
    let broker = support::broker::Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = dir.path().join("checkpoints");
    let table = format!(
        "\n[checkpoint]\ndir = {:?}\ninterval = \"1s\"\nmin_wall_interval = \"0ms\"\n",
        checkpoints.display().to_string()
    );
    let mut truths = BTreeMap::new();
    for (i, name) in ["alpha", "beta", "gamma"].iter().enumerate() {
        truths.insert(*name, produce_entity(&broker, name, 20 + i as u64));
        let spec = kafka_spec(dir.path(), name);
        let text = std::fs::read_to_string(&spec).unwrap() + &table;
        std::fs::write(&spec, text).unwrap();
    }
    let run = |names: &[&str]| {
        let o = bin()
            .arg("run")
            .args(names.iter().map(|n| dir.path().join(format!("{n}.toml"))))
            .args(["--stop-at-end", "-w", "2", "--brokers", &broker.addr()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{stderr}");
        stderr
    };
    let first = run(&["alpha", "beta"]);
    assert!(first.contains("checkpoint files written"), "{first}");
    // gamma joins, beta leaves: one line each; every entity's drift is its own truth.
    let second = run(&["alpha", "gamma"]);
    assert!(second.contains("resuming from the checkpoint"), "{second}");
    assert!(
        second.contains(
            "entity gamma is new since the checkpoint: it starts from the earliest offsets"
        ),
        "{second}"
    );
    assert!(
        second
            .contains("entity beta is in the checkpoint but not in this job: its state is dropped"),
        "{second}"
    );
    for name in ["alpha", "beta", "gamma"] {
        assert_eq!(open_on_kafka(&broker, name), truth(&truths[name]), "{name}");
    }
}

#[test]
fn entities_on_kafka_each_report_their_own_ground_truth() {
    let broker = support::broker::Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let names = ["orders", "invoices", "shipments"];
    let mut truths = BTreeMap::new();
    for (i, name) in names.iter().enumerate() {
        truths.insert(*name, produce_entity(&broker, name, 10 + i as u64));
        kafka_spec(dir.path(), name);
    }
    let o = bin()
        .arg("run")
        .arg(dir.path())
        .args(["--stop-at-end", "-w", "2", "--brokers", &broker.addr()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    // The summary counts each entity apart.
    for name in names {
        assert!(
            stderr.contains(&format!("[{name}]\nsource: read")),
            "{stderr}"
        );
        assert_eq!(open_on_kafka(&broker, name), truth(&truths[name]), "{name}");
    }
}
