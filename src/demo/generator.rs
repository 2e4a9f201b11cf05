//! Generated orders CDC: a PostgreSQL source and its replica, with replication lag and
//! injected faults, and the ground truth of what the replica ends up getting wrong.

use crate::dataflow::DriftKind;
use base64::Engine as _;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::fmt::Write as _;

mod lag;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// Source change events.
    pub events: u64,
    /// Distinct order ids.
    pub keys: u64,
    /// Random seed.
    pub seed: u64,
    /// Event time of the first change (ms).
    pub start_ms: u64,
    /// Event time between source changes (µs): 1e6 / the rate of changes per second.
    pub step_us: u64,
    /// Median replication lag (ms); lognormal with spread `lag_sigma` at every instant,
    /// drifting over event time (see `lag`).
    pub lag_median_ms: f64,
    /// The lag's log-scale spread (sigma of its logarithm): 1 makes its p99 about 10×
    /// the median.
    pub lag_sigma: f64,
    /// Share of changes to an existing order that delete it (the rest update it; an
    /// order not in the table is inserted).
    pub p_delete: f64,
    /// Probability that the replica drops a change.
    pub p_drop: f64,
    /// Probability that the replica corrupts a change's `status`.
    pub p_corrupt: f64,
    /// Probability, per source change, that the replica gains a row the source never had.
    pub p_extra: f64,
    /// Probability that a replica event is delivered twice.
    pub p_duplicate: f64,
    /// Probability that an old replica event is redelivered.
    pub p_redeliver: f64,
    /// Probability that a replica event is delivered late, after the events of up to
    /// `reorder_ms` later (reordering within a bound).
    pub p_reorder: f64,
    /// The reordering bound (ms of event time).
    pub reorder_ms: u64,
    /// Length of every order's free-text `note` (0: an occasional short note). The
    /// benchmark sets it to make events the size of real ones (about 600 bytes).
    pub note_len: usize,
    /// Wrap source events in Kafka Connect's `schema`/`payload` envelope (Decimal bytes,
    /// MicroTimestamp); otherwise bare events with the same encodings.
    pub wrapped: bool,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            events: 20_000,
            keys: 2_000,
            seed: 7,
            start_ms: 1_772_323_200_000,
            step_us: 2_000,
            lag_median_ms: 40.0,
            lag_sigma: 1.0,
            p_delete: 0.05,
            p_drop: 0.004,
            p_corrupt: 0.002,
            p_extra: 0.001,
            p_duplicate: 0.01,
            p_redeliver: 0.005,
            p_reorder: 0.0,
            reorder_ms: 0,
            wrapped: true,
            note_len: 0,
        }
    }
}

/// Generated streams (one JSON message per entry, in commit order) and the truth.
#[derive(Debug, Default)]
pub struct Generated {
    /// Source change events.
    pub source: Vec<String>,
    /// Replica change events (duplicates and redeliveries included).
    pub target: Vec<String>,
    /// Order ids whose replica row differs from the source's at the end, by kind.
    pub expected: BTreeMap<i64, DriftKind>,
    /// Injected faults by name.
    pub injected: BTreeMap<&'static str, u64>,
    /// For each key in `expected`: the event time (ms) from which its sides differ for
    /// good (the start of the episode a drift record reports as `since_ms`).
    pub since: BTreeMap<i64, u64>,
    /// Every episode of difference, healed or not, replication lag included.
    pub episodes: Vec<Episode>,
}

#[derive(Debug, Clone, PartialEq)]
struct Order {
    customer_id: i64,
    status: &'static str,
    cents: i64,
    items: i64,
    note: Option<String>,
    updated_us: i64,
}

/// The distance between the replica's consecutive log positions (`source.lsn`).
pub const REPLICA_LSN_STEP: u64 = 1_000;

const STATUSES: [&str; 5] = ["pending", "paid", "shipped", "delivered", "cancelled"];

const SCHEMA: &str = r#"{"type":"struct","fields":[{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"},{"type":"int64","optional":false,"field":"customer_id"},{"type":"string","optional":false,"field":"status"},{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"12"},"field":"amount"},{"type":"int32","optional":false,"field":"items"},{"type":"string","optional":true,"field":"note"},{"type":"int64","optional":false,"name":"io.debezium.time.MicroTimestamp","version":1,"field":"updated_at"}],"optional":true,"name":"pg.public.orders.Value","field":"after"},{"type":"struct","fields":[{"type":"string","optional":false,"field":"connector"},{"type":"int64","optional":false,"field":"ts_ms"},{"type":"int64","optional":true,"field":"lsn"}],"optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"},{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"}],"optional":false,"name":"pg.public.orders.Envelope","version":2}"#;

fn source_row(out: &mut String, id: i64, o: &Order) {
    let mut bytes = o.cents.to_be_bytes().to_vec();
    while bytes.len() > 1
        && ((bytes[0] == 0 && bytes[1] & 0x80 == 0) || (bytes[0] == 0xff && bytes[1] & 0x80 != 0))
    {
        bytes.remove(0);
    }
    let amount = base64::engine::general_purpose::STANDARD.encode(bytes);
    let note = o
        .note
        .as_ref()
        .map_or("null".to_string(), |n| format!("{n:?}"));
    let _ = write!(
        out,
        r#"{{"id":{id},"customer_id":{},"status":"{}","amount":"{amount}","items":{},"note":{note},"updated_at":{}}}"#,
        o.customer_id, o.status, o.items, o.updated_us
    );
}

fn target_row(out: &mut String, id: i64, o: &Order, synced_ms: u64) {
    let note = o
        .note
        .as_ref()
        .map_or("null".to_string(), |n| format!("{n:?}"));
    let updated = crate::row::format_timestamp(o.updated_us * 1000);
    let _ = write!(
        out,
        r#"{{"id":{id},"customer_id":{},"status":"{}","amount":{},"items":{},"note":{note},"updated_at":"{updated}","_synced_at":{synced_ms}}}"#,
        o.customer_id,
        o.status,
        crate::row::Decimal {
            mantissa: i128::from(o.cents),
            scale: 2
        },
        o.items
    );
}

#[allow(clippy::too_many_arguments)] // one Debezium envelope, field by field
fn event(
    out: &mut String,
    before_id: Option<i64>,
    after: impl FnOnce(&mut String),
    has_after: bool,
    op: char,
    connector: &str,
    ts_ms: u64,
    lsn: u64,
) {
    out.push_str(r#"{"before":"#);
    match before_id {
        Some(id) => {
            let _ = write!(out, r#"{{"id":{id}}}"#);
        }
        None => out.push_str("null"),
    }
    out.push_str(r#","after":"#);
    if has_after {
        after(out);
    } else {
        out.push_str("null");
    }
    let _ = write!(
        out,
        r#","source":{{"version":"2.7.0.Final","connector":"postgresql","name":"{connector}","ts_ms":{ts_ms},"snapshot":"false","db":"shop","sequence":"[null,\"{lsn}\"]","schema":"public","table":"orders","txId":{},"lsn":{lsn},"xmin":null}},"op":"{op}","ts_ms":{},"transaction":null}}"#,
        lsn / 3,
        ts_ms + 3
    );
}

/// Generates the streams and the ground truth.
pub fn generate(cfg: &GenConfig) -> Generated {
    let mut rng = SmallRng::seed_from_u64(cfg.seed);
    let mut out = Generated::default();
    let mut source: BTreeMap<i64, Order> = BTreeMap::new();
    let mut replica: BTreeMap<i64, Order> = BTreeMap::new();
    let mut clock = lag::ReplicaClock::new(lag::Lag::new(
        cfg.seed ^ 0x006c_6167, // "lag"
        cfg.start_ms,
        cfg.lag_median_ms,
        cfg.lag_sigma,
    ));
    // The replica's log positions are REPLICA_LSN_STEP apart, so a write the load test
    // makes on the replica (an applied correction) can take a position between them.
    let mut replica_lsn = 5_000_000u64;
    let mut sent: Vec<Delivery> = Vec::new();
    let mut deliveries: Vec<Delivery> = Vec::new();
    let mut extra_id = 1_000_000i64;
    let count =
        |out: &mut Generated, name: &'static str| *out.injected.entry(name).or_insert(0) += 1;
    // Every change that takes effect, with its event time, to find when each lasting
    // difference began.
    let mut applied: Vec<Change> = Vec::new();
    for i in 0..cfg.events {
        let t = cfg.start_ms + i * cfg.step_us / 1_000;
        let lsn = 1_000_000 + i * 8;
        let id = rng.gen_range(1..=cfg.keys as i64);
        let existing = source.get(&id).cloned();
        let (op, row) = match existing {
            None => ('c', Some(new_order(&mut rng, t, cfg.note_len))),
            Some(_) if rng.gen_bool(cfg.p_delete) => ('d', None),
            Some(mut o) => {
                o.status = STATUSES[rng.gen_range(0..STATUSES.len())];
                o.cents += rng.gen_range(-500..=500);
                o.items = rng.gen_range(1..10);
                o.note = note(&mut rng, cfg.note_len);
                o.updated_us = (t * 1000) as i64 + rng.gen_range(0..1000);
                ('u', Some(o))
            }
        };
        let mut line = String::with_capacity(1024);
        if cfg.wrapped {
            let _ = write!(line, r#"{{"schema":{SCHEMA},"payload":"#);
        }
        event(
            &mut line,
            (op == 'd').then_some(id),
            |s| source_row(s, id, row.as_ref().expect("after")),
            row.is_some(),
            op,
            "pg",
            t,
            lsn,
        );
        if cfg.wrapped {
            line.push('}');
        }
        out.source.push(line);
        match &row {
            Some(r) => source.insert(id, r.clone()),
            None => source.remove(&id),
        };
        applied.push((t, id, Side::Source, row.clone()));
        // The replica applies changes serially after a lognormal lag (see `lag`).
        let replica_time = clock.apply(t);
        if rng.gen_bool(cfg.p_drop) {
            count(&mut out, "dropped");
        } else {
            let mut applied = row.clone();
            if let Some(r) = applied.as_mut() {
                if rng.gen_bool(cfg.p_corrupt) {
                    r.status = "CORRUPTED";
                    count(&mut out, "corrupted");
                }
            }
            replica_lsn += REPLICA_LSN_STEP;
            let mut line = String::with_capacity(600);
            event(
                &mut line,
                (op == 'd').then_some(id),
                |s| target_row(s, id, applied.as_ref().expect("after"), replica_time),
                applied.is_some(),
                op,
                "replica",
                replica_time,
                replica_lsn,
            );
            let d = Delivery {
                line,
                ts: replica_time,
                id,
                lsn: replica_lsn,
                row: applied.clone(),
            };
            match applied {
                Some(r) => replica.insert(id, r),
                None => replica.remove(&id),
            };
            emit_replica(&mut out, &mut rng, &mut sent, &mut deliveries, d, cfg);
        }
        if rng.gen_bool(cfg.p_extra) {
            extra_id += 1;
            let o = new_order(&mut rng, t, cfg.note_len);
            replica_lsn += REPLICA_LSN_STEP;
            let mut line = String::with_capacity(600);
            event(
                &mut line,
                None,
                |s| target_row(s, extra_id, &o, replica_time),
                true,
                'c',
                "replica",
                replica_time,
                replica_lsn,
            );
            let d = Delivery {
                line,
                ts: replica_time,
                id: extra_id,
                lsn: replica_lsn,
                row: Some(o.clone()),
            };
            replica.insert(extra_id, o);
            count(&mut out, "extra");
            emit_replica(&mut out, &mut rng, &mut sent, &mut deliveries, d, cfg);
        }
    }
    for (id, o) in &source {
        match replica.get(id) {
            None => {
                out.expected.insert(*id, DriftKind::Missing);
            }
            Some(r) if r != o => {
                out.expected.insert(*id, DriftKind::Mismatch);
            }
            Some(_) => {}
        }
    }
    for id in replica.keys().filter(|id| !source.contains_key(id)) {
        out.expected.insert(*id, DriftKind::Orphan);
    }
    let deliveries = reorder(&mut out, &mut rng, deliveries, cfg);
    applied.extend(replica_changes(&deliveries));
    out.target = deliveries.into_iter().map(|d| d.line).collect();
    out.episodes = episodes(applied);
    out.since = out
        .episodes
        .iter()
        .filter(|e| e.end.is_none())
        .map(|e| (e.id, e.since))
        .collect();
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Source,
    Replica,
}

/// (event time, order id, side, row after the change).
type Change = (u64, i64, Side, Option<Order>);

/// A maximal interval of event time during which a key's sides differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Episode {
    /// The order id.
    pub id: i64,
    /// When the sides began to differ (event time, ms).
    pub since: u64,
    /// When they agreed again; `None` if they never did.
    pub end: Option<u64>,
}

impl Episode {
    /// Whether a detector with this grace period must report it: it lasted beyond
    /// `since + grace` (at that time it was still open).
    pub fn outlasts(&self, grace_ms: u64) -> bool {
        self.end.is_none_or(|e| e > self.since + grace_ms)
    }
}

/// Replays both sides in event-time order, as the engine sees them (all changes of one
/// time together), and returns every episode of difference, in order of its start.
fn episodes(mut changes: Vec<Change>) -> Vec<Episode> {
    changes.sort_by_key(|(t, _, _, _)| *t);
    let mut rows: BTreeMap<i64, [Option<Order>; 2]> = BTreeMap::new();
    let mut open: BTreeMap<i64, u64> = BTreeMap::new();
    let mut out = Vec::new();
    for group in changes.chunk_by(|a, b| a.0 == b.0) {
        let time = group[0].0;
        for (_, id, side, row) in group {
            rows.entry(*id).or_default()[usize::from(*side == Side::Replica)] = row.clone();
        }
        let mut ids: Vec<i64> = group.iter().map(|c| c.1).collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            let [s, r] = &rows[&id];
            match (open.get(&id).copied(), s != r) {
                (None, true) => {
                    open.insert(id, time);
                }
                (Some(since), false) => {
                    open.remove(&id);
                    out.push(Episode {
                        id,
                        since,
                        end: Some(time),
                    });
                }
                _ => {}
            }
        }
    }
    out.extend(open.into_iter().map(|(id, since)| Episode {
        id,
        since,
        end: None,
    }));
    out.sort_by_key(|e| (e.since, e.id));
    out
}

/// One replica message as delivered: its text, event time, key, version and row.
#[derive(Debug, Clone)]
struct Delivery {
    line: String,
    ts: u64,
    id: i64,
    lsn: u64,
    row: Option<Order>,
}

fn emit_replica(
    out: &mut Generated,
    rng: &mut SmallRng,
    sent: &mut Vec<Delivery>,
    deliveries: &mut Vec<Delivery>,
    d: Delivery,
    cfg: &GenConfig,
) {
    if rng.gen_bool(cfg.p_duplicate) {
        deliveries.push(d.clone());
        *out.injected.entry("duplicates").or_insert(0) += 1;
    }
    if sent.len() > 50 && rng.gen_bool(cfg.p_redeliver) {
        deliveries.push(sent[sent.len() - 50].clone());
        *out.injected.entry("redeliveries").or_insert(0) += 1;
    }
    deliveries.push(d.clone());
    sent.push(d);
    if sent.len() > 100 {
        sent.drain(..50);
    }
}

/// Delays a `p_reorder` share of the replica's messages past the messages of up to
/// `reorder_ms` later. A message is due when the newest event time before it is (a feed
/// releases messages in order once their own time has come), so a delayed one is due
/// with the last message it now follows.
fn reorder(
    out: &mut Generated,
    rng: &mut SmallRng,
    deliveries: Vec<Delivery>,
    cfg: &GenConfig,
) -> Vec<Delivery> {
    if cfg.p_reorder <= 0.0 || cfg.reorder_ms == 0 {
        return deliveries;
    }
    let mut due = 0u64;
    let mut keyed: Vec<(u64, Delivery)> = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        due = due.max(d.ts);
        let delay = if rng.gen_bool(cfg.p_reorder) {
            *out.injected.entry("reordered").or_insert(0) += 1;
            rng.gen_range(1..=cfg.reorder_ms)
        } else {
            0
        };
        keyed.push((due + delay, d));
    }
    // A stable order by the new due time: the delayed messages move back, the others
    // keep their order.
    keyed.sort_by_key(|(due, _)| *due);
    keyed.into_iter().map(|(_, d)| d).collect()
}

/// The replica's changes as the engine applies them, from its messages in delivery
/// order: a message takes the newest event time read before it if it is late (its
/// partition's progress), and applies only if its version is above the key's (else it is
/// a duplicate or a stale redelivery).
fn replica_changes(deliveries: &[Delivery]) -> Vec<Change> {
    let mut progress = 0u64;
    let mut versions: std::collections::HashMap<i64, u64> = std::collections::HashMap::new();
    let mut out = Vec::new();
    for d in deliveries {
        progress = progress.max(d.ts);
        let version = versions.entry(d.id).or_insert(0);
        if d.lsn > *version {
            *version = d.lsn;
            out.push((progress, d.id, Side::Replica, d.row.clone()));
        }
    }
    out
}

/// A note: short and occasional, or always `len` characters of text.
fn note(rng: &mut SmallRng, len: usize) -> Option<String> {
    const WORDS: [&str; 8] = [
        "leave", "at", "the", "door", "gift", "wrap", "please", "call",
    ];
    if len == 0 {
        return rng
            .gen_bool(0.3)
            .then(|| format!("note {}", rng.gen_range(0..1000)));
    }
    let mut text = format!("note {}", rng.gen_range(0..1000));
    while text.len() < len {
        text.push(' ');
        text.push_str(WORDS[rng.gen_range(0..WORDS.len())]);
    }
    text.truncate(len);
    Some(text)
}

fn new_order(rng: &mut SmallRng, t: u64, note_len: usize) -> Order {
    Order {
        customer_id: rng.gen_range(1..50_000),
        status: "pending",
        cents: rng.gen_range(100..100_000),
        items: rng.gen_range(1..10),
        note: (note_len > 0).then(|| note(rng, note_len)).flatten(),
        updated_us: (t * 1000) as i64 + rng.gen_range(0..1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deletes(p_delete: f64) -> usize {
        let g = generate(&GenConfig {
            events: 4_000,
            keys: 200,
            p_delete,
            wrapped: false,
            ..GenConfig::default()
        });
        g.source
            .iter()
            .filter(|l| l.contains(r#""op":"d""#))
            .count()
    }

    #[test]
    fn the_delete_share_is_configurable() {
        assert_eq!(deletes(0.0), 0);
        // Of about 3,800 changes to existing orders, a third delete.
        let d = deletes(0.33);
        assert!((900..1_500).contains(&d), "{d}");
    }

    #[test]
    fn reordering_moves_replica_messages_back_within_the_bound() {
        let cfg = GenConfig {
            events: 5_000,
            p_reorder: 0.1,
            reorder_ms: 50,
            p_duplicate: 0.0,
            p_redeliver: 0.0,
            wrapped: false,
            ..GenConfig::default()
        };
        let g = generate(&cfg);
        assert!(g.injected["reordered"] > 300);
        let times: Vec<u64> = g
            .target
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["source"]["ts_ms"].as_u64().unwrap()
            })
            .collect();
        // Out of order, but never by more than the bound.
        let mut newest = 0;
        let mut late = 0;
        for t in times {
            if t < newest {
                late += 1;
                assert!(newest - t <= cfg.reorder_ms, "{t} behind {newest}");
            }
            newest = newest.max(t);
        }
        // Many delayed messages only pass others of their own time (the serial replica
        // gives runs of equal times), so fewer are visibly late than were delayed.
        assert!(late > 50, "{late}");
    }
}
