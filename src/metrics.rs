//! Prometheus metrics: the process's counters as text exposition format over HTTP.
//!
//! `--metrics-addr HOST:PORT` serves `GET /metrics`. It is a plain `std::net` listener on
//! one thread. A scrape is a few hundred bytes once every several seconds, which does
//! not warrant an HTTP stack in the job.

use crate::cdc::SideId;
use crate::dataflow::stats::PartitionGauge;
use crate::dataflow::{DriftKind, Stats};
use anyhow::Context as _;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// Upper bounds (seconds) of the sync-lag histogram's buckets.
const LAG_BUCKETS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// The counters metrics are rendered from: the process's, and each entity's by name.
#[derive(Clone)]
pub struct Sources {
    /// The process's (partitions, Kafka errors, the frontier).
    pub process: Arc<Stats>,
    /// Each entity's (events, drift, sync lag), labelled `entity`.
    pub entities: Vec<(String, Arc<Stats>)>,
    /// Why the job is stopping, if it is (an output that failed).
    pub halt: Arc<crate::job::Halt>,
}

/// Starts serving `stats` on `addr`; returns the bound address (port 0 picks one).
pub fn serve(addr: &str, stats: Sources) -> anyhow::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind(addr)
        .with_context(|| format!("cannot serve metrics on {addr} (--metrics-addr HOST:PORT)"))?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let mut reader = BufReader::new(&conn);
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                // Skip the headers.
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let path = request.split_whitespace().nth(1).unwrap_or("");
                let (status, body) = if path == "/metrics" {
                    ("200 OK", render(&stats))
                } else {
                    ("404 Not Found", "see /metrics\n".to_string())
                };
                let mut conn = &conn;
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        })?;
    Ok(bound)
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The exposition text: per-entity series carry an `entity` label.
pub fn render(sources: &Sources) -> String {
    let mut out = String::new();
    let stats = &*sources.process;
    let entities = &sources.entities;
    header(
        &mut out,
        "driftwatch_events_total",
        "counter",
        "Messages by entity, side and outcome.",
    );
    for (entity, s) in entities {
        let entity = escape(entity);
        for side in SideId::BOTH {
            let c = s.side(side);
            let non_row = |k: crate::cdc::NonRow| &c.non_row[k as usize];
            for (outcome, n) in [
                ("read", &c.read),
                ("applied", &c.applied),
                ("duplicate", &c.duplicate),
                ("stale", &c.stale),
                ("rejected", &c.rejected),
                ("tombstone", &c.skipped),
                ("truncate", &c.truncates),
                ("message", non_row(crate::cdc::NonRow::Message)),
                ("transaction", non_row(crate::cdc::NonRow::Transaction)),
                ("heartbeat", non_row(crate::cdc::NonRow::Heartbeat)),
                ("schema_change", non_row(crate::cdc::NonRow::SchemaChange)),
            ] {
                let _ = writeln!(
                    out,
                    "driftwatch_events_total{{entity=\"{entity}\",side=\"{}\",outcome=\"{outcome}\"}} {}",
                    side.name(),
                    n.load(Relaxed)
                );
            }
        }
    }
    header(
        &mut out,
        "driftwatch_open_drift",
        "gauge",
        "Open (reported, unhealed) drift by entity and kind.",
    );
    for (entity, s) in entities {
        for kind in DriftKind::ALL {
            let _ = writeln!(
                out,
                "driftwatch_open_drift{{entity=\"{}\",kind=\"{}\"}} {}",
                escape(entity),
                kind.name(),
                s.open(kind)
            );
        }
    }
    type Count = fn(&Stats) -> u64;
    let counters: [(&str, &str, Count); 3] = [
        (
            "driftwatch_drift_records_total",
            "Drift records emitted.",
            |s| s.drift_records.load(Relaxed),
        ),
        (
            "driftwatch_corrections_total",
            "Corrections emitted.",
            |s| s.corrections.load(Relaxed),
        ),
        (
            "driftwatch_dead_letters_total",
            "Messages sent to the dead-letter output.",
            |s| {
                SideId::BOTH
                    .iter()
                    .map(|side| s.side(*side).rejected.load(Relaxed))
                    .sum()
            },
        ),
    ];
    for (name, help, value) in counters {
        header(&mut out, name, "counter", help);
        for (entity, s) in entities {
            let _ = writeln!(out, "{name}{{entity=\"{}\"}} {}", escape(entity), value(s));
        }
    }
    header(
        &mut out,
        "driftwatch_unselected_total",
        "counter",
        "Messages of shared input topics that no entity's `select` took (skipped).",
    );
    let _ = writeln!(
        out,
        "driftwatch_unselected_total {}",
        stats.unselected.load(Relaxed)
    );
    header(
        &mut out,
        "driftwatch_kafka_errors_total",
        "counter",
        "Kafka client errors (retried by the client).",
    );
    let _ = writeln!(
        out,
        "driftwatch_kafka_errors_total {}",
        stats.kafka_errors.load(Relaxed)
    );
    header(
        &mut out,
        "driftwatch_healthy",
        "gauge",
        "0 while Kafka reports errors (within the last 15 s) or an output failed, else 1.",
    );
    let now_ms = crate::io::now_ms();
    let last_error = stats.last_kafka_error_ms.load(Relaxed);
    let recent = last_error > 0 && now_ms.saturating_sub(last_error) < 15_000;
    let sink_error = sources.halt.output_error().is_some();
    let _ = writeln!(
        out,
        "driftwatch_healthy {}",
        u8::from(!recent && !sink_error)
    );
    header(
        &mut out,
        "driftwatch_output_error",
        "gauge",
        "1 when an output could not be delivered (the job stops).",
    );
    let _ = writeln!(out, "driftwatch_output_error {}", u8::from(sink_error));
    partitions(&mut out, stats);
    sync_lag(&mut out, entities);
    out
}

/// A per-partition gauge: name, help, and its value.
type Gauge = (&'static str, &'static str, fn(&PartitionGauge) -> f64);

fn partitions(out: &mut String, stats: &Stats) {
    let now_ms = crate::io::now_ms();
    let frontier = stats.frontier_ms.load(Relaxed);
    header(
        out,
        "driftwatch_event_time_lag_seconds",
        "gauge",
        "How far the dataflow's event-time frontier is behind the wall clock.",
    );
    let lag = if frontier == 0 {
        0.0
    } else {
        now_ms.saturating_sub(frontier) as f64 / 1e3
    };
    let _ = writeln!(out, "driftwatch_event_time_lag_seconds {lag}");
    let Ok(map) = stats.partitions.lock() else {
        return;
    };
    let gauges: [Gauge; 2] = [
        (
            "driftwatch_consumer_lag",
            "Messages between the read position and the high watermark, per partition.",
            |g| g.lag as f64,
        ),
        (
            "driftwatch_partition_event_time_seconds",
            "Event-time progress of each input partition (seconds since the epoch).",
            |g| g.progress_ms as f64 / 1e3,
        ),
    ];
    for (name, help, value) in gauges {
        header(out, name, "gauge", help);
        for ((topic, partition), g) in map.iter() {
            let side = g.side.map_or("", SideId::name);
            let _ = writeln!(
                out,
                "{name}{{side=\"{side}\",topic=\"{}\",partition=\"{partition}\"}} {}",
                escape(topic),
                value(g)
            );
        }
    }
}

fn sync_lag(out: &mut String, entities: &[(String, Arc<Stats>)]) {
    header(
        out,
        "driftwatch_sync_lag_seconds",
        "histogram",
        "How long healed differences lasted (event time): the observed sync lag.",
    );
    for (entity, stats) in entities {
        let entity = escape(entity);
        let Ok(h) = stats.sync_lag.lock() else {
            continue;
        };
        let series = "driftwatch_sync_lag_seconds";
        for le in LAG_BUCKETS {
            let n = h.count_between(0, (le * 1e3) as u64);
            let _ = writeln!(
                out,
                "{series}_bucket{{entity=\"{entity}\",le=\"{le}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "{series}_bucket{{entity=\"{entity}\",le=\"+Inf\"}} {}",
            h.len()
        );
        let sum: f64 = h
            .iter_recorded()
            .map(|v| v.value_iterated_to() as f64 * v.count_at_value() as f64)
            .sum::<f64>()
            / 1e3;
        let _ = writeln!(out, "{series}_sum{{entity=\"{entity}\"}} {sum}");
        let _ = writeln!(out, "{series}_count{{entity=\"{entity}\"}} {}", h.len());
    }
}

/// Escapes a label value.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_a_cumulative_histogram() {
        let stats = Stats::default();
        stats.side(SideId::Target).duplicate.fetch_add(3, Relaxed);
        stats.side(SideId::Source).rejected.fetch_add(2, Relaxed);
        stats.add_open(DriftKind::Orphan, 4);
        stats.record_sync_lag(&[40, 40, 3_000, 120_000]);
        stats.partitions.lock().unwrap().insert(
            ("pg.\"orders\"".into(), 1),
            crate::dataflow::stats::PartitionGauge {
                side: Some(SideId::Source),
                lag: 17,
                progress_ms: 1_500,
            },
        );
        let stats = Arc::new(stats);
        let text = render(&Sources {
            process: stats.clone(),
            entities: vec![("orders".into(), stats)],
            halt: Arc::default(),
        });
        for line in [
            r#"driftwatch_events_total{entity="orders",side="target",outcome="duplicate"} 3"#,
            r#"driftwatch_open_drift{entity="orders",kind="orphan"} 4"#,
            r#"driftwatch_dead_letters_total{entity="orders"} 2"#,
            r#"driftwatch_consumer_lag{side="source",topic="pg.\"orders\"",partition="1"} 17"#,
            r#"driftwatch_partition_event_time_seconds{side="source",topic="pg.\"orders\"",partition="1"} 1.5"#,
            r#"driftwatch_sync_lag_seconds_bucket{entity="orders",le="0.05"} 2"#,
            r#"driftwatch_sync_lag_seconds_bucket{entity="orders",le="5"} 3"#,
            r#"driftwatch_sync_lag_seconds_bucket{entity="orders",le="+Inf"} 4"#,
            r#"driftwatch_sync_lag_seconds_count{entity="orders"} 4"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        // Every sample line belongs to a declared metric.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            let base = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                text.contains(&format!("# TYPE {base} "))
                    || text.contains(&format!("# TYPE {name} ")),
                "{l}"
            );
        }
    }
}
