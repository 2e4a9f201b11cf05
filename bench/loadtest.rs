//! The load test: the engine against a naive baseline detector, on the same generated
//! load, at increasing rates, in process or through a broker.
//!
//! `cargo bench --bench loadtest -- [--rates 10000,20000,30000,40000] [--duration S]
//! [--kafka [--clock-skew-ms 100]]`. For each rate it prepares one load (orders CDC, 100k keys, faults) and
//! feeds it in real time to the engine (`-w 2`) and then to the naive baseline (one
//! thread, `serde_json::Value`s in two hash maps, a 50 ms scan). Both are scored
//! against the same ground truth; in process, a first engine run at the highest rate,
//! not scored, warms the heap. With `--kafka` it starts an Apache Kafka broker
//! (`scripts/broker`): the engine runs as a `driftwatch run` job on the produced topics
//! and is scored from its drift topic; the baseline consumes the same topics directly.
//! Without `--bench` it runs one small rate (smoke).

#[path = "loadtest/naive.rs"]
mod naive;
#[path = "common/orders.rs"]
mod orders;

use driftwatch::io::kafka::config::KafkaConfig;
use driftwatch::loadtest::config::Profile;
use driftwatch::loadtest::kafka::{self, KafkaMode};
use driftwatch::loadtest::{prepare, run_prepared, Prepared};
use hdrhistogram::Histogram;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::time::Duration;

use driftwatch::loadtest::report::quantile as q;

fn main() -> anyhow::Result<()> {
    let bench = std::env::args().any(|a| a == "--bench");
    let mut rates: Vec<f64> = if bench {
        vec![10_000.0, 20_000.0, 30_000.0, 40_000.0]
    } else {
        vec![1_000.0]
    };
    let mut duration: f64 = if bench { 8.0 } else { 2.0 };
    let mut broker = None;
    let mut skew_ms = 100;
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
            "--kafka" => broker = Some(Broker::start()?),
            "--clock-skew-ms" => skew_ms = args.next().unwrap_or_default().parse()?,
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    let profile = |rate: f64, duration_s: f64| Profile {
        rate,
        duration_s,
        keys: 100_000,
        p_drop: 0.001,
        p_corrupt: 0.001,
        p_extra: 0.0005,
        ..Profile::default()
    };
    if bench && broker.is_none() {
        // A first run, not scored, at the highest rate: on a machine whose first touch of
        // fresh memory is slow (this VM zeroes fresh pages at a fraction of its memory
        // speed) the first run in a process pays for the heap every later one reuses, and
        // its latency measured that, not the detector.
        let top = rates.iter().copied().fold(0.0, f64::max);
        let p = profile(top, duration.min(4.0));
        run_prepared(&prepare(&p)?, &p, 2)?;
        println!("(a warm-up run at {top:.0}/s, not scored, before the table)");
    }
    println!("| source changes/s | detector | feed lateness p99 | latency p50 / p99 / max beyond grace | found / truth | false |");
    println!("|---|---|---|---|---|---|");
    for rate in rates {
        let p = profile(rate, duration);
        let o = match &broker {
            None => run_prepared(&prepare(&p)?, &p, 2)?,
            Some(b) => kafka::run(&p, &b.mode(skew_ms))?,
        };
        let r = &o.report;
        let l = &r["detection_latency_ms_beyond_grace"];
        println!(
            "| {rate:.0} | engine -w 2{} | {} ms | {} / {} / {} ms | {} / {} | {} |",
            if broker.is_some() { " (job)" } else { "" },
            r["feed_lateness_ms"]["p99"],
            l["p50"],
            l["p99"],
            l["max"],
            r["found"],
            r["truth"],
            r["false"].as_array().map_or(0, Vec::len)
        );
        // The same load again, for the baseline: a fresh schedule (times are absolute).
        let (prep, n) = match &broker {
            None => {
                let prep = prepare(&p)?;
                let n = naive::run(&prep, p.grace.as_millis(), &mut naive::Schedule::new(&prep));
                (prep, n)
            }
            Some(b) => {
                let prep = driftwatch::loadtest::prepare_with_lead(&p, 1_000)?;
                let n = naive_through(b, &prep, &p)?;
                (prep, n)
            }
        };
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

/// An Apache Kafka broker for the run, on a free port, its data in a temporary directory.
struct Broker {
    port: u16,
    dir: std::path::PathBuf,
}

impl Broker {
    fn script(verb: &str, port: u16, dir: &std::path::Path) -> anyhow::Result<()> {
        let root = env!("CARGO_MANIFEST_DIR");
        let ok = std::process::Command::new("bash")
            .arg(format!("{root}/scripts/broker"))
            .args([verb, &port.to_string()])
            .arg(dir)
            .status()?
            .success();
        anyhow::ensure!(ok, "scripts/broker {verb} failed");
        Ok(())
    }

    fn start() -> anyhow::Result<Broker> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir = std::env::temp_dir().join(format!("driftwatch-bench-broker-{port}"));
        Self::script("start", port, &dir)?;
        Ok(Broker { port, dir })
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn mode(&self, skew_ms: u64) -> KafkaMode {
        KafkaMode {
            brokers: self.addr(),
            exe: env!("CARGO_BIN_EXE_driftwatch").into(),
            workers: 2,
            clock_skew: driftwatch::spec::Duration::from_millis(skew_ms),
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Self::script("stop", self.port, &self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The baseline's input through the broker: one consumer on both topics.
struct KafkaFeed {
    consumer: BaseConsumer,
    source: String,
    read: usize,
    total: usize,
}

impl naive::Feed for KafkaFeed {
    fn poll(
        &mut self,
        now: u64,
        lateness: &mut Histogram<u64>,
        f: &mut dyn FnMut(usize, &str),
    ) -> bool {
        while let Some(Ok(m)) = self.consumer.poll(Duration::ZERO) {
            self.read += 1;
            let side = usize::from(m.topic() != self.source);
            if let Some(t) = m.timestamp().to_millis() {
                let _ = lateness.record(now.saturating_sub(t as u64));
            }
            if let Some(Ok(line)) = m.payload_view::<str>() {
                f(side, line);
            }
        }
        self.read >= self.total
    }
}

/// The baseline over the broker: the load produced on schedule to fresh topics while
/// the baseline consumes them.
fn naive_through(b: &Broker, prep: &Prepared, p: &Profile) -> anyhow::Result<naive::Scored> {
    let prefix = format!("driftwatch-bench-naive-{}", driftwatch::io::now_ms());
    let (source, replica) = (format!("{prefix}.source"), format!("{prefix}.replica"));
    let config = KafkaConfig::for_brokers(&b.addr(), &prefix);
    kafka::create_topics(&config, &[&source, &replica])?;
    let consumer: BaseConsumer = config
        .client(&[("group.id", &prefix), ("fetch.wait.max.ms", "10")])
        .create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&source, 0, Offset::Beginning)?;
    tpl.add_partition_offset(&replica, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let mut feed = KafkaFeed {
        consumer,
        source: source.clone(),
        read: 0,
        total: prep.source.len() + prep.target.len(),
    };
    let lsn = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        let producer = s.spawn(|| kafka::produce(prep, p, &config, [&source, &replica], &lsn));
        let scored = naive::run(prep, p.grace.as_millis(), &mut feed);
        producer
            .join()
            .map_err(|_| anyhow::anyhow!("the producer panicked"))??;
        Ok(scored)
    })
}
