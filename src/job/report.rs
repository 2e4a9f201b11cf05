//! What a finished job reports: its counters, its state's sizes, and the summary printed
//! at exit.

use crate::cdc::SideId;
use crate::dataflow::{DriftKind, Stats};
use std::sync::Arc;
use std::time::Duration;

/// State sizes sampled by one worker during a run: `(messages read so far, sizes)`.
pub type SizeSamples = Vec<(u64, crate::dataflow::sides::Sizes)>;

/// What a finished job reports.
pub struct Report {
    /// Counters (the process's; with one entity, also the entity's).
    pub stats: Arc<Stats>,
    /// Each entity's name and counters.
    pub entities: Vec<(String, Arc<Stats>)>,
    /// Wall-clock time.
    pub elapsed: Duration,
    /// State sizes sampled by each worker of this process.
    pub samples: Vec<SizeSamples>,
}

impl Report {
    /// Messages read over both sides of every entity.
    pub fn events_read(&self) -> u64 {
        self.entities
            .iter()
            .flat_map(|(_, s)| {
                SideId::BOTH
                    .map(|side| s.side(side).read.load(std::sync::atomic::Ordering::Relaxed))
            })
            .sum()
    }

    /// The human summary printed at exit: each entity's counters (under its name when
    /// there are several), then the job's.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        use std::sync::atomic::Ordering::Relaxed;
        let mut out = String::new();
        for (name, s) in &self.entities {
            if self.entities.len() > 1 {
                let _ = writeln!(out, "[{name}]");
            }
            entity_summary(&mut out, s);
        }
        let unselected = self.stats.unselected.load(Relaxed);
        if unselected > 0 {
            let _ = writeln!(
                out,
                "unselected (shared inputs, no entity's select took them): {unselected}"
            );
        }
        let secs = self.elapsed.as_secs_f64();
        let _ = write!(
            out,
            "elapsed {:.3}s, {:.0} events/s",
            secs,
            self.events_read() as f64 / secs.max(1e-9)
        );
        let checkpoints = self.stats.checkpoints.load(Relaxed);
        if checkpoints > 0 {
            let _ = write!(out, ", {checkpoints} checkpoint files written");
        }
        if let Some(rss) = peak_rss_bytes() {
            let _ = write!(out, ", peak RSS {:.1} MiB", rss as f64 / (1 << 20) as f64);
        }
        out
    }
}

/// One entity's counters: its sides, its open drift, its sync lag.
fn entity_summary(out: &mut String, s: &Stats) {
    use std::fmt::Write as _;
    use std::sync::atomic::Ordering::Relaxed;
    for side in SideId::BOTH {
        let c = s.side(side);
        let _ = writeln!(
            out,
            "{:<6}: read {}, applied {}, duplicate {}, stale {}, rejected {}, tombstones {}",
            side.name(),
            c.read.load(Relaxed),
            c.applied.load(Relaxed),
            c.duplicate.load(Relaxed),
            c.stale.load(Relaxed),
            c.rejected.load(Relaxed),
            c.skipped.load(Relaxed)
        );
        let mut others = vec![format!("truncate {}", c.truncates.load(Relaxed))];
        for kind in crate::cdc::NonRow::ALL {
            others.push(format!(
                "{} {}",
                kind.name(),
                c.non_row[kind as usize].load(Relaxed)
            ));
        }
        let _ = writeln!(out, "        not row changes: {}", others.join(", "));
    }
    let open: Vec<String> = DriftKind::ALL
        .iter()
        .map(|k| format!("{} {}", k.name(), s.open(*k)))
        .collect();
    let _ = writeln!(
        out,
        "open drift: {}; drift records {}, corrections {}",
        open.join(", "),
        s.drift_records.load(Relaxed),
        s.corrections.load(Relaxed)
    );
    if let Ok(h) = s.sync_lag.lock() {
        if !h.is_empty() {
            let _ = writeln!(
                out,
                "sync lag (ms of event time, {} differences healed): p50 {}, p99 {}, max {}",
                h.len(),
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.max()
            );
        }
    }
}

/// This process's peak resident set size (`VmHWM`), where `/proc` has it (Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    proc_status_bytes("VmHWM:")
}

/// This process's current resident set size (`VmRSS`), where `/proc` has it (Linux).
pub fn current_rss_bytes() -> Option<u64> {
    proc_status_bytes("VmRSS:")
}

fn proc_status_bytes(field: &str) -> Option<u64> {
    process_status_bytes("self", field)
}

/// A memory figure (`VmRSS:`, `VmHWM:`, …) of process `pid` (`self` for this one) from
/// `/proc` (Linux), in bytes.
pub fn process_status_bytes(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
