//! The naive baseline: serde_json values in two hash maps, one thread, diffed at the end.
//!
//! It is what a team writes first: parse every message into a `serde_json::Value`, keep
//! each side's latest `after` image by key behind a version check, and compare the two
//! maps when the input ends. It knows the orders schema by heart (the Decimal bytes, the
//! microsecond and RFC 3339 timestamps, the ignored `_synced_at`), so it does the same
//! comparison as the engine, without the engine's generality, time or incrementality.

use crate::orders;
use serde_json::Value;
use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

/// One side's state: key → (version, latest `after`, `None` once deleted).
type Side = HashMap<String, (u64, Option<Value>)>;

/// What the baseline found: counts by kind, and what it read.
#[derive(Debug, Default)]
pub struct Outcome {
    pub events: u64,
    pub bytes: u64,
    pub missing: u64,
    pub orphan: u64,
    pub mismatch: u64,
}

/// Reads the files of both sides, then diffs the two maps.
pub fn run<P: AsRef<Path>>(source: &[P], target: &[P]) -> anyhow::Result<Outcome> {
    let mut out = Outcome::default();
    let mut maps = [Side::new(), Side::new()];
    for (side, files) in [source, target].into_iter().enumerate() {
        for file in files {
            let reader = std::io::BufReader::new(std::fs::File::open(file.as_ref())?);
            for line in reader.lines() {
                let line = line?;
                out.events += 1;
                out.bytes += line.len() as u64 + 1;
                apply(&mut maps[side], &line);
            }
        }
    }
    let [source, target] = &maps;
    for (key, (_, row)) in source {
        let Some(row) = row else { continue };
        match target.get(key).and_then(|(_, r)| r.as_ref()) {
            None => out.missing += 1,
            Some(t) if !orders::same(row, t) => out.mismatch += 1,
            Some(_) => {}
        }
    }
    for (key, (_, row)) in target {
        let live_source = source.get(key).is_some_and(|(_, r)| r.is_some());
        if row.is_some() && !live_source {
            out.orphan += 1;
        }
    }
    Ok(out)
}

fn apply(map: &mut Side, line: &str) {
    let Ok(event) = serde_json::from_str::<Value>(line) else {
        return;
    };
    let version = event["source"]["lsn"].as_u64().unwrap_or(0);
    let after = event.get("after").filter(|a| !a.is_null()).cloned();
    let key_row = after.as_ref().unwrap_or(&event["before"]);
    let key = key_row["id"].to_string();
    match map.get(&key) {
        Some((v, _)) if *v >= version => {}
        _ => {
            map.insert(key, (version, after));
        }
    }
}
