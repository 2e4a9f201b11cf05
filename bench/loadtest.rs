//! The load test in process: the engine against a naive baseline detector, on the same
//! generated load, at increasing rates.
//!
//! `cargo bench --bench loadtest -- [--rates 10000,20000,30000,40000] [--duration S]`
//! For each rate it prepares one load (orders CDC, 100k keys, faults) and feeds it in
//! real time to the engine (`-w 2`) and then to the naive baseline (one thread,
//! `serde_json::Value`s in two hash maps, a 50 ms scan). Both are scored against the
//! same ground truth. Without `--bench` it runs one small rate (smoke).

#[path = "loadtest/naive.rs"]
mod naive;
#[path = "common/orders.rs"]
mod orders;

use driftwatch::loadtest::config::Profile;
use driftwatch::loadtest::{prepare, run_prepared};
use hdrhistogram::Histogram;

fn q(h: &Histogram<u64>, q: f64) -> u64 {
    if h.is_empty() {
        0
    } else {
        h.value_at_quantile(q)
    }
}

fn main() -> anyhow::Result<()> {
    let bench = std::env::args().any(|a| a == "--bench");
    let mut rates: Vec<f64> = if bench {
        vec![10_000.0, 20_000.0, 30_000.0, 40_000.0]
    } else {
        vec![1_000.0]
    };
    let mut duration = if bench { 8.0 } else { 2.0 };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {}
            "--rates" => {
                rates = args
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--duration" => duration = args.next().unwrap_or_default().parse()?,
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    println!("| source changes/s | detector | feed lateness p99 | latency p50 / p99 / max beyond grace | found / truth | false |");
    println!("|---|---|---|---|---|---|");
    for rate in rates {
        let p = Profile {
            rate,
            duration_s: duration,
            keys: 100_000,
            p_drop: 0.001,
            p_corrupt: 0.001,
            p_extra: 0.0005,
            ..Profile::default()
        };
        let prep = prepare(&p)?;
        let o = run_prepared(&prep, &p, 2)?;
        let r = &o.report;
        let l = &r["detection_latency_ms_beyond_grace"];
        println!(
            "| {rate:.0} | engine -w 2 | {} ms | {} / {} / {} ms | {} / {} | {} |",
            r["feed_lateness_ms"]["p99"],
            l["p50"],
            l["p99"],
            l["max"],
            r["found"],
            r["truth"],
            r["false"].as_array().map_or(0, Vec::len)
        );
        // The same load again, for the baseline: a fresh schedule (times are absolute).
        let prep = prepare(&p)?;
        let n = naive::run(&prep, p.grace.as_millis());
        println!(
            "| {rate:.0} | naive baseline | {} ms | {} / {} / {} ms | {} / {} | {} |",
            q(&n.lateness, 0.99),
            q(&n.latency, 0.5),
            q(&n.latency, 0.99),
            n.latency.max(),
            n.found,
            prep.truth.len(),
            n.unexpected
        );
    }
    Ok(())
}
