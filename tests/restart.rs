//! Restart from a checkpoint: a 2-process cluster killed with SIGKILL mid-stream and
//! started again from its checkpoints produces the drift and corrections of a run that
//! never stopped (records re-emitted after the restart are identical, so each key's
//! changelog, with repeats collapsed, is the same).

mod support {
    pub mod broker;
}

use driftwatch::demo::generator::{generate, GenConfig};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::broker::{Broker, Record};

fn keyed(lines: &[String]) -> Vec<(Option<String>, Option<String>)> {
    lines
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
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
            (Some(format!(r#"{{"id":{}}}"#, row["id"])), Some(l.clone()))
        })
        .collect()
}

/// The orders spec with checkpoints every second of event time, as often as possible.
fn spec_with_checkpoints(dir: &Path) -> std::path::PathBuf {
    let spec = dir.join("orders.toml");
    let text = std::fs::read_to_string("dataflows/orders.toml").unwrap()
        + &format!(
            "\n[checkpoint]\ndir = {:?}\ninterval = \"1s\"\nmin_wall_interval = \"0ms\"\nkeep = 3\n",
            dir.join("checkpoints").display().to_string()
        );
    std::fs::write(&spec, text).unwrap();
    spec
}

/// Starts a 2-process × 2-worker cluster of the job over `out`'s topics.
fn cluster(broker: &Broker, spec: &Path, out: &str, hosts: &Path) -> Vec<Child> {
    (0..2)
        .map(|p| {
            Command::new(env!("CARGO_BIN_EXE_driftwatch"))
                .arg("run")
                .arg(spec)
                .args(["--stop-at-end", "--brokers", &broker.addr()])
                .args(["--source-topic", "r.src", "--target-topic", "r.tgt"])
                .args(["--drift-topic", &format!("{out}.drift")])
                .args(["--corrections-topic", &format!("{out}.corrections")])
                .args(["--dlq-topic", &format!("{out}.dlq")])
                .args(["-w", "2", "-n", "2", "-p", &p.to_string(), "-h"])
                .arg(hosts)
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

/// Each key's records in order, consecutive repeats collapsed.
fn changelog(records: &[Record]) -> BTreeMap<String, Vec<Option<String>>> {
    let mut out: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    for r in records {
        let log = out.entry(r.key.clone().unwrap_or_default()).or_default();
        if log.last() != Some(&r.value) {
            log.push(r.value.clone());
        }
    }
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn sigkill_mid_stream_then_restart_from_the_checkpoint_gives_the_same_drift() {
    let broker = Broker::start();
    let g = generate(&GenConfig {
        events: 20_000,
        keys: 2_000,
        seed: 77,
        p_drop: 0.01,
        p_corrupt: 0.01,
        p_extra: 0.002,
        ..GenConfig::default()
    });
    broker.create_topic("r.src", 2);
    broker.create_topic("r.tgt", 2);
    broker.produce("r.src", &keyed(&g.source));
    broker.produce("r.tgt", &keyed(&g.target));

    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    let write_hosts = || {
        std::fs::write(
            &hosts,
            format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port()),
        )
        .unwrap()
    };
    // The reference: the same cluster, never interrupted, no checkpoints.
    write_hosts();
    for o in wait_all(cluster(
        &broker,
        Path::new("dataflows/orders.toml"),
        "clean",
        &hosts,
    )) {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    // The crash: SIGKILL process 1 mid-stream, once a checkpoint 15 s of event time into
    // the 40 s of input is complete (drift has been reported by then).
    let spec = spec_with_checkpoints(dir.path());
    let store = driftwatch::checkpoint::store::Store::new(dir.path().join("checkpoints"));
    write_hosts();
    let mut children = cluster(&broker, &spec, "crash", &hosts);
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
    write_hosts();
    let outs = wait_all(cluster(&broker, &spec, "crash", &hosts));
    for o in &outs {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let log = String::from_utf8_lossy(&outs[0].stderr);
    assert!(log.contains("resuming from the checkpoint"), "{log}");

    for topic in ["drift", "corrections"] {
        let clean = changelog(&broker.consume_all(&format!("clean.{topic}")));
        let crash = changelog(&broker.consume_all(&format!("crash.{topic}")));
        assert!(!clean.is_empty());
        assert_eq!(crash, clean, "{topic} after the restart (checkpoint {checkpoint:?}, {crashed_drift} drift records before the kill)");
    }
}
