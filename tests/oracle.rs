//! Oracle: on random CDC streams, the drift and corrections at every event time equal a
//! from-scratch computation, with 1, 2 and 4 workers.

use driftwatch::run::{run_files, Cluster};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const GRACE: u64 = 20;
const RES: u64 = 5;

#[derive(Clone, Debug, PartialEq)]
struct Row {
    a: i64,
    b: String,
}

/// One generated message: `None` row = delete; `version` None = unversioned upsert delete.
#[derive(Clone, Debug)]
struct Msg {
    key: i64,
    version: Option<u64>,
    ts: u64,
    row: Option<Row>,
    tombstone: bool,
    /// A truncate (`op` `t`): every row older than its version is deleted.
    truncate: bool,
}

fn gen_side(rng: &mut SmallRng, n: usize, keys: i64, debezium: bool) -> Vec<Msg> {
    let mut out: Vec<Msg> = Vec::new();
    let mut ts = 1_000u64;
    let mut version = 0u64;
    let mut held: Option<Msg> = None;
    for _ in 0..n {
        ts += rng.gen_range(0..8);
        let roll = rng.gen_range(0..100);
        if roll < 10 && !out.is_empty() {
            // duplicate or stale redelivery of an earlier message, possibly late
            let old = out[rng.gen_range(out.len().saturating_sub(6)..out.len())].clone();
            out.push(old);
            continue;
        }
        if debezium && roll < 13 {
            out.push(Msg {
                key: 0,
                version: None,
                ts,
                row: None,
                tombstone: true,
                truncate: false,
            });
            continue;
        }
        if debezium && roll < 15 {
            version += 1;
            out.push(Msg {
                key: 0,
                version: Some(version),
                ts,
                row: None,
                tombstone: false,
                truncate: true,
            });
            continue;
        }
        version += rng.gen_range(1..3);
        let key = rng.gen_range(1..=keys);
        let late = if rng.gen_bool(0.1) {
            rng.gen_range(0..15)
        } else {
            0
        };
        let row = (!rng.gen_bool(0.2)).then(|| Row {
            a: rng.gen_range(0..3),
            b: ["x", "y"][rng.gen_range(0..2)].to_string(),
        });
        // An upsert delete (`value: null`) carries no version on the wire.
        let version = if row.is_none() && !debezium {
            None
        } else {
            Some(version)
        };
        let msg = Msg {
            key,
            version,
            ts: ts.saturating_sub(late),
            row,
            tombstone: false,
            truncate: false,
        };
        // Now and then a change is delivered a few messages late (after newer ones,
        // perhaps after a truncate that succeeded it): its version decides, not its place.
        if debezium && held.is_none() && rng.gen_bool(0.05) {
            held = Some(msg);
        } else {
            out.push(msg);
        }
        if held.is_some() && rng.gen_bool(0.3) {
            out.extend(held.take());
        }
    }
    out.extend(held);
    out
}

/// How a Debezium side spells its versions: PostgreSQL's `lsn` (a number), MySQL's
/// `file`, `pos` and `row` (the file rotates and `pos` restarts), or Oracle's `scn` (a
/// digit string beyond 64 bits, whose text order is not its numeric order).
#[derive(Clone, Copy, Debug)]
enum Style {
    Lsn,
    MySql,
    Scn,
}

impl Style {
    fn of(seed: u64) -> Style {
        [Style::Lsn, Style::MySql, Style::Scn][(seed / 2 % 3) as usize]
    }
    fn path(self) -> &'static str {
        match self {
            Style::Lsn => "\"source.lsn\"",
            Style::MySql => "[\"source.file\", \"source.pos\", \"source.row\"]",
            Style::Scn => "\"source.scn\"",
        }
    }
    /// The `source` block's position fields for version `v` (order-preserving).
    fn source(self, v: u64, ts: u64) -> Value {
        match self {
            Style::Lsn => json!({"lsn": v, "ts_ms": ts}),
            Style::MySql => json!({
                "file": format!("mysql-bin.{:06}", v / 20 + 1),
                "pos": (v % 20) / 4 * 150 + 4,
                "row": v % 4,
                "ts_ms": ts,
            }),
            Style::Scn => json!({"scn": scn(v), "ts_ms": ts}),
        }
    }
    /// Version `v` as drift records show it.
    fn render(self, v: u64) -> Value {
        match self {
            Style::Lsn => json!(v),
            Style::MySql => {
                let s = self.source(v, 0);
                json!([s["file"], s["pos"], s["row"]])
            }
            // Records show a number while it fits 64 bits, else the digit string.
            Style::Scn => scn(v).parse::<u64>().map_or(json!(scn(v)), |n| json!(n)),
        }
    }
}

fn scn(v: u64) -> String {
    (u128::from(v) * 10u128.pow(19) + 12_345).to_string()
}

fn line(m: &Msg, debezium: bool, style: Style, ign: i64) -> String {
    let row =
        |r: &Row| json!({"k": m.key, "a": r.a, "b": r.b, "ign": ign, "_v": m.version, "ts": m.ts});
    if debezium {
        if m.tombstone {
            return "null".into();
        }
        let source = style.source(m.version.expect("debezium changes are versioned"), m.ts);
        if m.truncate {
            return json!({"op": "t", "source": source}).to_string();
        }
        let (op, before, after) = match &m.row {
            Some(r) => ("u", Value::Null, row(r)),
            None => ("d", json!({"k": m.key}), Value::Null),
        };
        json!({"before": before, "after": after, "op": op, "source": source}).to_string()
    } else {
        match &m.row {
            Some(r) => json!({"key": {"k": m.key}, "value": row(r)}).to_string(),
            None => json!({"key": {"k": m.key}, "value": null, "timestamp": m.ts}).to_string(),
        }
    }
}

fn spec(src_debezium: bool, tgt_debezium: bool, style: Style) -> String {
    let side = |name: &str, deb: bool| {
        if deb {
            format!("[{name}]\nformat = \"debezium\"\nversion = {}\nevent_time = \"source.ts_ms\"\ninput = {{ files = [\"unused\"] }}\n", style.path())
        } else {
            format!("[{name}]\nformat = \"upsert\"\nversion = \"_v\"\nevent_time = \"ts\"\ninput = {{ files = [\"unused\"] }}\n")
        }
    };
    format!(
        "entity = \"t\"\nkey = [\"k\"]\ngrace = \"{GRACE}ms\"\ntime_resolution = \"{RES}ms\"\nmax_read_ahead = \"10ms\"\n{}{}[compare]\nignore = [\"ign\", \"_v\", \"ts\"]\n",
        side("source", src_debezium),
        side("target", tgt_debezium)
    )
}

/// The expected state: (kind, differing fields with values, source version, target version).
type State = (
    String,
    Vec<(String, Value, Value)>,
    Option<u64>,
    Option<u64>,
);

fn state(src: Option<&(u64, Row)>, tgt: Option<&(u64, Row)>) -> Option<State> {
    match (src, tgt) {
        (None, None) => None,
        (Some(s), None) => Some(("missing".into(), vec![], Some(s.0), None)),
        (None, Some(t)) => Some(("orphan".into(), vec![], None, Some(t.0))),
        (Some(s), Some(t)) => {
            let mut f = vec![];
            if s.1.a != t.1.a {
                f.push(("a".to_string(), json!(s.1.a), json!(t.1.a)));
            }
            if s.1.b != t.1.b {
                f.push(("b".to_string(), json!(s.1.b), json!(t.1.b)));
            }
            (!f.is_empty()).then(|| ("mismatch".into(), f, Some(s.0), Some(t.0)))
        }
    }
}

/// Effective times: rounded down to RES, never below the stream's progress.
fn stamped(msgs: &[Msg]) -> Vec<(u64, &Msg)> {
    let mut progress = 0;
    msgs.iter()
        .map(|m| {
            if !m.tombstone {
                progress = progress.max(m.ts - m.ts % RES);
            }
            (progress, m)
        })
        .collect()
}

/// The side's rows as of `t`: a fold of the version gate over the prefix, from scratch.
fn as_of(msgs: &[(u64, &Msg)], t: u64) -> BTreeMap<i64, (u64, Row)> {
    let mut state: BTreeMap<i64, (u64, Option<(u64, Row)>)> = BTreeMap::new();
    let mut floor = 0;
    for (_, m) in msgs.iter().filter(|(time, m)| *time <= t && !m.tombstone) {
        if m.truncate {
            let v = m.version.unwrap();
            floor = floor.max(v);
            for (version, row) in state.values_mut() {
                if *version < v {
                    *version = v;
                    *row = None;
                }
            }
            continue;
        }
        let cur = state.get(&m.key).map(|(v, _)| *v);
        let version = match (m.version, cur) {
            (Some(v), None) if v <= floor => continue,
            (Some(v), Some(c)) if v <= c => continue,
            (Some(v), _) => v,
            (None, Some(c)) => {
                if state[&m.key].1.is_none() {
                    continue;
                }
                c
            }
            (None, None) => 0,
        };
        state.insert(m.key, (version, m.row.clone().map(|r| (version, r))));
    }
    state
        .into_iter()
        .filter_map(|(k, (_, r))| r.map(|r| (k, r)))
        .collect()
}

/// Expected drift records and corrections as comparable JSON values, by time.
/// `styles`: how each side's versions are spelled (`None`: an upsert side's number).
fn oracle(src: &[Msg], tgt: &[Msg], styles: [Option<Style>; 2]) -> (Vec<Value>, Vec<Value>) {
    let shown = |side: usize, v: Option<u64>| match (v, styles[side]) {
        (Some(v), Some(style)) => style.render(v),
        (v, _) => json!(v),
    };
    let (s, t) = (stamped(src), stamped(tgt));
    let times: BTreeSet<u64> = s.iter().chain(&t).map(|(t, _)| *t).collect();
    let mut states: Vec<(u64, BTreeMap<i64, State>)> = Vec::new();
    for &time in &times {
        let (a, b) = (as_of(&s, time), as_of(&t, time));
        let keys: BTreeSet<i64> = a.keys().chain(b.keys()).copied().collect();
        states.push((
            time,
            keys.into_iter()
                .filter_map(|k| state(a.get(&k), b.get(&k)).map(|st| (k, st)))
                .collect(),
        ));
    }
    let at = |time: u64| -> &BTreeMap<i64, State> {
        &states
            .iter()
            .rev()
            .find(|(t, _)| *t <= time)
            .expect("a time")
            .1
    };
    let all_keys: BTreeSet<i64> = states.iter().flat_map(|(_, m)| m.keys().copied()).collect();
    let (mut records, mut fixes) = (vec![], vec![]);
    let src_rows = |time: u64| as_of(&s, time);
    for key in all_keys {
        let mut since: Option<u64> = None;
        let mut reported: Option<State> = None;
        let mut fixed: Option<Option<(i64, String, u64)>> = None;
        let mut events: Vec<u64> = times.iter().copied().collect();
        let mut i = 0;
        while i < events.len() {
            let time = events[i];
            i += 1;
            let now = at(time).get(&key).cloned();
            match (since, now) {
                (None, None) => {}
                (None, Some(_)) => {
                    since = Some(time);
                    events.push(time + GRACE);
                    events.sort();
                    events.dedup();
                }
                (Some(since_t), now) => {
                    let open_now =
                        |st: &State,
                         time: u64,
                         records: &mut Vec<Value>,
                         fixes: &mut Vec<Value>,
                         fixed: &mut Option<Option<(i64, String, u64)>>| {
                            let fix = if st.0 == "orphan" {
                                None
                            } else {
                                src_rows(time)
                                    .get(&key)
                                    .map(|(v, r)| (r.a, r.b.clone(), *v))
                            };
                            if fixed.as_ref() != Some(&fix) {
                                fixes
                                    .push(json!({"t": time, "key": key, "kind": st.0, "row": fix}));
                                *fixed = Some(fix);
                            }
                            records.push(json!({"t": time, "key": key, "status": "open", "kind": st.0, "fields": st.1, "sv": shown(0, st.2), "tv": shown(1, st.3), "since": since_t}));
                        };
                    match now {
                        None => {
                            if let Some(last) = reported.take() {
                                records.push(json!({"t": time, "key": key, "status": "resolved", "kind": last.0, "fields": last.1, "sv": shown(0, last.2), "tv": shown(1, last.3), "since": since_t}));
                            }
                            since = None;
                            fixed = None;
                        }
                        Some(st) => {
                            if reported.is_some() {
                                if reported.as_ref() != Some(&st) {
                                    open_now(&st, time, &mut records, &mut fixes, &mut fixed);
                                    reported = Some(st);
                                }
                            } else if time >= since_t + GRACE {
                                open_now(&st, time, &mut records, &mut fixes, &mut fixed);
                                reported = Some(st);
                            }
                        }
                    }
                }
            }
        }
    }
    (records, fixes)
}

fn actual(dir: &Path) -> (Vec<Value>, Vec<Value>) {
    let read = |name: &str| -> Vec<Value> {
        std::fs::read_to_string(dir.join(name))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let records = read("drift.jsonl")
        .into_iter()
        .map(|r| {
            let fields: Vec<(String, Value, Value)> = r["fields"].as_array().unwrap().iter().map(|f| (f["field"].as_str().unwrap().to_string(), f["source"].clone(), f["target"].clone())).collect();
            json!({"t": r["reported_ms"], "key": r["key"]["k"], "status": r["status"], "kind": r["kind"], "fields": fields, "sv": r["source"]["version"], "tv": r["target"]["version"], "since": r["since_ms"]})
        })
        .collect();
    let fixes = read("corrections.jsonl")
        .into_iter()
        .map(|c| {
            let row = (!c["value"].is_null())
                .then(|| json!([c["value"]["a"], c["value"]["b"], c["value"]["_v"]]));
            json!({"key": c["key"]["k"], "kind": c["headers"]["driftwatch.kind"], "row": row})
        })
        .collect();
    (records, fixes)
}

fn sorted(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by_key(|x| (x["t"].as_u64(), x["key"].to_string(), x.to_string()));
    v
}

#[test]
fn drift_and_corrections_equal_a_from_scratch_computation_at_every_time() {
    for seed in 0..24u64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let (sd, td) = (seed % 2 == 0, seed % 3 == 0 || seed % 4 == 1);
        let keys = rng.gen_range(2..12);
        let (ns, nt) = (rng.gen_range(20..160), rng.gen_range(20..160));
        let src = gen_side(&mut rng, ns, keys, sd);
        let tgt = gen_side(&mut rng, nt, keys, td);
        let dir = tempfile::tempdir().unwrap();
        let style = Style::of(seed);
        let write = |name: &str, msgs: &[Msg], deb: bool| {
            let path = dir.path().join(name);
            let text: String = msgs
                .iter()
                .enumerate()
                .map(|(i, m)| line(m, deb, style, i as i64) + "\n")
                .collect();
            std::fs::write(&path, text).unwrap();
            path
        };
        let (sp, tp) = (
            write("source.jsonl", &src, sd),
            write("target.jsonl", &tgt, td),
        );
        let spec = driftwatch::spec::load_str(&spec(sd, td, style)).expect("valid spec");
        let styles = [sd.then_some(style), td.then_some(style)];
        let (expected, expected_fixes) = oracle(&src, &tgt, styles);
        let mut outputs = Vec::new();
        for workers in [1, 2, 4] {
            let out = dir.path().join(format!("out{workers}"));
            let report = run_files(
                &spec,
                &Cluster::local(workers),
                vec![sp.clone()],
                vec![tp.clone()],
                &out,
            )
            .unwrap();
            assert_eq!(
                report
                    .stats
                    .side(driftwatch::cdc::SideId::Source)
                    .rejected
                    .load(std::sync::atomic::Ordering::Relaxed),
                0
            );
            let (records, fixes) = actual(&out);
            let (got, want) = (sorted(records), sorted(expected.clone()));
            let extra: Vec<&Value> = got.iter().filter(|r| !want.contains(r)).collect();
            let missing: Vec<&Value> = want.iter().filter(|r| !got.contains(r)).collect();
            assert!(got == want, "seed {seed}, {workers} workers: drift records differ: unexpected {extra:?}, missing {missing:?}");
            // Corrections carry no time: compare them as a multiset (each one is emitted
            // with its open record, whose time the drift check covers).
            let canon = |v: &Vec<Value>| {
                let mut v: Vec<String> = v
                    .iter()
                    .map(|c| {
                        json!({"key": c["key"], "kind": c["kind"], "row": c["row"]}).to_string()
                    })
                    .collect();
                v.sort();
                v
            };
            assert_eq!(
                canon(&fixes),
                canon(&expected_fixes),
                "seed {seed}, {workers} workers: corrections"
            );
            outputs.push(
                ["drift.jsonl", "corrections.jsonl", "dlq.jsonl"]
                    .map(|f| std::fs::read(out.join(f)).unwrap()),
            );
        }
        assert!(
            outputs.windows(2).all(|w| w[0] == w[1]),
            "seed {seed}: outputs differ between worker counts"
        );
        assert!(
            !expected.is_empty() || seed > 0,
            "the generator must produce drift"
        );
    }
}
