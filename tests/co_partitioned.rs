//! Inputs declared co-partitioned give the drift that routing by key gives, on random
//! inputs split into files by key, at every worker count; a wrong declaration stops the
//! job with one line naming a key, sides of different numbers of files are refused, and a
//! co-partitioned entity shares a job (and its files) with a routed one.

use driftwatch::run::{run_files, run_files_many, Cluster, EntityFiles, Report};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::path::{Path, PathBuf};

fn spec(co_partitioned: bool) -> driftwatch::spec::Spec {
    named("t", co_partitioned)
}

fn named(entity: &str, co_partitioned: bool) -> driftwatch::spec::Spec {
    let side = |name: &str| {
        format!(
            "[{name}]\nformat = \"upsert\"\nversion = \"_v\"\nevent_time = \"ts\"\n\
             input = {{ files = [\"unused\"] }}\n"
        )
    };
    let text = format!(
        "entity = \"{entity}\"\nkey = [\"k\"]\ngrace = \"20ms\"\ntime_resolution = \"5ms\"\n\
         max_read_ahead = \"10ms\"\nco_partitioned = {co_partitioned}\n{}{}\
         [compare]\nignore = [\"_v\", \"ts\"]\n",
        side("source"),
        side("target")
    );
    driftwatch::spec::load_str(&text).expect("valid spec")
}

/// One side's messages: (key, line), in order; updates, deletes and redeliveries.
fn side(rng: &mut SmallRng, n: usize, keys: i64) -> Vec<(i64, String)> {
    let (mut ts, mut version) = (1_000u64, 0u64);
    let mut out: Vec<(i64, String)> = Vec::new();
    for _ in 0..n {
        ts += rng.gen_range(0..6);
        if rng.gen_range(0..10) == 0 && !out.is_empty() {
            let old = out[rng.gen_range(out.len().saturating_sub(5)..out.len())].clone();
            out.push(old);
            continue;
        }
        version += 1;
        let k = rng.gen_range(0..keys);
        let value = match rng.gen_range(0..6) {
            0 => json!(null),
            a => json!({"k": k, "a": a % 3, "_v": version, "ts": ts}),
        };
        let line = json!({"key": {"k": k}, "value": value, "timestamp": ts});
        out.push((k, line.to_string()));
    }
    out
}

/// `msgs` split into `parts` files by key (`(key + shift) % parts`), in order.
fn split(dir: &Path, name: &str, msgs: &[(i64, String)], parts: i64, shift: i64) -> Vec<PathBuf> {
    (0..parts)
        .map(|p| {
            let path = dir.join(format!("{name}-{p}.jsonl"));
            let lines = msgs.iter().filter(|(k, _)| (k + shift) % parts == p);
            let text: String = lines.map(|(_, l)| format!("{l}\n")).collect();
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect()
}

/// Both sides of `n` messages over `keys` keys (random from `seed`), split into `parts`
/// files each, the target's `shift` files off the source's.
fn split_sides(
    dir: &Path,
    seed: u64,
    (n, keys): (usize, i64),
    parts: i64,
    shift: i64,
) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let (src, tgt) = (side(&mut rng, n, keys), side(&mut rng, n, keys));
    let sources = split(dir, "source", &src, parts, 0);
    (sources, split(dir, "target", &tgt, parts, shift))
}

/// The error of a run that must fail (else `why`), as one line.
fn refusal(run: anyhow::Result<Report>, why: &str) -> String {
    match run {
        Ok(_) => panic!("{why}"),
        Err(e) => format!("{e:#}"),
    }
}

fn outputs(dir: &Path) -> [String; 3] {
    ["drift.jsonl", "corrections.jsonl", "dlq.jsonl"]
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap())
}

#[test]
fn declared_co_partitioned_inputs_give_the_drift_of_inputs_routed_by_key() {
    let mut drift = 0;
    for seed in 0..16u64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let keys = rng.gen_range(2..40);
        let parts = rng.gen_range(1..5);
        let (ns, nt) = (rng.gen_range(20..300), rng.gen_range(20..300));
        let (src, tgt) = (side(&mut rng, ns, keys), side(&mut rng, nt, keys));
        let dir = tempfile::tempdir().unwrap();
        let sources = split(dir.path(), "source", &src, parts, 0);
        let targets = split(dir.path(), "target", &tgt, parts, 0);
        let run = |co: bool, workers: usize| {
            let out = dir.path().join(format!("out-{co}-{workers}"));
            let cluster = Cluster::local(workers);
            run_files(&spec(co), &cluster, sources.clone(), targets.clone(), &out)
                .unwrap_or_else(|e| panic!("seed {seed}, {workers} workers: {e:#}"));
            outputs(&out)
        };
        let routed = run(false, 1);
        drift += routed[0].lines().count();
        for workers in 1..=3 {
            assert_eq!(
                run(true, workers),
                routed,
                "seed {seed}, {parts} files a side, {workers} workers"
            );
        }
    }
    assert!(drift > 0, "the generator must produce drift");
}

#[test]
fn a_key_read_on_two_workers_stops_the_job_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // The target's keys are one file off the source's: key k's sides on two workers.
    let (sources, targets) = split_sides(dir.path(), 7, (200, 10), 2, 1);
    let out = dir.path().join("out");
    let cluster = Cluster::local(2);
    let run = |co: bool| run_files(&spec(co), &cluster, sources.clone(), targets.clone(), &out);
    let line = refusal(run(true), "a wrong declaration must stop the job");
    assert!(
        line.contains("co_partitioned is declared, but key {\"k\": Int(")
            && line.contains("was read on workers 0 and 1"),
        "{line}"
    );
    assert_eq!(line.lines().count(), 1, "{line}");
    // Undeclared, the same files are fine (routed by key).
    run(false).expect("inputs routed by key need no co-partitioning");
    // One worker reads every file: nothing to check, and nothing wrong.
    run_files(&spec(true), &Cluster::local(1), sources, targets, &out).unwrap();
}

#[test]
fn sides_of_different_numbers_of_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SmallRng::seed_from_u64(1);
    let msgs = side(&mut rng, 20, 4);
    let sources = split(dir.path(), "source", &msgs, 2, 0);
    let targets = split(dir.path(), "target", &msgs, 3, 0);
    let out = dir.path().join("out");
    let run = run_files(&spec(true), &Cluster::local(2), sources, targets, &out);
    let line = refusal(
        run,
        "sides of different numbers of files cannot be co-partitioned",
    );
    assert!(
        line.contains("declares co_partitioned, but has 2 source and 3 target files"),
        "{line}"
    );
}

#[test]
fn a_co_partitioned_entity_and_a_routed_one_share_a_job_and_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let (sources, targets) = split_sides(dir.path(), 3, (300, 30), 3, 0);
    let entity = |name: &str, co: bool, targets: Vec<PathBuf>| EntityFiles {
        spec: named(name, co),
        source: sources.clone(),
        target: targets,
    };
    let out = dir.path().join("out");
    let both = [
        entity("co", true, targets.clone()),
        entity("routed", false, targets.clone()),
    ];
    run_files_many(&both, &Cluster::local(2), &out).unwrap();
    let [drift, ..] = outputs(&out);
    let of = |name: &str| -> Vec<String> {
        let tag = format!("\"entity\":\"{name}\"");
        let lines = drift.lines().filter(|l| l.contains(&tag));
        lines.map(|l| l.replace(&tag, "")).collect()
    };
    assert!(!of("co").is_empty());
    assert_eq!(of("co"), of("routed"));
    // A file both read, at another place in the co-partitioned entity's list: refused.
    let mut swapped = targets.clone();
    swapped.swap(0, 1);
    let both = [
        entity("routed", false, targets),
        entity("co", true, swapped),
    ];
    let run = run_files_many(&both, &Cluster::local(2), &out);
    let line = refusal(run, "a shared file at two places cannot be co-partitioned");
    assert!(line.contains("at another place in its list"), "{line}");
}
