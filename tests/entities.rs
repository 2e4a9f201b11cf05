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
    let specs = dir.join("specs");
    std::fs::create_dir_all(&specs).unwrap();
    file_spec(&specs, name, &src, &tgt, None)
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

/// Each line's event time (`source.ts_ms`), bare or wrapped.
fn event_ms(line: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let event = if v["payload"].is_object() {
        &v["payload"]
    } else {
        &v
    };
    event["source"]["ts_ms"].as_u64().unwrap()
}

/// Merges two entities' lines into one stream, keeping each one's order, so that every
/// line meets the same partition progress (the running maximum of event times) as in
/// its own stream: the next line is the one whose stream's running maximum would be
/// the lower after it.
fn merge(a: &[String], b: &[String]) -> Vec<String> {
    let (mut i, mut j, mut ra, mut rb) = (0, 0, 0u64, 0u64);
    let mut out = Vec::with_capacity(a.len() + b.len());
    while i < a.len() || j < b.len() {
        let ca = a.get(i).map(|l| ra.max(event_ms(l)));
        let cb = b.get(j).map(|l| rb.max(event_ms(l)));
        match (ca, cb) {
            (Some(ca), cb) if cb.is_none_or(|cb| ca <= cb) => {
                ra = ca;
                out.push(a[i].clone());
                i += 1;
            }
            (_, Some(cb)) => {
                rb = cb;
                out.push(b[j].clone());
                j += 1;
            }
            (_, None) => unreachable!("one stream has a line left"),
        }
    }
    out
}

/// A spec for `name` reading `src` and `tgt`, each side selecting `table` if given.
fn file_spec(
    dir: &Path,
    name: &str,
    src: &Path,
    tgt: &Path,
    table: Option<&str>,
) -> std::path::PathBuf {
    let select = table
        .map(|t| {
            format!("select = {{ \"source.schema\" = \"public\", \"source.table\" = \"{t}\" }}\n")
        })
        .unwrap_or_default();
    let spec = include_str!("../dataflows/orders.toml")
        .replace("entity = \"orders\"", &format!("entity = \"{name}\""))
        .replace("driftwatch.orders.", &format!("driftwatch.{name}."))
        .replace(
            "input = { topics = [\"pg.public.orders\"] }",
            &format!(
                "input = {{ files = [{:?}] }}\n{select}",
                src.display().to_string()
            ),
        )
        .replace(
            "input = { topics = [\"replica.public.orders\"] }",
            &format!(
                "input = {{ files = [{:?}] }}\n{select}",
                tgt.display().to_string()
            ),
        );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, spec).unwrap();
    path
}

#[test]
fn entities_sharing_files_by_select_equal_each_alone() {
    let dir = tempfile::tempdir().unwrap();
    let gen = |seed, wrapped| {
        generate(&GenConfig {
            events: 3_000,
            keys: 300,
            seed,
            wrapped,
            ..GenConfig::default()
        })
    };
    let as_table = |lines: &[String], table: &str| -> Vec<String> {
        lines
            .iter()
            .map(|l| l.replace(r#""table":"orders""#, &format!(r#""table":"{table}""#)))
            .collect()
    };
    let (orders, invoices) = (gen(1, false), gen(2, true));
    // A table nobody watches shares the source topic, and a malformed line the target.
    let audit = as_table(&gen(3, false).source[..500], "audit");
    let write = |name: &str, lines: &[String]| {
        let path = dir.path().join(name);
        std::fs::write(&path, lines.join("\n")).unwrap();
        path
    };
    let o = (
        as_table(&orders.source, "orders"),
        as_table(&orders.target, "orders"),
    );
    let i = (
        as_table(&invoices.source, "invoices"),
        as_table(&invoices.target, "invoices"),
    );
    let shared_src = write("all.src.jsonl", &merge(&merge(&o.0, &i.0), &audit));
    let mut tgt = merge(&o.1, &i.1);
    tgt.push("not JSON".into());
    let shared_tgt = write("all.tgt.jsonl", &tgt);
    let together = ["orders", "invoices"]
        .map(|name| file_spec(dir.path(), name, &shared_src, &shared_tgt, Some(name)));
    let alone_dir = dir.path().join("alone");
    std::fs::create_dir_all(&alone_dir).unwrap();
    let alone = [("orders", &o), ("invoices", &i)].map(|(name, (src, tgt))| {
        let src = write(&format!("{name}.src"), src);
        let tgt = write(&format!("{name}.tgt"), tgt);
        file_spec(&alone_dir, name, &src, &tgt, None)
    });
    let out = dir.path().join("out-alone");
    run(&[&alone[0], &alone[1]], &out, "1");
    let expected = outputs(&out);
    assert!(expected.contains_key(&("invoices".to_string(), "drift.jsonl")));
    assert!(expected.contains_key(&("orders".to_string(), "drift.jsonl")));
    for workers in ["1", "2"] {
        let out = dir.path().join(format!("out-shared-{workers}"));
        let o = bin()
            .arg("run")
            .args(&together)
            .arg("--out")
            .arg(&out)
            .args(["-w", workers])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{stderr}");
        let mut got = outputs(&out);
        // The malformed line names no table: the first entity reading the file keeps it.
        let dead = got.remove(&("orders".to_string(), "dlq.jsonl")).unwrap();
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert!(dead[0].contains("so no select applies"), "{}", dead[0]);
        assert_eq!(got, expected, "{workers} workers");
        assert!(
            stderr.contains("unselected (shared inputs, no entity's select took them): 500"),
            "{stderr}"
        );
    }
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
        let specs = names.iter().map(|n| dir.path().join(format!("{n}.toml")));
        run_to_end(&broker, specs)
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

/// Runs `specs` (files or directories) on `broker` to the inputs' ends (-w 2);
/// returns stderr.
fn run_to_end(
    broker: &support::broker::Broker,
    specs: impl IntoIterator<Item = std::path::PathBuf>,
) -> String {
    let o = bin()
        .arg("run")
        .args(specs)
        .args(["--stop-at-end", "-w", "2", "--brokers", &broker.addr()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{stderr}");
    stderr
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
    let stderr = run_to_end(&broker, [dir.path().to_path_buf()]);
    // The summary counts each entity apart.
    for name in names {
        assert!(
            stderr.contains(&format!("[{name}]\nsource: read")),
            "{stderr}"
        );
        assert_eq!(open_on_kafka(&broker, name), truth(&truths[name]), "{name}");
    }
}

#[test]
fn entities_sharing_topics_on_kafka_each_take_their_own_table() {
    let broker = support::broker::Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let mut truths = BTreeMap::new();
    let (mut src, mut tgt) = (Vec::new(), Vec::new());
    for (i, name) in ["orders", "invoices"].into_iter().enumerate() {
        let g = generate(&GenConfig {
            events: 2_000,
            keys: 200,
            seed: 20 + i as u64,
            wrapped: i == 1,
            ..GenConfig::default()
        });
        let table = |l: &String| l.replace(r#""table":"orders""#, &format!(r#""table":"{name}""#));
        src.extend(support::broker::keyed(
            &g.source.iter().map(table).collect::<Vec<_>>(),
        ));
        tgt.extend(support::broker::keyed(
            &g.target.iter().map(table).collect::<Vec<_>>(),
        ));
        truths.insert(name, g.expected);
        let spec = include_str!("../dataflows/orders.toml")
            .replace("entity = \"orders\"", &format!("entity = \"{name}\""))
            .replace("driftwatch.orders.", &format!("{name}.out."))
            .replace(
                "pg.public.orders\"] }",
                &format!("shop.src\"] }}\nselect = {{ \"source.table\" = \"{name}\" }}"),
            )
            .replace(
                "replica.public.orders\"] }",
                &format!("shop.tgt\"] }}\nselect = {{ \"source.table\" = \"{name}\" }}"),
            );
        std::fs::write(dir.path().join(format!("{name}.toml")), spec).unwrap();
        for t in ["drift", "corrections", "dlq"] {
            broker.create_topic(&format!("{name}.out.{t}"), 1);
        }
    }
    // Another table's changes and the tombstones after deletes: nobody's.
    let audit = generate(&GenConfig {
        events: 300,
        keys: 50,
        seed: 29,
        ..GenConfig::default()
    });
    let audit: Vec<String> = audit
        .source
        .iter()
        .map(|l| l.replace(r#""table":"orders""#, r#""table":"audit""#))
        .collect();
    src.extend(support::broker::keyed(&audit));
    src.extend((0..20).map(|i| (Some(format!(r#"{{"id":{i}}}"#)), None)));
    for (topic, messages) in [("shop.src", &src), ("shop.tgt", &tgt)] {
        broker.create_topic(topic, 2);
        broker.produce(topic, messages);
    }
    let stderr = run_to_end(&broker, [dir.path().to_path_buf()]);
    assert!(
        stderr.contains(&format!(
            "unselected (shared inputs, no entity's select took them): {}",
            audit.len() + 20
        )),
        "{stderr}"
    );
    for name in ["orders", "invoices"] {
        assert_eq!(open_on_kafka(&broker, name), truth(&truths[name]), "{name}");
        let dead = broker.consume_all(&format!("{name}.out.dlq"));
        assert!(dead.is_empty(), "{name}: {} dead letters", dead.len());
    }
}
