//! A failure anywhere ends the whole cluster promptly, with one line naming its cause:
//! a process killed under a running two-process cluster, and a worker that fails while
//! the other workers of its process are live.

mod support {
    #[allow(dead_code)] // this file uses the broker, its producer and free ports only
    pub mod broker;
}

use driftwatch::cdc::{Message, Origin, SideId};
use driftwatch::demo::generator::{generate, GenConfig};
use driftwatch::io::{Partition, Poll};
use driftwatch::run::{execute, Cluster, PartitionFactory};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::broker::{free_port, keyed, scrape, Broker};

/// Kills the child when dropped (a failed assertion must not leave a job running).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits up to `limit` for the child to exit; its status and stderr, and how long it took.
fn wait_exit(child: &mut Child, limit: Duration) -> Option<(std::process::ExitStatus, Duration)> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some((status, start.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn stderr_of(child: &mut Child) -> String {
    use std::io::Read;
    let mut text = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut text);
    }
    text
}

#[test]
fn killing_one_process_ends_the_others_within_seconds_with_one_line() {
    let broker = Broker::start();
    let g = generate(&GenConfig {
        events: 2_000,
        keys: 200,
        seed: 8,
        ..GenConfig::default()
    });
    for (topic, lines) in [("kill.src", &g.source), ("kill.tgt", &g.target)] {
        broker.create_topic(topic, 2);
        broker.produce(topic, &keyed(lines));
    }
    let dir = tempfile::tempdir().unwrap();
    let hostfile = dir.path().join("hosts");
    let hosts: String = (0..2)
        .map(|_| format!("127.0.0.1:{}\n", free_port()))
        .collect();
    std::fs::write(&hostfile, hosts).unwrap();
    let metrics: Vec<String> = (0..2)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    // A live cluster (no --stop-at-end): it would run until stopped.
    let mut procs: Vec<KillOnDrop> = (0..2)
        .map(|p| {
            KillOnDrop(
                Command::new(env!("CARGO_BIN_EXE_driftwatch"))
                    .args(["run", "dataflows/orders.toml", "--brokers", &broker.addr()])
                    .args(["--source-topic", "kill.src", "--target-topic", "kill.tgt"])
                    .args(["--drift-topic", "kill.drift"])
                    .args(["--corrections-topic", "kill.corrections"])
                    .args(["--dlq-topic", "kill.dlq", "--metrics-addr", &metrics[p]])
                    .args(["-w", "2", "-n", "2", "-p", &p.to_string()])
                    .arg("-h")
                    .arg(&hostfile)
                    .current_dir(env!("CARGO_MANIFEST_DIR"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    // Running: both processes serve metrics and their dataflow has made progress.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !metrics.iter().all(|m| {
        scrape(m)
            .lines()
            .any(|l| l.starts_with("driftwatch_event_time_lag_seconds ") && !l.ends_with(" 0"))
    }) {
        assert!(Instant::now() < deadline, "the cluster did not start");
        for p in procs.iter_mut() {
            assert!(p.0.try_wait().unwrap().is_none(), "{}", stderr_of(&mut p.0));
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    procs[1].0.kill().unwrap(); // SIGKILL: no orderly shutdown, no word to its peers
    let survivor = &mut procs[0].0;
    let (status, took) = wait_exit(survivor, Duration::from_secs(20))
        .expect("process 0 still runs 20 s after its peer was killed");
    let stderr = stderr_of(survivor);
    assert!(!status.success(), "{status}: {stderr}");
    assert!(took < Duration::from_secs(10), "took {took:?}: {stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("driftwatch:"))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("process 1 of the cluster is gone"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

/// A partition that never ends and never has anything to read (a quiet live topic).
struct Quiet(SideId);

impl Partition for Quiet {
    fn side(&self) -> SideId {
        self.0
    }
    fn poll(&mut self, _: usize, _: &mut dyn FnMut(&Message<'_>, u64)) -> anyhow::Result<Poll> {
        Ok(Poll::Idle)
    }
    fn origin(&self, position: u64) -> Origin {
        Origin::Generated {
            stream: Arc::from("quiet"),
            seq: position,
        }
    }
}

/// A partition whose reads fail after a few polls (a broken input).
struct Failing(u32);

impl Partition for Failing {
    fn side(&self) -> SideId {
        SideId::Target
    }
    fn poll(&mut self, _: usize, _: &mut dyn FnMut(&Message<'_>, u64)) -> anyhow::Result<Poll> {
        self.0 += 1;
        anyhow::ensure!(self.0 < 20, "the disk under the target went away");
        Ok(Poll::Idle)
    }
    fn origin(&self, position: u64) -> Origin {
        Origin::Generated {
            stream: Arc::from("failing"),
            seq: position,
        }
    }
}

#[test]
fn a_failed_worker_stops_its_live_peers_with_its_cause() {
    let spec = driftwatch::spec::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/dataflows/orders.toml"
    )))
    .unwrap();
    // Worker 0 reads quiet inputs forever; worker 1's input fails.
    let parts: PartitionFactory = Arc::new(|index, _| {
        Ok(if index == 1 {
            vec![Box::new(Failing(0)) as Box<dyn Partition>]
        } else {
            vec![
                Box::new(Quiet(SideId::Source)) as Box<dyn Partition>,
                Box::new(Quiet(SideId::Target)),
            ]
        })
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let result = execute(&spec, &Cluster::local(2), parts, None, u64::MAX);
        let _ = tx.send(result.err().map(|e| format!("{e:#}")));
    });
    let error = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the live worker still runs 20 s after its peer failed");
    assert_eq!(
        error.as_deref(),
        Some("worker 1 failed: the disk under the target went away")
    );
}
