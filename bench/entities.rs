//! Many entities in one job: the same total load spread over 1, 10 and 50 entities.
//!
//! `cargo bench --bench entities -- [--events N] [--entities 1,10,50] [--rounds R]
//! [--workers W]` generates (once, cached under `target/bench-data`) `N` source events
//! of orders split evenly over `k` entities (each with its own keys and faults), runs
//! them as one file-mode job per round, and prints each count's median rate and its
//! ratio to the one-entity job. Every run's open drift, per entity and kind, must equal
//! the generator's ground truth. Without `--bench` (under `cargo test --all-targets`)
//! it runs a smoke size, one round.

use driftwatch::dataflow::DriftKind;
use driftwatch::demo::generator::{generate, GenConfig};
use driftwatch::run::{run_files_many, Cluster, EntityFiles};
use std::path::{Path, PathBuf};
use std::time::Instant;

struct Args {
    events: u64,
    entities: Vec<usize>,
    rounds: usize,
    workers: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let bench = std::env::args().any(|a| a == "--bench");
    let mut a = Args {
        events: if bench { 1_000_000 } else { 20_000 },
        entities: if bench { vec![1, 10, 50] } else { vec![1, 4] },
        rounds: if bench { 3 } else { 1 },
        workers: 2,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--bench" => {}
            "--events" => a.events = value()?.parse()?,
            "--rounds" => a.rounds = value()?.parse()?,
            "--workers" => a.workers = value()?.parse()?,
            "--entities" => {
                a.entities = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    anyhow::ensure!(
        a.entities.iter().all(|k| *k > 0),
        "--entities must be at least 1"
    );
    Ok(a)
}

/// One entity's data and ground truth (open drift counts by kind).
struct Prepared {
    files: EntityFiles,
    truth: [u64; 3],
}

/// `k` entities sharing `events` source events, written under `dir`.
fn prepare(dir: &Path, events: u64, k: usize) -> anyhow::Result<Vec<Prepared>> {
    std::fs::create_dir_all(dir)?;
    let per = events / k as u64;
    let mut out = Vec::new();
    for e in 0..k {
        let g = generate(&GenConfig {
            events: per,
            keys: (per / 10).max(10),
            seed: 1_000 + e as u64,
            ..GenConfig::default()
        });
        let (src, tgt) = (
            dir.join(format!("e{e}.src.jsonl")),
            dir.join(format!("e{e}.tgt.jsonl")),
        );
        if !src.exists() || !tgt.exists() {
            std::fs::write(&src, g.source.join("\n"))?;
            std::fs::write(&tgt, g.target.join("\n"))?;
        }
        let mut spec = driftwatch::spec::load_str(driftwatch::demo::ORDERS_SPEC)
            .map_err(|p| anyhow::anyhow!("{p:?}"))?;
        spec.entity = format!("orders{e}");
        let mut truth = [0u64; 3];
        for kind in g.expected.values() {
            truth[*kind as usize] += 1;
        }
        out.push(Prepared {
            files: EntityFiles {
                spec,
                source: vec![src],
                target: vec![tgt],
            },
            truth,
        });
    }
    Ok(out)
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("entities: {e:#}");
        std::process::exit(2);
    }
}

fn real_main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    let mut rows: Vec<(usize, f64)> = Vec::new();
    for &k in &args.entities {
        let dir: PathBuf = data.join(format!("entities-{}ev-{k}x-v1", args.events));
        let prepared = prepare(&dir, args.events, k)?;
        let entities: Vec<EntityFiles> = prepared.iter().map(|p| p.files.clone()).collect();
        let mut rates = Vec::new();
        for round in 0..args.rounds {
            let out = tempfile::tempdir()?;
            let started = Instant::now();
            let report = run_files_many(&entities, &Cluster::local(args.workers), out.path())?;
            let secs = started.elapsed().as_secs_f64();
            for (p, (name, stats)) in prepared.iter().zip(&report.entities) {
                let got = DriftKind::ALL.map(|kind| stats.open(kind).max(0) as u64);
                anyhow::ensure!(
                    got == p.truth,
                    "{name}: open drift {got:?}, truth {:?}",
                    p.truth
                );
            }
            let rate = report.events_read() as f64 / secs;
            eprintln!("{k:>3} entities, round {round}: {rate:>9.0} events/s");
            rates.push(rate);
        }
        rates.sort_by(f64::total_cmp);
        rows.push((k, rates[rates.len() / 2]));
    }
    let base = rows.first().map_or(1.0, |r| r.1);
    println!(
        "\n| entities | events/s (median) | vs {} entity |",
        rows.first().map_or(1, |r| r.0)
    );
    println!("|---|---|---|");
    for (k, rate) in rows {
        println!("| {k} | {rate:.0} | {:.2}× |", rate / base);
    }
    Ok(())
}
