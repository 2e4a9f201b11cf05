//! End to end through the broker: the job's rate against a consumer that only counts.
//!
//! `cargo bench --bench kafka -- [--events N] [--partitions P] [--rounds R]` starts an
//! Apache Kafka broker (`scripts/broker`) on a free port, produces a generated orders
//! dataset (both sides, P partitions each (default 4), ~600-byte bare Debezium events;
//! the default 500k source events make about 1M messages), then, round after round:
//!
//! - **raw**: an rdkafka consumer assigned every input partition from the beginning that
//!   only counts messages until it has them all (the broker's consume rate);
//! - **raw + parse**: the same, parsing each value into a `serde_json::Value` (the least
//!   any consumer that looks inside the messages does: the naive baseline's first step);
//! - **job -w 1 / -w 2**: `driftwatch run --stop-at-end` over the same topics, writing
//!   drift, corrections and dead letters to fresh topics each round.
//!
//! With `--brokers H:P` it uses a running broker instead, producing the data only when
//! `bench.src` is empty (so a profiling session can rerun the rounds on the same data).
//!
//! Each run is timed from process start to exit, so client start-up counts for both.
//! Then it measures the CPU a live, idle job uses over 10 s. Without `--bench` (under
//! `cargo test --all-targets`) it runs a small smoke size, one round, no idle phase.

#[path = "common/broker.rs"]
mod broker;

use broker::Broker;
use driftwatch::demo::generator::{generate, GenConfig};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn main() {
    if let Err(e) = real_main() {
        eprintln!("kafka bench: {e:#}");
        std::process::exit(2);
    }
}

fn real_main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let bench = std::env::args().any(|a| a == "--bench");
    let (mut events, mut rounds, mut partitions) = if bench {
        (500_000u64, 3usize, 4i32)
    } else {
        (1_000, 1, 4)
    };
    let mut existing: Option<String> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {}
            "--brokers" => existing = args.next(),
            "--events" => events = args.next().unwrap_or_default().parse()?,
            "--rounds" => rounds = args.next().unwrap_or_default().parse()?,
            "--partitions" => partitions = args.next().unwrap_or_default().parse()?,
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    let broker = match &existing {
        // A running broker (for profiling): the data is produced once, then reused.
        Some(addr) => Broker::existing(addr)?,
        None => Broker::start()?,
    };
    let addr = broker.addr();

    let g = generate(&GenConfig {
        events,
        keys: events / 10,
        wrapped: false,
        note_len: 140,
        ..GenConfig::default()
    });
    let total = (g.source.len() + g.target.len()) as u64;
    let bytes: usize = g.source.iter().chain(&g.target).map(String::len).sum();
    let started = Instant::now();
    if existing.is_none() || high_watermark(&addr, "bench.src")? == 0 {
        produce(&addr, "bench.src", partitions, &g.source)?;
        produce(&addr, "bench.tgt", partitions, &g.target)?;
    }
    eprintln!(
        "produced {total} messages ({:.0} B each) in {:.1}s",
        bytes as f64 / total as f64,
        started.elapsed().as_secs_f64()
    );

    let mut rates: Vec<(String, Vec<f64>)> = ["raw", "raw + parse", "job -w 1", "job -w 2"]
        .iter()
        .map(|n| (n.to_string(), Vec::new()))
        .collect();
    for round in 0..rounds {
        let t = Instant::now();
        let n = count_all(&addr, &["bench.src", "bench.tgt"], partitions, total, false)?;
        rates[0].1.push(n as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        let n = count_all(&addr, &["bench.src", "bench.tgt"], partitions, total, true)?;
        rates[1].1.push(n as f64 / t.elapsed().as_secs_f64());
        for (i, w) in [(2, "1"), (3, "2")] {
            let t = Instant::now();
            let out = Command::new(env!("CARGO_BIN_EXE_driftwatch"))
                .args(["run", "dataflows/orders.toml", "--stop-at-end", "-w", w])
                .args(["--brokers", &addr, "--source-topic", "bench.src"])
                .args(["--target-topic", "bench.tgt"])
                .args(["--drift-topic", &format!("out.{round}.{w}.drift")])
                .args(["--corrections-topic", &format!("out.{round}.{w}.corr")])
                .args(["--dlq-topic", &format!("out.{round}.{w}.dlq")])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()?;
            anyhow::ensure!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            rates[i].1.push(total as f64 / t.elapsed().as_secs_f64());
        }
        eprintln!(
            "round {round}: {}",
            rates
                .iter()
                .map(|(n, r)| format!("{n} {:.0}/s", r[round]))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let raw = median(&rates[0].1);
    println!("\n{total} messages, 2 topics × {partitions} partitions, Apache Kafka on loopback\n");
    println!("| run | messages/s (median of {rounds}) | vs raw consume |");
    println!("|---|---|---|");
    for (name, r) in &rates {
        println!("| {name} | {:.0} | {:.2}× |", median(r), median(r) / raw);
    }
    if bench {
        idle_cpu(&addr)?;
    }
    Ok(())
}

fn produce(addr: &str, topic: &str, partitions: i32, lines: &[String]) -> anyhow::Result<()> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/broker");
    let port = addr.rsplit(':').next().unwrap_or_default();
    let out = Command::new("bash")
        .arg(script)
        .args(["topic", topic, &partitions.to_string(), port])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create()?;
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let row = if v["after"].is_null() {
            &v["before"]
        } else {
            &v["after"]
        };
        let key = format!(r#"{{"id":{}}}"#, row["id"]);
        let mut record = BaseRecord::to(topic).key(&key).payload(line);
        while let Err((_, back)) = p.send(record) {
            record = back;
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    p.flush(Duration::from_secs(120))?;
    Ok(())
}

/// The high watermark of partition 0 of `topic` (0 when it does not exist).
fn high_watermark(addr: &str, topic: &str) -> anyhow::Result<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .create()?;
    Ok(c.fetch_watermarks(topic, 0, Duration::from_secs(10))
        .map_or(0, |(_, high)| high))
}

/// Reads every partition of `topics` from the beginning until `total` messages arrived
/// (parsing each value as JSON when `parse`).
fn count_all(
    addr: &str,
    topics: &[&str],
    partitions: i32,
    total: u64,
    parse: bool,
) -> anyhow::Result<u64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", "bench-raw")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        for p in 0..partitions {
            tpl.add_partition_offset(t, p, Offset::Beginning)?;
        }
    }
    c.assign(&tpl)?;
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    while n < total {
        anyhow::ensure!(
            Instant::now() < deadline,
            "raw consumer stuck at {n}/{total}"
        );
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m?;
            if parse {
                use rdkafka::message::Message as _;
                let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap_or(b"null"))?;
                std::hint::black_box(v);
            }
            n += 1;
        }
    }
    Ok(n)
}

/// CPU used by a live job with nothing to read, over 10 s.
fn idle_cpu(addr: &str) -> anyhow::Result<()> {
    let mut job = Command::new(env!("CARGO_BIN_EXE_driftwatch"))
        .args(["run", "dataflows/orders.toml", "-w", "2", "--brokers", addr])
        .args(["--source-topic", "bench.src", "--target-topic", "bench.tgt"])
        .args([
            "--drift-topic",
            "idle.drift",
            "--corrections-topic",
            "idle.corr",
        ])
        .args(["--dlq-topic", "idle.dlq"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(std::process::Stdio::null())
        .spawn()?;
    // Let it read the backlog, then measure while idle.
    std::thread::sleep(Duration::from_secs(15));
    let ticks = broker::cpu_ticks;
    let before = ticks(job.id())?;
    std::thread::sleep(Duration::from_secs(10));
    let after = ticks(job.id())?;
    let _ = job.kill();
    let _ = job.wait();
    // Linux reports CPU time in clock ticks of 1/100 s.
    println!(
        "\nidle live job (-w 2, caught up): {:.1}% of one core over 10 s",
        (after - before) as f64 / 10.0
    );
    Ok(())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
