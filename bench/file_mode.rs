//! File-mode benchmark: the engine against a naive serde_json baseline and DuckDB, in the
//! same run.
//!
//! `cargo bench --bench file_mode -- [--events N] [--keys K] [--partitions P]
//! [--rounds R] [--workers 1,2]` generates (once, cached under `target/bench-data`) an
//! orders dataset of bare Debezium events of about 600 bytes, split by key into `P`
//! files per side like Kafka partitions, then runs, round after round, the baseline,
//! DuckDB (`file_mode/duckdb_baseline.py`: the batch SQL over the same files, on every
//! core) and the engine at each worker count, each in a child process of its own so that
//! its peak resident memory is its own; at each count above one, the engine also runs
//! with the inputs declared co-partitioned (`engine-Nc`: `co_partitioned = true`, which
//! the files are, split by key alike on both sides). It prints medians and ratios as a
//! Markdown table.
//!
//! Every run's open drift must equal the generator's ground truth, else the benchmark
//! fails: a fast wrong answer is not a result. Without `--bench` (that is, under
//! `cargo test --all-targets`) it runs a small smoke size, one round.

#[path = "file_mode/baseline.rs"]
mod baseline;
#[path = "common/orders.rs"]
mod orders;

use driftwatch::dataflow::DriftKind;
use driftwatch::demo::generator::{generate, GenConfig};
use driftwatch::run::{peak_rss_bytes, run_files, Cluster};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// What one measured run reports (one JSON line on the child's stdout).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Measured {
    events: u64,
    bytes: u64,
    secs: f64,
    peak_rss: u64,
    /// Open drift at the end: missing, orphan, mismatch.
    open: [u64; 3],
}

struct Args {
    events: u64,
    keys: u64,
    partitions: usize,
    rounds: usize,
    workers: Vec<usize>,
    data: PathBuf,
    role: Option<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = std::env::args().skip(1).peekable();
    let bench = std::env::args().any(|a| a == "--bench");
    let mut a = Args {
        events: if bench { 1_000_000 } else { 20_000 },
        keys: if bench { 100_000 } else { 2_000 },
        partitions: 2,
        rounds: if bench { 3 } else { 1 },
        workers: vec![1, 2],
        data: Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data"),
        role: None,
    };
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--bench" => {}
            "--events" => a.events = value()?.parse()?,
            "--keys" => a.keys = value()?.parse()?,
            "--partitions" => a.partitions = value()?.parse()?,
            "--rounds" => a.rounds = value()?.parse()?,
            "--workers" => {
                a.workers = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--data" => a.data = value()?.into(),
            "--role" => a.role = Some(value()?),
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    anyhow::ensure!(a.partitions > 0, "--partitions must be at least 1");
    anyhow::ensure!(a.rounds > 0, "--rounds must be at least 1");
    Ok(a)
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("file_mode: {e:#}");
        std::process::exit(2);
    }
}

fn real_main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let dir = args.data.join(format!(
        "orders-{}ev-{}k-{}p-v3",
        args.events, args.keys, args.partitions
    ));
    let files = |side: &str| -> Vec<PathBuf> {
        (0..args.partitions)
            .map(|p| dir.join(format!("{side}-{p}.jsonl")))
            .collect()
    };
    let (source, target) = (files("source"), files("target"));
    match args.role.as_deref() {
        Some("baseline") => {
            let started = Instant::now();
            let o = baseline::run(&source, &target)?;
            let secs = started.elapsed().as_secs_f64();
            return report(Measured {
                events: o.events,
                bytes: o.bytes,
                secs,
                peak_rss: peak_rss_bytes().unwrap_or(0),
                open: [o.missing, o.orphan, o.mismatch],
            });
        }
        Some(w) => {
            // `engine-Nc`: the inputs declared co-partitioned, which the files are (split
            // by key alike on both sides).
            let w = w.trim_start_matches("engine-");
            let (w, co_partitioned) = w.strip_suffix('c').map_or((w, false), |w| (w, true));
            let workers: usize = w.parse()?;
            let mut spec = driftwatch::spec::load(
                &Path::new(env!("CARGO_MANIFEST_DIR")).join("dataflows/orders.toml"),
            )?;
            spec.co_partitioned = co_partitioned;
            let out = dir.join(format!("out-w{workers}"));
            let r = run_files(&spec, &Cluster::local(workers), source, target, &out)?;
            let bytes = dataset_bytes(&dir)?;
            return report(Measured {
                events: r.events_read(),
                bytes,
                secs: r.elapsed.as_secs_f64(),
                peak_rss: peak_rss_bytes().unwrap_or(0),
                open: DriftKind::ALL.map(|k| r.stats.open(k).max(0) as u64),
            });
        }
        None => {}
    }
    let truth = prepare(&args, &dir)?;
    let mut roles = vec!["baseline".to_string(), "duckdb".to_string()];
    roles.extend(args.workers.iter().map(|w| format!("engine-{w}")));
    let several = args.workers.iter().filter(|w| **w > 1);
    roles.extend(several.map(|w| format!("engine-{w}c")));
    let mut results: BTreeMap<String, Vec<Measured>> = BTreeMap::new();
    for round in 0..args.rounds {
        for role in &roles {
            let m = child(role, &args, &dir)?;
            eprintln!(
                "round {round} {role:<10} {:>9.0} ev/s {:>7.1} MB/s peak {:>7.1} MiB",
                m.events as f64 / m.secs,
                m.bytes as f64 / m.secs / 1e6,
                m.peak_rss as f64 / 1048576.0
            );
            anyhow::ensure!(
                m.open == truth,
                "{role} found open drift {:?}, the ground truth is {truth:?}",
                m.open
            );
            results.entry(role.clone()).or_default().push(m);
        }
    }
    print_table(&roles, &results, &truth);
    Ok(())
}

fn report(m: Measured) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(&m)?);
    Ok(())
}

/// Runs one role in a child process and reads its measurement.
fn child(role: &str, args: &Args, dir: &Path) -> anyhow::Result<Measured> {
    let out = if role == "duckdb" {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/file_mode/duckdb_baseline.py");
        Command::new("python3")
            .arg(script)
            .arg(dir)
            .arg(args.partitions.to_string())
            .output()?
    } else {
        Command::new(std::env::current_exe()?)
            .args(["--role", role, "--data"])
            .arg(&args.data)
            .args(["--events", &args.events.to_string()])
            .args(["--keys", &args.keys.to_string()])
            .args(["--partitions", &args.partitions.to_string()])
            .output()?
    };
    anyhow::ensure!(
        out.status.success(),
        "{role} failed in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout)?;
    let line = stdout.lines().last().unwrap_or_default();
    Ok(serde_json::from_str(line)?)
}

/// Generates the dataset unless it is already there; returns the ground truth.
fn prepare(args: &Args, dir: &Path) -> anyhow::Result<[u64; 3]> {
    let truth_path = dir.join("truth.json");
    if let Ok(text) = std::fs::read_to_string(&truth_path) {
        return Ok(serde_json::from_str(&text)?);
    }
    eprintln!(
        "generating {} source events into {}",
        args.events,
        dir.display()
    );
    std::fs::create_dir_all(dir)?;
    let g = generate(&GenConfig {
        events: args.events,
        keys: args.keys,
        wrapped: false,
        note_len: 140,
        ..GenConfig::default()
    });
    for (side, lines) in [("source", &g.source), ("target", &g.target)] {
        let mut outs = (0..args.partitions)
            .map(|p| {
                let f = std::fs::File::create(dir.join(format!("{side}-{p}.jsonl")))?;
                Ok(std::io::BufWriter::new(f))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        for line in lines {
            let id = order_id(line)?;
            let out = &mut outs[id.rem_euclid(args.partitions as i64) as usize];
            writeln!(out, "{line}")?;
        }
        for mut out in outs {
            out.flush()?;
        }
    }
    let count = |k| g.expected.values().filter(|v| **v == k).count() as u64;
    let truth = DriftKind::ALL.map(count);
    std::fs::write(&truth_path, serde_json::to_string(&truth)?)?;
    Ok(truth)
}

/// The order id of a generated event (`after.id`, or `before.id` for a delete).
fn order_id(line: &str) -> anyhow::Result<i64> {
    let v: serde_json::Value = serde_json::from_str(line)?;
    let row = if v["after"].is_null() {
        &v["before"]
    } else {
        &v["after"]
    };
    row["id"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("generated event without an id"))
}

fn dataset_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().ends_with(".jsonl") {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn print_table(roles: &[String], results: &BTreeMap<String, Vec<Measured>>, truth: &[u64; 3]) {
    let rate = |r: &str| {
        median(
            results[r]
                .iter()
                .map(|m| m.events as f64 / m.secs)
                .collect(),
        )
    };
    let rss = |r: &str| median(results[r].iter().map(|m| m.peak_rss as f64).collect());
    let (base_rate, base_rss) = (rate("baseline"), rss("baseline"));
    let (duck_rate, duck_rss) = (rate("duckdb"), rss("duckdb"));
    let first = &results["baseline"][0];
    println!(
        "\n{} events, {:.0} MB, mean {:.0} B/event; open drift missing/orphan/mismatch = {truth:?} (all runs agree with the ground truth)\n",
        first.events,
        first.bytes as f64 / 1e6,
        first.bytes as f64 / first.events as f64
    );
    println!(
        "| run | events/s (median) | MB/s | peak RSS | speed vs baseline | memory vs baseline | speed vs DuckDB | memory vs DuckDB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for role in roles {
        let (r, m) = (rate(role), rss(role));
        println!(
            "| {role} | {r:.0} | {:.1} | {:.1} MiB | {:.2}× | {:.2}× | {:.2}× | {:.2}× |",
            r * first.bytes as f64 / first.events as f64 / 1e6,
            m / 1048576.0,
            r / base_rate,
            m / base_rss,
            r / duck_rate,
            m / duck_rss
        );
    }
}
