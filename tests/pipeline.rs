//! The real pipeline end to end: PostgreSQL, Debezium's PostgreSQL connector on Kafka
//! Connect capturing `shop` and `replica`, Debezium's JDBC sink syncing `shop` to
//! `replica`, driftwatch watching both topics, and a second JDBC sink applying its
//! corrections (`scripts/pipeline`).
//!
//! A steady workload writes to `shop` (inserts, updates that leave a TOASTed note
//! unchanged, deletes); `replica` is tampered with behind the pipeline's back; the
//! Connect worker is killed and restarted mid-run (at-least-once redelivery). driftwatch
//! must report exactly the tampered keys, with the right kinds and fields, and the
//! corrections must make `replica` equal `shop`, every drift record ending resolved.

mod support {
    #[allow(dead_code)] // this file reads topics only
    pub mod broker;
}

use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pipeline")
}

/// The pipeline in a directory of its own, brought down when dropped.
struct Pipeline {
    dir: tempfile::TempDir,
    facts: HashMap<String, String>,
}

impl Pipeline {
    fn up() -> Pipeline {
        let dir = tempfile::tempdir().unwrap();
        // PostgreSQL runs as its own user: it must reach its data directory.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let mut p = Pipeline {
            dir,
            facts: HashMap::new(),
        };
        p.facts = p.run("up");
        p
    }

    fn run(&self, verb: &str) -> HashMap<String, String> {
        let out = Command::new("bash")
            .arg(script())
            .arg(verb)
            .arg(self.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scripts/pipeline {verb}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn fact(&self, key: &str) -> &str {
        &self.facts[key]
    }

    /// Runs SQL on `db` (`shop` or `replica`); rows as `|`-separated lines.
    fn sql(&self, db: &str, query: &str) -> String {
        let dsn = match db {
            "shop" => self.fact("SOURCE_DSN"),
            _ => self.fact("REPLICA_DSN"),
        };
        let out = Command::new("psql")
            .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", dsn, "-c", query])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{query}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the workload's rows (ids below 1000) are the same in both databases.
    fn wait_synced(&self) {
        let rows = format!(
            "select * from ({}) r where id < 1000 order by id",
            COMPARED.replace(" order by id", "")
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.sql("shop", &rows) != self.sql("replica", &rows) {
            assert!(Instant::now() < deadline, "the sync did not catch up");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the Connect worker (no offset flush: its last records are redelivered) and
    /// brings it back.
    fn crash_connect(&self) {
        let pid = std::fs::read_to_string(self.dir.path().join("connect/pid")).unwrap();
        Command::new("kill")
            .args(["-9", pid.trim()])
            .status()
            .unwrap();
        std::thread::sleep(Duration::from_secs(1));
        self.run("up");
        // The sink's consumer rejoins its group only once the killed member's session
        // has expired: until a change written now reaches `replica`, the sync is down,
        // and changes waiting through that (longer than grace) would be drift.
        let marker = format!("restarted {}", now_ms());
        self.sql(
            "shop",
            &format!(
                "insert into orders values (999, 0, '{marker}', 0, 0, null, now()) \
                 on conflict (id) do update set status = excluded.status"
            ),
        );
        let deadline = Instant::now() + Duration::from_secs(90);
        while !self
            .sql("replica", "select status from orders where id = 999")
            .contains(&marker)
        {
            assert!(Instant::now() < deadline, "the sync did not come back");
            std::thread::sleep(Duration::from_millis(200));
        }
        // A rebalance may still follow (the killed member's session expiring), and with
        // it another redelivery; writes resume once it has passed.
        std::thread::sleep(Duration::from_secs(12));
        self.wait_synced();
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("down")
            .arg(self.dir.path())
            .output();
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The columns both databases share, `_synced_at` aside, one line per row (`updated_at`
/// as seconds since the epoch: `timestamptz` in shop, UTC `timestamp` in replica).
const COMPARED: &str = "select id, customer_id, status, amount, items, md5(coalesce(note, '')), \
     extract(epoch from updated_at) from public.orders order by id";

/// A drift record as the test reads it back: when it was written, and its JSON.
struct Drift {
    at_ms: i64,
    key: i64,
    value: Value,
}

fn drift_records(brokers: &str, topic: &str) -> Vec<Drift> {
    read_topic(brokers, topic)
        .into_iter()
        .map(|(at_ms, _, value)| {
            let value = value.unwrap();
            Drift {
                at_ms,
                key: value["key"]["id"].as_i64().unwrap(),
                value,
            }
        })
        .collect()
}

/// Every record of `topic`: when it was written, its key and value as JSON.
fn read_topic(brokers: &str, topic: &str) -> Vec<(i64, Option<Value>, Option<Value>)> {
    let json = |t: Option<String>| t.map(|t| serde_json::from_str::<Value>(&t).unwrap());
    let mut out: Vec<_> = support::broker::consume_timed(brokers, topic)
        .into_iter()
        .map(|(at, r)| (at, json(r.key), json(r.value)))
        .collect();
    out.sort_by_key(|r| r.0);
    out
}

fn now_ms() -> i64 {
    driftwatch::io::now_ms() as i64
}

#[test]
fn on_a_real_pipeline_exactly_the_tampered_keys_are_reported_and_repaired() {
    let p = Pipeline::up();
    // Rows the workload never touches, to be tampered with once replicated.
    p.sql(
        "shop",
        "insert into orders select g, g % 7, 'new', (g * 1.25)::numeric(12, 2), g % 5, \
         'kept ' || g, now() from generate_series(1001, 1008) g",
    );

    let job = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_driftwatch"))
            .args(["run", p.fact("SPEC"), "-w", "2"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(p.dir.path().join("driftwatch.log")).unwrap())
            .spawn()
            .unwrap(),
    );

    // The workload: inserts, updates (some of them leaving a TOASTed note unchanged, so
    // Debezium sends its placeholder for it), deletes, on ids 1..=200, for about 30 s.
    let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
    let mut present = BTreeSet::new();
    // Deletes and re-inserts only of rows left alone for a while. Debezium's JDBC sink
    // can apply a delete and a write of the same key in one batch out of order (the row
    // comes back, or stays away), and a correction made before a delete in flight can be
    // applied after it: real drift, which driftwatch reports and repairs (seen while
    // writing this test), but not what this test is about.
    let mut touched: HashMap<i64, Instant> = HashMap::new();
    let settled = |touched: &HashMap<i64, Instant>, id: i64| {
        touched
            .get(&id)
            .is_none_or(|t| t.elapsed() > Duration::from_secs(8))
    };
    let started = Instant::now();
    let mut tampered_at = None;
    let mut crashed = false;
    let mut round = 0u64;
    while started.elapsed() < Duration::from_secs(30) {
        round += 1;
        let mut statements = Vec::new();
        for _ in 0..5 {
            let id: i64 = rng.gen_range(1..=200);
            let delete = rng.gen_bool(0.15);
            if (!present.contains(&id) || delete) && !settled(&touched, id) {
                continue;
            }
            touched.insert(id, Instant::now());
            if !present.contains(&id) {
                // A third of the notes are large enough to be TOASTed.
                let note = if id % 3 == 0 {
                    format!("repeat('toast {id} ', 600)")
                } else {
                    format!("'note {id}'")
                };
                statements.push(format!(
                    "insert into orders values ({id}, {}, 'new', {}.{:02}, {}, {note}, now())",
                    rng.gen_range(1..100),
                    rng.gen_range(0..500),
                    rng.gen_range(0..100),
                    rng.gen_range(1..9),
                ));
                present.insert(id);
            } else if delete {
                statements.push(format!("delete from orders where id = {id}"));
                present.remove(&id);
            } else if rng.gen_bool(0.5) {
                // The note is left as it is: TOASTed notes reach Kafka as a placeholder.
                statements.push(format!(
                    "update orders set status = 'status {round}', updated_at = now() where id = {id}"
                ));
            } else {
                statements.push(format!(
                    "update orders set amount = {}.{:02}, items = items + 1, updated_at = now() \
                     where id = {id}",
                    rng.gen_range(0..500),
                    rng.gen_range(0..100)
                ));
            }
        }
        if !statements.is_empty() {
            p.sql("shop", &statements.join("; "));
        }
        if tampered_at.is_none() && started.elapsed() > Duration::from_secs(8) {
            // Behind the pipeline's back: changed, deleted and stray rows.
            p.sql(
                "replica",
                "update orders set status = 'tampered' where id in (1001, 1002, 1003); \
                 delete from orders where id in (1004, 1005); \
                 insert into orders (id, customer_id, status, amount, items, note, updated_at) \
                 values (9001, 1, 'stray', 1.00, 1, 'x', now()), \
                        (9002, 2, 'stray', 2.00, 1, 'y', now())",
            );
            tampered_at = Some(now_ms());
            eprintln!("pipeline: tampered at {}", now_ms());
        }
        if !crashed && started.elapsed() > Duration::from_secs(15) {
            // Writes pause while Connect is down (a restart takes longer than grace:
            // changes waiting through it would be drift by the contract).
            // Killed once the workload has been applied and captured (change events
            // reach Kafka within a second): what Connect then redelivers, it had
            // delivered (offsets are flushed once a minute, Connect's default).
            p.wait_synced();
            std::thread::sleep(Duration::from_secs(2));
            eprintln!("pipeline: killing Connect at {}", now_ms());
            p.crash_connect();
            eprintln!("pipeline: writes resume at {}", now_ms());
            crashed = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let tampered_at = tampered_at.unwrap();

    // The pipeline settles and the corrections are applied: replica equals shop.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (shop, replica) = (p.sql("shop", COMPARED), p.sql("replica", COMPARED));
        if shop == replica {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replica never equalled shop:\n{}\ndrift: {:?}\njob: {}",
            diff(&shop, &replica),
            drift_records(p.fact("BROKERS"), p.fact("DRIFT_TOPIC"))
                .iter()
                .map(|d| d.value.to_string())
                .collect::<Vec<_>>(),
            std::fs::read_to_string(p.dir.path().join("driftwatch.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    // EXCEPT both ways, within each database's view of the other's rows.
    assert_eq!(
        p.sql("replica", "select count(*) from orders where id >= 9000"),
        "0\n"
    );
    // Every record has arrived (the repairs' resolutions included).
    std::thread::sleep(Duration::from_secs(8));

    let records = drift_records(p.fact("BROKERS"), p.fact("DRIFT_TOPIC"));
    let expected: BTreeMap<i64, (&str, Vec<&str>)> = [
        (1001, ("mismatch", vec!["status"])),
        (1002, ("mismatch", vec!["status"])),
        (1003, ("mismatch", vec!["status"])),
        (1004, ("missing", vec![])),
        (1005, ("missing", vec![])),
        (9001, ("orphan", vec![])),
        (9002, ("orphan", vec![])),
    ]
    .into_iter()
    .collect();
    // Debezium's JDBC sink writes the TOAST placeholder into `replica` when an update
    // left a large note alone (the well-known pitfall): real drift on `note`.
    let clobbered_note =
        |f: &Value| f["field"] == "note" && f["target"] == "__debezium_unavailable_value";
    // While such an episode is open, a later update in flight may show as well.
    let placeholder_among = |d: &Drift| {
        d.value["kind"] == "mismatch"
            && d.value["fields"]
                .as_array()
                .is_some_and(|f| f.iter().any(clobbered_note))
    };
    // Keys whose first drift was the sink's placeholder. Later episodes of theirs may
    // follow from the repair itself: a correction computed before a newer change to
    // `shop` and applied after it (the resurrected row of a delete in flight) is drift
    // too, and is repaired in turn. No other key may drift.
    let mut first_open: BTreeMap<i64, &Drift> = BTreeMap::new();
    for d in records.iter().filter(|d| d.value["status"] == "open") {
        first_open.entry(d.key).or_insert(d);
    }
    let clobbered: BTreeSet<i64> = first_open
        .iter()
        .filter(|(k, d)| !expected.contains_key(k) && placeholder_among(d))
        .map(|(k, _)| *k)
        .collect();
    assert!(!clobbered.is_empty(), "the sink never wrote a placeholder");
    let reported: BTreeSet<i64> = records
        .iter()
        .map(|d| d.key)
        .filter(|k| !clobbered.contains(k))
        .collect();
    for key in &clobbered {
        let last = records.iter().rfind(|d| d.key == *key).unwrap();
        assert_eq!(last.value["status"], "resolved", "{key}: {}", last.value);
    }
    assert_eq!(
        reported,
        expected.keys().copied().collect(),
        "drift on other keys: {:#?}",
        records
            .iter()
            .filter(|d| !expected.contains_key(&d.key))
            .map(|d| (d.at_ms - tampered_at, d.value.to_string()))
            .collect::<Vec<_>>()
    );
    let mut latencies = Vec::new();
    let mut repairs = Vec::new();
    for (key, (kind, fields)) in &expected {
        let mine: Vec<&Drift> = records.iter().filter(|d| d.key == *key).collect();
        let open = mine
            .iter()
            .find(|d| d.value["status"] == "open")
            .unwrap_or_else(|| panic!("{key} never open"));
        assert_eq!(open.value["kind"], *kind, "{}", open.value);
        let names: Vec<&str> = open.value["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        assert_eq!(&names, fields, "{}", open.value);
        let last = mine.last().unwrap();
        assert_eq!(last.value["status"], "resolved", "{key}: {}", last.value);
        latencies.push(open.at_ms - tampered_at - 5_000);
        repairs.push(last.at_ms - open.at_ms);
    }
    // The workload did exercise TOAST: updates that left a large note alone reached
    // driftwatch with Debezium's placeholder for it.
    let placeholders = read_topic(p.fact("BROKERS"), p.fact("SOURCE_TOPIC"))
        .iter()
        .filter(|(_, _, v)| {
            v.as_ref()
                .is_some_and(|v| v["payload"]["after"]["note"] == "__debezium_unavailable_value")
        })
        .count();
    assert!(placeholders > 0, "no TOAST placeholder was captured");
    // And the two captures spell the same instants differently.
    let spelled = |topic: &str| {
        read_topic(p.fact("BROKERS"), topic)
            .into_iter()
            .filter_map(|(_, _, v)| Some(v?["payload"]["after"]["updated_at"].clone()))
            .find(|t| !t.is_null())
            .unwrap()
    };
    assert!(spelled(p.fact("SOURCE_TOPIC")).is_string());
    assert!(spelled(p.fact("TARGET_TOPIC")).is_i64());
    // The corrections were Connect records in the source's own schema (upserts) and
    // tombstones (the strays' deletes, and any row a repair race brought back).
    let corrections = read_topic(p.fact("BROKERS"), p.fact("CORRECTIONS_TOPIC"));
    assert!(corrections.iter().filter(|c| c.2.is_none()).count() >= 2);
    for (_, key, value) in &corrections {
        assert_eq!(key.as_ref().unwrap()["schema"]["type"], "struct");
        if let Some(v) = value {
            assert_eq!(v["schema"]["name"], "shop.public.orders.Value", "{v}");
        }
    }
    latencies.sort();
    repairs.sort();
    eprintln!(
        "pipeline: detection beyond grace {:?} ms (median {} ms); time to repair {:?} ms \
         (median {} ms)",
        latencies,
        latencies[latencies.len() / 2],
        repairs,
        repairs[repairs.len() / 2]
    );
    drop(job);
}

/// The lines of `a` not in `b` and of `b` not in `a` (EXCEPT both ways).
fn diff(a: &str, b: &str) -> String {
    let (a, b): (BTreeSet<&str>, BTreeSet<&str>) = (a.lines().collect(), b.lines().collect());
    format!(
        "shop EXCEPT replica: {:?}\nreplica EXCEPT shop: {:?}",
        a.difference(&b).collect::<Vec<_>>(),
        b.difference(&a).collect::<Vec<_>>()
    )
}
