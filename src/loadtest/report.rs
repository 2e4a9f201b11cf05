//! The report of a run: scored against the truth into JSON, and its human summary.

use super::config::Profile;
use super::{repair, Measured, Outcome, Prepared};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// The value at quantile `q`, 0 for an empty histogram.
pub fn quantile(h: &Histogram<u64>, q: f64) -> u64 {
    if h.is_empty() {
        0
    } else {
        h.value_at_quantile(q)
    }
}

/// Adds what the run's open drift came to: how much was left open at the end, and with
/// the loop closed (`applied` corrections), the loop's figures.
pub fn convergence_facts(
    extra: &mut serde_json::Map<String, Value>,
    convergence: &std::sync::Mutex<repair::Convergence>,
    applied: Option<u64>,
    prep: &Prepared,
) -> anyhow::Result<()> {
    let c = convergence
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    extra.insert("open_drift_at_end".into(), json!(c.open()));
    if let Some(applied) = applied {
        extra.insert("close_loop".into(), loop_report(&c, applied, prep));
    }
    Ok(())
}

/// The closed loop's figures: corrections applied, how long each reported difference
/// stayed open, and whether (and how soon after the load's last message) none was left.
fn loop_report(c: &repair::Convergence, applied: u64, prep: &Prepared) -> Value {
    let h = &c.repair_ms;
    let q = |q: f64| quantile(h, q);
    json!({
        "corrections_applied": applied,
        "repaired": h.len(),
        "time_to_repair_ms": {"p50": q(0.5), "p99": q(0.99), "max": h.max()},
        "open_at_end": c.open(),
        "converged": c.open() == 0,
        "converged_after_last_message_ms": (c.open() == 0)
            .then(|| c.last_zero_ms.map(|t| t.saturating_sub(prep.last_ms))),
    })
}

/// Scores what a run measured into its report.
pub fn score(prep: &Prepared, p: &Profile, workers: usize, m: Measured) -> anyhow::Result<Outcome> {
    let det = m
        .scorer
        .detections
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    let latency = m
        .scorer
        .latency
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    let tail = m
        .scorer
        .tail_latency
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    let truth = m.scorer.truth();
    let missed: Vec<Value> = truth
        .iter()
        .filter(|e| !det.found.contains_key(e))
        .map(|(id, since)| json!({"id": id, "since_ms": since}))
        .collect();
    let false_drift: Vec<Value> = det
        .unexpected
        .iter()
        .map(|(id, kind, since)| json!({"id": id, "kind": kind.name(), "since_ms": since}))
        .collect();
    let found = det.found.len();
    let q = quantile;
    let (rss, rss_before) = m.rss;
    let lateness = &m.lateness;
    let mut report = json!({
        "profile": p,
        "workers": workers,
        "messages": prep.messages(),
        "read": m.read,
        "elapsed_s": m.elapsed,
        "rate_target": p.rate,
        "throughput_per_s": m.throughput,
        "feed_lateness_ms": {"p50": q(lateness, 0.5), "p99": q(lateness, 0.99), "max": lateness.max()},
        "detection_latency_ms_beyond_grace": {
            "count": latency.len(), "p50": q(&latency, 0.5), "p99": q(&latency, 0.99),
            "p999": q(&latency, 0.999), "max": latency.max()
        },
        "detection_latency_ms_beyond_grace_after_input_end": {
            "count": tail.len(), "p50": q(&tail, 0.5), "p99": q(&tail, 0.99), "max": tail.max()
        },
        "truth": truth.len(),
        "found": found,
        "missed": missed,
        "false": false_drift,
        "precision": if found + det.unexpected.len() == 0 { 1.0 } else { found as f64 / (found + det.unexpected.len()) as f64 },
        "recall": if truth.is_empty() { 1.0 } else { found as f64 / truth.len() as f64 },
        "injected": prep.injected,
        "peak_rss_bytes": rss,
        "rss_before_run_bytes": rss_before,
        "keys_tracked": prep.keys,
        "rss_bytes_per_key": rss.saturating_sub(rss_before) as f64 / prep.keys.max(1) as f64,
    });
    if let Some(r) = report.as_object_mut() {
        if m.extra.contains_key("close_loop") {
            // Corrections change the replica, so after the first report of a key its
            // episodes are no longer the open-loop truth's: only first detections
            // (`found`) are scored against it.
            for k in ["missed", "false", "precision", "recall"] {
                r.insert(k.into(), Value::Null);
            }
        }
        r.extend(m.extra);
    }
    Ok(Outcome {
        report,
        throughput: m.throughput,
        latency,
        tail_latency: tail,
    })
}

/// The human summary.
pub fn summary(r: &Value) -> String {
    let l = &r["detection_latency_ms_beyond_grace"];
    let t = &r["detection_latency_ms_beyond_grace_after_input_end"];
    format!(
        "{}: {} messages in {:.1}s (target {} source changes/s); feed lateness p99 {} ms{}\n\
         detection latency beyond grace: p50 {} ms, p99 {} ms, p99.9 {} ms, max {} ms ({} detections)\n\
         after the input ended: p50 {} ms, max {} ms ({} detections)\n\
         truth {}: found {}, {}\n\
         peak RSS {:.1} MiB; the detector added {:.0} bytes per tracked key",
        r["mode"].as_str().unwrap_or("?"),
        r["messages"],
        r["elapsed_s"].as_f64().unwrap_or(0.0),
        r["rate_target"],
        r["feed_lateness_ms"]["p99"],
        match r.get("broker_ack_lateness_ms") {
            Some(a) => format!(
                ", acknowledged by the broker p99 {} ms, max {} ms",
                a["p99"], a["max"]
            ),
            None => String::new(),
        },
        l["p50"],
        l["p99"],
        l["p999"],
        l["max"],
        l["count"],
        t["p50"],
        t["max"],
        t["count"],
        r["truth"],
        r["found"],
        match (r["missed"].as_array(), r["false"].as_array()) {
            (Some(missed), Some(false_)) => format!(
                "missed {}, false {}; precision {:.4}, recall {:.4}",
                missed.len(),
                false_.len(),
                r["precision"].as_f64().unwrap_or(0.0),
                r["recall"].as_f64().unwrap_or(0.0)
            ),
            _ => "first detections only (the loop is closed)".to_string(),
        },
        r["peak_rss_bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
        r["rss_bytes_per_key"].as_f64().unwrap_or(0.0),
    )
}

/// The summary's line for a closed loop, if the run closed it.
pub fn loop_summary(r: &Value) -> Option<String> {
    let l = r.get("close_loop")?;
    let t = &l["time_to_repair_ms"];
    Some(format!(
        "closed loop: {} corrections applied, {} differences repaired (time to repair p50 {} ms, p99 {} ms, max {} ms); {}",
        l["corrections_applied"],
        l["repaired"],
        t["p50"],
        t["p99"],
        t["max"],
        match l["converged_after_last_message_ms"].as_u64() {
            Some(ms) => format!("converged {ms} ms after the last message"),
            None => format!("NOT converged: {} open at the end", l["open_at_end"]),
        }
    ))
}
