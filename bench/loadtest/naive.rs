//! The naive baseline detector: one thread, `serde_json::Value`s in two hash maps, a
//! scan for differences every 50 ms.
//!
//! It reads the same real-time feed as the engine (both sides merged in event-time
//! order), keeps each side's latest row per key behind a version check, re-compares a
//! key when it changes, and reports a difference once it has lasted the grace period.
//! It knows the orders schema by heart, as the file-mode baseline does.

use driftwatch::io::now_ms;
use driftwatch::loadtest::Prepared;
use hdrhistogram::Histogram;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// What the baseline measured.
pub struct Scored {
    pub lateness: Histogram<u64>,
    pub latency: Histogram<u64>,
    pub found: usize,
    pub unexpected: usize,
}

type Side = HashMap<i64, (u64, Option<Value>)>;

fn apply(map: &mut Side, line: &str) -> Option<(i64, u64)> {
    let event: Value = serde_json::from_str(line).ok()?;
    let version = event["source"]["lsn"].as_u64()?;
    let ts = event["source"]["ts_ms"].as_u64()?;
    let after = event.get("after").filter(|a| !a.is_null()).cloned();
    let id = after.as_ref().unwrap_or(&event["before"])["id"].as_i64()?;
    match map.get(&id) {
        Some((v, _)) if *v >= version => None,
        _ => {
            map.insert(id, (version, after));
            Some((id, ts))
        }
    }
}

fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(s), Some(t)) => crate::orders::same(s, t),
        (None, None) => true,
        _ => false,
    }
}

/// Where the baseline's messages come from.
pub trait Feed {
    /// Calls `f(side, message)` for every message available at wall-clock `now`
    /// (side 0: source, 1: replica), recording how late each is in `lateness`; returns
    /// whether every message has been delivered.
    fn poll(
        &mut self,
        now: u64,
        lateness: &mut Histogram<u64>,
        f: &mut dyn FnMut(usize, &str),
    ) -> bool;
}

/// The in-process feed: both sides merged in event-time order, released on schedule.
pub struct Schedule<'a> {
    feed: Vec<(u64, usize, &'a str)>,
    next: usize,
}

impl<'a> Schedule<'a> {
    pub fn new(prep: &'a Prepared) -> Self {
        let mut feed: Vec<(u64, usize, &str)> = prep
            .source
            .iter()
            .map(|(t, l)| (*t, 0, l.as_str()))
            .chain(prep.target.iter().map(|(t, l)| (*t, 1, l.as_str())))
            .collect();
        feed.sort_by_key(|(t, side, _)| (*t, *side));
        Schedule { feed, next: 0 }
    }
}

impl Feed for Schedule<'_> {
    fn poll(
        &mut self,
        now: u64,
        lateness: &mut Histogram<u64>,
        f: &mut dyn FnMut(usize, &str),
    ) -> bool {
        while let Some((t, side, line)) = self.feed.get(self.next) {
            if *t > now {
                break;
            }
            let _ = lateness.record(now - t);
            self.next += 1;
            f(*side, line);
        }
        self.next >= self.feed.len()
    }
}

/// Runs the baseline over the prepared load with grace `grace_ms`.
pub fn run(prep: &Prepared, grace_ms: u64, feed: &mut dyn Feed) -> Scored {
    let mut sides = [Side::new(), Side::new()];
    let mut diverged: HashMap<i64, (u64, bool)> = HashMap::new();
    let mut scored = Scored {
        lateness: Histogram::new(3).expect("valid"),
        latency: Histogram::new(3).expect("valid"),
        found: 0,
        unexpected: 0,
    };
    let mut last_scan = 0;
    loop {
        let now = now_ms();
        let mut lateness =
            std::mem::replace(&mut scored.lateness, Histogram::new(3).expect("valid"));
        let delivered = feed.poll(now, &mut lateness, &mut |side, line| {
            if let Some((id, ts)) = apply(&mut sides[side], line) {
                let (s, r) = (sides[0].get(&id), sides[1].get(&id));
                let equal = same(
                    s.and_then(|(_, v)| v.as_ref()),
                    r.and_then(|(_, v)| v.as_ref()),
                );
                match (equal, diverged.contains_key(&id)) {
                    (true, _) => {
                        diverged.remove(&id);
                    }
                    (false, false) => {
                        diverged.insert(id, (ts, false));
                    }
                    (false, true) => {}
                }
            }
        });
        scored.lateness = lateness;
        // The periodic scan: report differences older than grace (event time ≈ wall).
        if now >= last_scan + 50 {
            last_scan = now;
            for (id, (since, reported)) in diverged.iter_mut() {
                if !*reported && now >= *since + grace_ms {
                    *reported = true;
                    if prep.truth.contains(&(*id, *since)) {
                        scored.found += 1;
                        let _ = scored.latency.record(now - (*since + grace_ms));
                    } else {
                        scored.unexpected += 1;
                    }
                }
            }
        }
        if delivered && now >= prep.until {
            return scored;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
