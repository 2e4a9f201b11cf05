//! A real Apache Kafka broker for a test (KRaft, one node), started and stopped by
//! `scripts/broker`.

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A broker on a free loopback port with its data in a temporary directory.
pub struct Broker {
    pub port: u16,
    dir: tempfile::TempDir,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/broker")
}

impl Broker {
    pub fn start() -> Broker {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let b = Broker { port, dir };
        b.run(&["start"]);
        b
    }

    fn run(&self, verb: &[&str]) {
        let out = Command::new("bash")
            .arg(script())
            .args(verb)
            .arg(self.port.to_string())
            .arg(self.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scripts/broker {verb:?} failed (install Kafka with `scripts/broker install`): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the broker (its data stays).
    #[allow(dead_code)]
    pub fn stop(&self) {
        self.run(&["stop"]);
    }

    /// Starts it again on the same port and data.
    #[allow(dead_code)]
    pub fn resume(&self) {
        self.run(&["start"]);
    }

    /// The SASL_SSL listener: (address, user, password, CA file, a CA that signed nothing).
    #[allow(dead_code)]
    pub fn sasl(&self) -> Sasl {
        let read = |name: &str| {
            std::fs::read_to_string(self.dir.path().join(name))
                .unwrap()
                .trim()
                .to_string()
        };
        Sasl {
            addr: format!("127.0.0.1:{}", read("sasl.port")),
            username: read("sasl.username"),
            password: read("sasl.password"),
            ca: self.dir.path().join("tls/ca.pem"),
            other_ca: self.dir.path().join("tls/other-ca.pem"),
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        let out = Command::new("bash")
            .arg(script())
            .args([
                "topic",
                name,
                &partitions.to_string(),
                &self.port.to_string(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Creates a job's output topics as plain (not compacted) topics, so a test sees
    /// every record the job wrote, not just what compaction keeps.
    #[allow(dead_code)]
    pub fn create_outputs(&self, prefix: &str) {
        for t in ["drift", "corrections", "dlq"] {
            self.create_topic(&format!("{prefix}.{t}"), 3);
        }
    }

    /// Produces `(key, value)` messages (value `None`: a tombstone), keyed partitioning.
    pub fn produce(&self, topic: &str, messages: &[(Option<String>, Option<String>)]) {
        let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", self.addr())
            .set("enable.idempotence", "true")
            .set("linger.ms", "20")
            .create()
            .unwrap();
        for (k, v) in messages {
            let mut r: BaseRecord<'_, str, str> = BaseRecord::to(topic);
            if let Some(k) = k {
                r = r.key(k.as_str());
            }
            if let Some(v) = v {
                r = r.payload(v.as_str());
            }
            let mut r = r;
            loop {
                match p.send(r) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        r = back;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        }
        p.flush(Duration::from_secs(60)).unwrap();
    }

    /// Produces raw `(key, value)` byte messages to one partition (value `None`: a
    /// tombstone), for malformed input on a chosen partition.
    #[allow(dead_code)]
    pub fn produce_raw(&self, topic: &str, partition: i32, messages: &[RawMessage]) {
        let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", self.addr())
            .set("enable.idempotence", "true")
            .create()
            .unwrap();
        for (k, v) in messages {
            let mut r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).partition(partition);
            if let Some(k) = k {
                r = r.key(k.as_slice());
            }
            if let Some(v) = v {
                r = r.payload(v.as_slice());
            }
            p.send(r).map_err(|(e, _)| e).unwrap();
        }
        p.flush(Duration::from_secs(60)).unwrap();
    }

    /// Every message of `topic` up to its high watermarks: (key, value, headers).
    pub fn consume_all(&self, topic: &str) -> Vec<Record> {
        consume_timed(&self.addr(), topic)
            .into_iter()
            .map(|(_, r)| r)
            .collect()
    }
}

/// `f`'s answer, asked again for up to 30 s while it fails: a topic the job has just
/// created may not have elected its leaders yet, and the broker answers "not leader" or
/// "unknown partition" for a moment.
fn retrying<T>(what: &str, topic: &str, f: impl Fn() -> KafkaResult<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("{what} of {topic}: {e}; retrying");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("{what} of {topic}: {e}"),
        }
    }
}

/// Every message of `topic` on the broker at `addr`, up to its high watermarks, with the
/// time it was written (ms): (key, value, headers).
pub fn consume_timed(addr: &str, topic: &str) -> Vec<(i64, Record)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", "driftwatch-tests")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let partitions = retrying("metadata", topic, || {
        let md = c.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        match md.topics()[0].partitions().len() {
            0 => Err(KafkaError::MetadataFetch(
                RDKafkaErrorCode::UnknownTopicOrPartition,
            )),
            n => Ok(n as i32),
        }
    });
    // Every partition at once, each read from its low to its high watermark.
    let mut tpl = TopicPartitionList::new();
    let mut next = Vec::new();
    let mut ends = Vec::new();
    for p in 0..partitions {
        let (low, high) = retrying("watermarks", topic, || {
            c.fetch_watermarks(topic, p, Duration::from_secs(10))
        });
        tpl.add_partition_offset(topic, p, Offset::Offset(low))
            .unwrap();
        next.push(low);
        ends.push(high);
    }
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while next.iter().zip(&ends).any(|(n, e)| n < e) {
        assert!(
            std::time::Instant::now() < deadline,
            "{topic} stuck at {next:?} < {ends:?}"
        );
        let Some(m) = c.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.unwrap();
        let p = m.partition();
        if m.offset() < next[p as usize] || m.offset() >= ends[p as usize] {
            continue;
        }
        next[p as usize] = m.offset() + 1;
        let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), text(h.value).unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        let written = m.timestamp().to_millis().unwrap_or_default();
        out.push((
            written,
            Record {
                partition: p,
                key: text(m.key()),
                value: text(m.payload()),
                headers,
            },
        ));
    }
    out
}

#[allow(dead_code)] // each test binary uses its own subset
impl Broker {
    /// The offsets `group` has committed on each partition of `topic`.
    pub fn committed(&self, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.addr())
            .set("group.id", group)
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
        (0..partitions)
            .map(|p| match got.find_partition(topic, p).unwrap().offset() {
                Offset::Offset(o) => o,
                _ => -1,
            })
            .collect()
    }

    /// The high watermark of each partition of `topic`.
    pub fn ends(&self, topic: &str, partitions: i32) -> Vec<i64> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.addr())
            .create()
            .unwrap();
        (0..partitions)
            .map(|p| {
                retrying("watermarks", topic, || {
                    c.fetch_watermarks(topic, p, Duration::from_secs(10))
                })
                .1
            })
            .collect()
    }
}

/// The order id of a generated event (wrapped or bare; `after`, or `before` for deletes).
#[allow(dead_code)]
pub fn order_id(line: &str) -> i64 {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let env = if v.get("payload").is_some() {
        &v["payload"]
    } else {
        &v
    };
    let row = if env["after"].is_null() {
        &env["before"]
    } else {
        &env["after"]
    };
    row["id"].as_i64().unwrap()
}

/// Debezium-style keyed messages: key `{"id":N}`.
#[allow(dead_code)]
pub fn keyed(lines: &[String]) -> Vec<(Option<String>, Option<String>)> {
    lines
        .iter()
        .map(|l| {
            (
                Some(format!(r#"{{"id":{}}}"#, order_id(l))),
                Some(l.clone()),
            )
        })
        .collect()
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /metrics` from a job, or an empty string while it is not serving (yet).
#[allow(dead_code)]
pub fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut conn) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut response = String::new();
    let _ = conn.read_to_string(&mut response);
    response
}

/// The broker's SASL_SSL listener (SCRAM-SHA-512), as `scripts/broker` set it up.
#[allow(dead_code)]
pub struct Sasl {
    pub addr: String,
    pub username: String,
    pub password: String,
    pub ca: PathBuf,
    pub other_ca: PathBuf,
}

/// A raw message to produce: key and value bytes (value `None`: a tombstone).
#[allow(dead_code)]
pub type RawMessage = (Option<Vec<u8>>, Option<Vec<u8>>);

/// A consumed message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Record {
    pub partition: i32,
    pub key: Option<String>,
    pub value: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", &self.port.to_string()])
            .arg(self.dir.path())
            .output();
    }
}
