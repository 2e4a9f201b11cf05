//! Restart from a checkpoint: a 2-process cluster killed with SIGKILL mid-stream and
//! started again from its checkpoints produces the drift and corrections of a run that
//! never stopped (records re-emitted after the restart are identical, so each key's
//! changelog, with repeats collapsed, is the same).

mod support {
    pub mod broker;
}

use driftwatch::demo::generator::{generate, GenConfig};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::broker::{free_port, keyed, scrape, Broker, Record};

/// The orders spec with checkpoints every second of event time, as often as possible,
/// its inputs declared co-partitioned where `co` (the test's topics are: keyed alike,
/// two partitions each).
fn spec_with_checkpoints(dir: &Path, co: bool) -> std::path::PathBuf {
    let spec = dir.join("orders.toml");
    let declared = if co { "co_partitioned = true\n" } else { "" };
    let text = declared.to_string()
        + &std::fs::read_to_string("dataflows/orders.toml").unwrap()
        + &format!(
            "\n[checkpoint]\ndir = {:?}\ninterval = \"1s\"\nmin_wall_interval = \"0ms\"\nkeep = 3\n",
            dir.join("checkpoints").display().to_string()
        );
    std::fs::write(&spec, text).unwrap();
    spec
}

/// Starts a cluster of `shape` (processes, workers each) over `out`'s topics.
fn cluster(
    broker: &Broker,
    spec: &Path,
    out: &str,
    hosts: &Path,
    shape: (usize, usize),
    extra: &[&str],
) -> Vec<Child> {
    let ports: String = (0..shape.0)
        .map(|_| format!("127.0.0.1:{}\n", free_port()))
        .collect();
    std::fs::write(hosts, ports).unwrap();
    (0..shape.0)
        .map(|p| {
            Command::new(env!("CARGO_BIN_EXE_driftwatch"))
                .arg("run")
                .arg(spec)
                .args(["--stop-at-end", "--brokers", &broker.addr()])
                .args(["--source-topic", "r.src", "--target-topic", "r.tgt"])
                .args(["--drift-topic", &format!("{out}.drift")])
                .args(["--corrections-topic", &format!("{out}.corrections")])
                .args(["--dlq-topic", &format!("{out}.dlq")])
                .args(["-w", &shape.1.to_string(), "-n", &shape.0.to_string()])
                .args(["-p", &p.to_string(), "-h"])
                .arg(hosts)
                .args(extra)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect()
}

fn wait_all(children: Vec<Child>) -> Vec<std::process::Output> {
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

/// Each key's distinct records, in the order of their first appearance.
fn changelog(records: &[Record]) -> BTreeMap<String, Vec<Option<String>>> {
    let mut out: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    for r in records {
        let log = out.entry(r.key.clone().unwrap_or_default()).or_default();
        // A restart re-emits what followed its checkpoint: identical records, dropped
        // here. (A drift record carries its report time, so a real one never repeats.)
        if !log.contains(&r.value) {
            log.push(r.value.clone());
        }
    }
    out
}

/// A broker holding 20k generated orders changes and the replica's, on `r.src`/`r.tgt`,
/// with plain output topics for the `clean` and `crash` runs.
fn orders_broker(seed: u64) -> Broker {
    let broker = Broker::start();
    let g = generate(&GenConfig {
        events: 20_000,
        keys: 2_000,
        seed,
        p_drop: 0.01,
        p_corrupt: 0.01,
        p_extra: 0.002,
        ..GenConfig::default()
    });
    broker.create_topic("r.src", 2);
    broker.create_topic("r.tgt", 2);
    broker.produce("r.src", &keyed(&g.source));
    broker.produce("r.tgt", &keyed(&g.target));
    broker.create_outputs("clean");
    broker.create_outputs("crash");
    broker
}

/// Runs the reference, crashes a cluster of shape `crash` mid-stream (its inputs
/// declared co-partitioned where `co`), restarts it as `restart`, and compares. Returns
/// what later checks need.
fn crash_and_restart(
    crash: (usize, usize),
    restart: (usize, usize),
    co: bool,
) -> (Broker, tempfile::TempDir, std::path::PathBuf) {
    let broker = orders_broker(77);
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");

    // The reference: the same cluster, never interrupted, no checkpoints.
    let plain = Path::new("dataflows/orders.toml");
    for o in wait_all(cluster(&broker, plain, "clean", &hosts, (2, 2), &[])) {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    // The crash: SIGKILL process 1 mid-stream, once a checkpoint 15 s of event time into
    // the 40 s of input is complete (drift has been reported by then).
    let spec = spec_with_checkpoints(dir.path(), co);
    let store = driftwatch::checkpoint::store::Store::new(dir.path().join("checkpoints"));
    let mut children = cluster(&broker, &spec, "crash", &hosts, crash, &[]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let start = GenConfig::default().start_ms;
    while store
        .complete()
        .first()
        .is_none_or(|(t, _)| *t < start + 15_000)
    {
        assert!(Instant::now() < deadline, "no checkpoints written");
        assert!(
            children[1].try_wait().unwrap().is_none(),
            "finished before the kill"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let it deliver output past the checkpoint first: the restart must re-emit that
    // identically.
    std::thread::sleep(Duration::from_millis(300));
    children[1].kill().unwrap();
    let _ = children[1].wait();
    // Its peer loses the connection; whatever it does, it is stopped too.
    std::thread::sleep(Duration::from_millis(500));
    let _ = children[0].kill();
    let _ = children[0].wait();
    let checkpoint = store.complete()[0];
    let crashed_drift = broker.consume_all("crash.drift").len();
    assert!(
        crashed_drift > 0,
        "the kill came before any drift was reported"
    );

    // The restart resumes from the newest complete checkpoint and finishes.
    let outs = wait_all(cluster(&broker, &spec, "crash", &hosts, restart, &[]));
    for o in &outs {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let log = String::from_utf8_lossy(&outs[0].stderr);
    assert!(log.contains("resuming from the checkpoint"), "{log}");
    let raw = broker.consume_all("crash.drift").len();
    let distinct: usize = changelog(&broker.consume_all("crash.drift"))
        .values()
        .map(Vec::len)
        .sum();
    eprintln!(
        "crash.drift: {raw} records, {distinct} distinct ({} re-emitted after the restart)",
        raw - distinct
    );
    assert_same(
        &broker,
        &format!("checkpoint {checkpoint:?}, {crashed_drift} drift records before the kill"),
    );
    (broker, dir, spec)
}

/// The crash run's drift and corrections changelogs equal the reference's.
fn assert_same(broker: &Broker, context: &str) {
    for topic in ["drift", "corrections"] {
        let clean = changelog(&broker.consume_all(&format!("clean.{topic}")));
        let crash = changelog(&broker.consume_all(&format!("crash.{topic}")));
        assert!(!clean.is_empty());
        let differ: Vec<_> = clean
            .keys()
            .chain(crash.keys())
            .filter(|k| clean.get(*k) != crash.get(*k))
            .take(3)
            .map(|k| {
                format!(
                    "{k}:\n  clean {:?}\n  crash {:?}",
                    clean.get(k),
                    crash.get(k)
                )
            })
            .collect();
        assert!(
            differ.is_empty(),
            "{topic} after the restart ({context}): {} keys vs {}, e.g.\n{}",
            crash.len(),
            clean.len(),
            differ.join("\n")
        );
    }
}

#[test]
fn sigkill_mid_stream_then_restart_from_the_checkpoint_gives_the_same_drift() {
    crash_and_restart((2, 2), (2, 2), false);
}

#[test]
fn co_partitioned_inputs_restart_on_another_shape_that_keeps_partitions_together() {
    // Each of 2 processes of one worker reads its partition of both topics and keeps its
    // keys; 1 process of 3 workers resumes: partition i, and the file of the worker that
    // read it, go to worker i (worker 2 reads nothing). The shapes refused are the unit
    // tests' (`job::checkpoint::reshape`).
    crash_and_restart((2, 1), (1, 3), true);
}

#[test]
fn co_partitioned_inputs_restart_on_a_divisor_and_refuse_a_shape_that_parts_a_file() {
    // 2 processes of one worker each wrote the checkpoint; 1 worker resumes both files
    // and writes checkpoints of its own, whose one file holds both partitions: 2 workers
    // would read them apart, and are refused with one line that says what fits.
    let (broker, dir, spec) = crash_and_restart((2, 1), (1, 1), true);
    let hosts = dir.path().join("hosts");
    let other = wait_all(cluster(&broker, &spec, "crash", &hosts, (1, 2), &[]));
    assert_eq!(other[0].status.code(), Some(2));
    let err = String::from_utf8_lossy(&other[0].stderr);
    assert!(
        err.contains("declares co_partitioned, and its checkpoint at")
            && err.contains("written by 1 workers over 2 partitions a side")
            && err.contains("came from partitions 0 and 1")
            && err.contains("restore it on 1 workers"),
        "{err}"
    );
    // The line saying which checkpoint it found, then the one error line.
    let errors = err.lines().filter(|l| l.starts_with("driftwatch: "));
    assert_eq!(errors.count(), 1, "{err}");
}

#[test]
fn restart_with_another_shape_repartitions_state_and_bad_checkpoints_are_refused() {
    // 2 processes × 2 workers wrote the checkpoint; 1 process × 3 workers resumes it.
    let (broker, dir, spec) = crash_and_restart((2, 2), (1, 3), false);

    // Corrupt the newest complete checkpoint: refused by name, and with
    // --require-checkpoint the job stops; without it, it replays from the beginning and
    // still converges to the same drift.
    let store = driftwatch::checkpoint::store::Store::new(dir.path().join("checkpoints"));
    let (time, _) = store.complete()[0];
    let file = dir
        .path()
        .join("checkpoints")
        .join(format!("{time:020}-w0000-of-0003.ckpt"));
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let hosts = dir.path().join("hosts");
    let strict = wait_all(cluster(
        &broker,
        &spec,
        "crash",
        &hosts,
        (1, 1),
        &["--require-checkpoint"],
    ));
    assert_eq!(strict[0].status.code(), Some(2));
    let err = String::from_utf8_lossy(&strict[0].stderr);
    assert!(
        err.contains("w0000-of-0003.ckpt") && err.contains("checksum"),
        "{err}"
    );
    let lenient = wait_all(cluster(&broker, &spec, "crash", &hosts, (1, 1), &[]));
    assert!(lenient[0].status.success());
    let log = String::from_utf8_lossy(&lenient[0].stderr);
    assert!(log.contains("replaying from the earliest offsets"), "{log}");
    // A replay repeats the whole history: the latest record per key (what compaction
    // keeps) is unchanged.
    for topic in ["drift", "corrections"] {
        let latest = |t: &str| -> BTreeMap<String, Option<String>> {
            changelog(&broker.consume_all(&format!("{t}.{topic}")))
                .into_iter()
                .map(|(k, v)| (k, v.last().cloned().flatten()))
                .collect()
        };
        assert_eq!(latest("crash"), latest("clean"), "{topic} after a replay");
    }
}

#[test]
fn the_broker_going_away_mid_run_loses_nothing() {
    let broker = orders_broker(78);
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    let plain = Path::new("dataflows/orders.toml");
    for o in wait_all(cluster(&broker, plain, "clean", &hosts, (1, 2), &[])) {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    let metrics = format!("127.0.0.1:{}", free_port());
    let job = cluster(
        &broker,
        plain,
        "crash",
        &hosts,
        (1, 2),
        &["--metrics-addr", &metrics],
    );
    // Mid-stream: some of the input read, not all.
    let deadline = Instant::now() + Duration::from_secs(60);
    let read = |text: &str| -> u64 {
        text.lines()
            .find(|l| {
                l.starts_with(
                    r#"driftwatch_events_total{entity="orders",side="source",outcome="read"}"#,
                )
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    while read(&scrape(&metrics)) < 3_000 {
        assert!(Instant::now() < deadline, "the job read nothing");
        std::thread::sleep(Duration::from_millis(20));
    }
    broker.stop();
    // While it is gone, the job says it is unhealthy.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !scrape(&metrics).contains("driftwatch_healthy 0") {
        assert!(
            Instant::now() < deadline,
            "never reported unhealthy:\n{}",
            scrape(&metrics)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        read(&scrape(&metrics)) < 20_001,
        "finished before the outage"
    );
    std::thread::sleep(Duration::from_secs(2));
    broker.resume();
    let outs = wait_all(job);
    assert!(
        outs[0].status.success(),
        "{}",
        String::from_utf8_lossy(&outs[0].stderr)
    );
    assert_same(&broker, "after the broker came back");
}
