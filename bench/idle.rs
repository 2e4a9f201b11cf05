//! Idle entities: what each entity of a mostly idle job costs in memory and CPU.
//!
//! `cargo bench --bench idle -- [--entities 1,200] [--seconds S]` starts an Apache Kafka
//! broker (`scripts/broker`) and, for each count N in turn, makes N orders entities, each
//! with its own source and target topics (one partition each) holding a few events (10
//! source changes and the replica's), and one spec per entity with its own output
//! topics. It runs them as one live job (`driftwatch run DIR -w 2`), waits until every
//! entity has read its events and reported its drift, then measures the process's
//! resident memory and the CPU it uses over `S` seconds (default 20) while nothing
//! arrives. The cost of an idle entity is the difference between two counts, divided by
//! the entities added. Without `--bench` (under `cargo test --all-targets`) it runs 1
//! and 3 entities for 2 s.

#[path = "common/broker.rs"]
mod broker;

use driftwatch::demo::generator::{generate, GenConfig};
use driftwatch::io::kafka::config::KafkaConfig;
use driftwatch::loadtest::kafka::create_topics;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn main() {
    if let Err(e) = real_main() {
        eprintln!("idle bench: {e:#}");
        std::process::exit(2);
    }
}

/// What one job of `entities` entities used while idle.
struct Idle {
    entities: usize,
    rss_mib: f64,
    cpu_percent: f64,
}

fn real_main() -> anyhow::Result<()> {
    let bench = std::env::args().any(|a| a == "--bench");
    let mut counts: Vec<usize> = if bench { vec![1, 200] } else { vec![1, 3] };
    let mut seconds: u64 = if bench { 20 } else { 2 };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {}
            "--entities" => {
                counts = args
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--seconds" => seconds = args.next().unwrap_or_default().parse()?,
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    anyhow::ensure!(counts.len() >= 2, "--entities needs two counts at least");
    let broker = broker::Broker::start()?;
    let addr = broker.addr();
    let mut results = Vec::new();
    for (round, &n) in counts.iter().enumerate() {
        let dir = tempfile::tempdir()?;
        let prefix = format!("idle{round}");
        let produced = prepare(&addr, &prefix, n, dir.path())?;
        let metrics = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .to_string();
        let mut job = Command::new(env!("CARGO_BIN_EXE_driftwatch"))
            .arg("run")
            .arg(dir.path())
            .args(["-w", "2", "--brokers", &addr, "--metrics-addr", &metrics])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let measured = settle_and_measure(&mut job, &metrics, produced, n, seconds);
        let _ = job.kill();
        let _ = job.wait();
        let (rss_mib, cpu_percent) = measured?;
        eprintln!("{n} entities: {rss_mib:.1} MiB, {cpu_percent:.2}% of one core");
        results.push(Idle {
            entities: n,
            rss_mib,
            cpu_percent,
        });
    }
    let base = &results[0];
    println!("\nlive job, -w 2, mostly idle entities (each: 2 topics of 1 partition, ~20 events), {seconds} s measured\n");
    println!("| entities | resident memory | CPU (% of one core) | per entity added: memory | per entity added: CPU |");
    println!("|---|---|---|---|---|");
    for r in &results {
        let added = r.entities.saturating_sub(base.entities);
        let per = |x: f64, b: f64| match added {
            0 => "—".to_string(),
            a => format!("{:.3}", (x - b) / a as f64),
        };
        println!(
            "| {} | {:.1} MiB | {:.2}% | {} MiB | {} % |",
            r.entities,
            r.rss_mib,
            r.cpu_percent,
            per(r.rss_mib, base.rss_mib),
            per(r.cpu_percent, base.cpu_percent)
        );
    }
    Ok(())
}

/// Topics, a few events and one spec per entity, in `dir`; returns the events produced.
fn prepare(addr: &str, prefix: &str, n: usize, dir: &Path) -> anyhow::Result<u64> {
    let names: Vec<String> = (0..n)
        .flat_map(|e| ["src", "tgt"].map(|s| format!("{prefix}.{e}.{s}")))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    create_topics(&KafkaConfig::for_brokers(addr, "idle-bench"), &names)?;
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("linger.ms", "5")
        .create()?;
    let mut produced = 0u64;
    let orders = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("dataflows/orders.toml"),
    )?;
    for e in 0..n {
        let g = generate(&GenConfig {
            events: 10,
            keys: 5,
            seed: e as u64,
            wrapped: false,
            ..GenConfig::default()
        });
        for (side, lines) in [("src", &g.source), ("tgt", &g.target)] {
            let topic = format!("{prefix}.{e}.{side}");
            for line in lines.iter() {
                producer
                    .send(BaseRecord::<(), str>::to(&topic).payload(line.as_str()))
                    .map_err(|(err, _)| err)?;
                produced += 1;
            }
        }
        let spec = orders
            .replace(
                r#"entity = "orders""#,
                &format!(r#"entity = "{prefix}-{e}""#),
            )
            .replace("pg.public.orders", &format!("{prefix}.{e}.src"))
            .replace("replica.public.orders", &format!("{prefix}.{e}.tgt"))
            .replace("driftwatch.orders.", &format!("{prefix}.{e}.out."))
            .replace("partitions = 3", "partitions = 1");
        anyhow::ensure!(
            spec.contains(&format!("{prefix}.{e}.out.drift")),
            "dataflows/orders.toml no longer has the names this bench replaces"
        );
        std::fs::write(dir.join(format!("{prefix}-{e}.toml")), spec)?;
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(produced)
}

/// The events the job has read so far, from its metrics (`None` before it serves them).
fn events_read(metrics: &str) -> Option<u64> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(metrics).ok()?;
    conn.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
    let mut text = String::new();
    conn.read_to_string(&mut text).ok()?;
    let read = text
        .lines()
        .filter(|l| l.starts_with("driftwatch_events_total{") && l.contains(r#"outcome="read""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    Some(read)
}

/// Waits until the job has read every event produced and grace has passed, then returns
/// its resident memory (MiB) and CPU use (% of one core) over `seconds`.
fn settle_and_measure(
    job: &mut Child,
    metrics: &str,
    produced: u64,
    n: usize,
    seconds: u64,
) -> anyhow::Result<(f64, f64)> {
    let pid = job.id();
    let ticks = || broker::cpu_ticks(pid);
    // Start-up creates three output topics per entity; then the backlog.
    let limit = Instant::now() + Duration::from_secs(120 + n as u64);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        if let Some(status) = job.try_wait()? {
            anyhow::bail!("the job ended early: {status}");
        }
        if events_read(metrics).is_some_and(|read| read >= produced) {
            break;
        }
        anyhow::ensure!(
            Instant::now() < limit,
            "the job did not read its events in time"
        );
    }
    // Grace (5 s) and the last outputs.
    std::thread::sleep(Duration::from_secs(8));
    let before = ticks()?;
    std::thread::sleep(Duration::from_secs(seconds));
    let after = ticks()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS"))?
        .parse()?;
    Ok((rss_kib / 1024.0, (after - before) as f64 / seconds as f64))
}
