//! End to end through the broker: the job's rate against a consumer that only counts.
//!
//! `cargo bench --bench kafka -- [--events N] [--rounds R]` starts a tansu broker
//! (`scripts/broker`) on a free port, produces a generated orders dataset (both sides,
//! 2 partitions each, ~600-byte bare Debezium events), then, round after round:
//!
//! - **raw**: an rdkafka consumer assigned every input partition from the beginning that
//!   only counts messages until it has them all (the broker's consume rate);
//! - **job -w 1 / -w 2**: `driftwatch run --stop-at-end` over the same topics, writing
//!   drift, corrections and dead letters to fresh topics each round.
//!
//! Each run is timed from process start to exit, so client start-up counts for both.
//! Then it measures the CPU a live, idle job uses over 10 s. Without `--bench` (under
//! `cargo test --all-targets`) it runs a small smoke size, one round, no idle phase.

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

struct Broker {
    port: u16,
    dir: tempfile::TempDir,
}

impl Broker {
    fn script(&self, verb: &str) -> anyhow::Result<()> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/broker");
        let out = Command::new("bash")
            .arg(script)
            .args([verb, &self.port.to_string()])
            .arg(self.dir.path())
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "scripts/broker {verb}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.script("stop");
    }
}

fn real_main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let bench = std::env::args().any(|a| a == "--bench");
    let (mut events, mut rounds) = if bench {
        (25_000u64, 3usize)
    } else {
        (1_000, 1)
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {}
            "--events" => events = args.next().unwrap_or_default().parse()?,
            "--rounds" => rounds = args.next().unwrap_or_default().parse()?,
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let broker = Broker {
        port,
        dir: tempfile::tempdir()?,
    };
    broker.script("start")?;
    let addr = format!("127.0.0.1:{port}");

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
    produce(&addr, "bench.src", &g.source)?;
    produce(&addr, "bench.tgt", &g.target)?;
    eprintln!(
        "produced {total} messages ({:.0} B each) in {:.1}s",
        bytes as f64 / total as f64,
        started.elapsed().as_secs_f64()
    );

    let mut rates: Vec<(String, Vec<f64>)> = ["raw", "job -w 1", "job -w 2"]
        .iter()
        .map(|n| (n.to_string(), Vec::new()))
        .collect();
    for round in 0..rounds {
        let t = Instant::now();
        let n = count_all(&addr, &["bench.src", "bench.tgt"], total)?;
        rates[0].1.push(n as f64 / t.elapsed().as_secs_f64());
        for (i, w) in [(1, "1"), (2, "2")] {
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
    println!("\n{total} messages, 2 topics × 2 partitions, tansu on loopback\n");
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

fn produce(addr: &str, topic: &str, lines: &[String]) -> anyhow::Result<()> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/broker");
    let port = addr.rsplit(':').next().unwrap_or_default();
    let out = Command::new("bash")
        .arg(script)
        .args(["topic", topic, "2", port])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("linger.ms", "20")
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

/// Reads every partition of `topics` from the beginning until `total` messages arrived.
fn count_all(addr: &str, topics: &[&str], total: u64) -> anyhow::Result<u64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", "bench-raw")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        for p in 0..2 {
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
            m?;
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
    let ticks = |pid: u32| -> anyhow::Result<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
    };
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
