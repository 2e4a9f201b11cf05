//! `driftwatch demo`: the orders job over generated, fault-injected CDC, no broker needed.
//!
//! The source and replica streams come from [`generator`]; they are fed at a steady
//! rate, drift is printed as it is detected, and at the end the open drift is compared
//! with the generator's ground truth (found / missed / false).

pub mod generator;

use crate::cdc::{Message, Origin, SideId};
use crate::dataflow::{DriftKind, Output, Sink, Status, Time};
use crate::io::{Partition, Poll};
use crate::row::{JsonKey, Key, RowBuilder, ValueRef};
use generator::{generate, GenConfig};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The embedded orders spec.
pub const ORDERS_SPEC: &str = include_str!("../dataflows/orders.toml");

/// A partition over generated messages, optionally paced to a rate.
pub struct GeneratedPartition {
    side: SideId,
    name: Arc<str>,
    lines: Arc<Vec<String>>,
    next: usize,
    rate: u64,
    started: Option<Instant>,
}

impl GeneratedPartition {
    /// Messages `lines` for `side`, fed at `rate` per second (0: unpaced).
    pub fn new(side: SideId, lines: Arc<Vec<String>>, rate: u64) -> Self {
        GeneratedPartition {
            side,
            name: format!("generated-{}", side.name()).into(),
            lines,
            next: 0,
            rate,
            started: None,
        }
    }
}

impl Partition for GeneratedPartition {
    fn side(&self) -> SideId {
        self.side
    }

    fn poll(&mut self, max: usize, f: &mut dyn FnMut(&Message<'_>, u64)) -> anyhow::Result<Poll> {
        let started = *self.started.get_or_insert_with(Instant::now);
        let allowed = if self.rate == 0 {
            self.lines.len()
        } else {
            ((started.elapsed().as_secs_f64() * self.rate as f64) as usize).min(self.lines.len())
        };
        if self.next >= self.lines.len() {
            return Ok(Poll::Done);
        }
        let end = allowed.min(self.next + max);
        if end <= self.next {
            return Ok(Poll::Idle);
        }
        for i in self.next..end {
            f(
                &Message {
                    key: None,
                    value: Some(self.lines[i].as_bytes()),
                    timestamp_ms: None,
                },
                i as u64 + 1,
            );
        }
        self.next = end;
        Ok(Poll::Ready)
    }

    fn origin(&self, position: u64) -> Origin {
        Origin::Generated {
            stream: self.name.clone(),
            seq: position,
        }
    }
}

/// Prints drift as it is detected and keeps the latest record per key.
#[derive(Clone, Default)]
pub struct LatestDrift {
    inner: Arc<Mutex<Latest>>,
}

/// Open drift by key, records printed, records seen.
type Latest = (HashMap<Key, DriftKind>, usize, usize);

impl LatestDrift {
    /// A sink that prints the first `show` records.
    pub fn sink(&self, show: usize) -> Box<dyn Sink> {
        let latest = self.clone();
        Box::new(DemoSink { latest, show })
    }

    /// Keys with open drift at the end, by kind.
    pub fn open(&self) -> HashMap<Key, DriftKind> {
        self.inner.lock().map(|g| g.0.clone()).unwrap_or_default()
    }
}

struct DemoSink {
    latest: LatestDrift,
    show: usize,
}

impl Sink for DemoSink {
    fn emit(&mut self, time: Time, outputs: &[Output]) -> anyhow::Result<()> {
        let mut g = self
            .latest
            .inner
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        for o in outputs {
            let Output::Drift(r) = o else { continue };
            match r.status {
                Status::Open => g.0.insert(r.key.clone(), r.drift.kind),
                Status::Resolved => g.0.remove(&r.key),
            };
            g.1 += 1;
            if g.1 <= self.show {
                let fields: Vec<String> = r.drift.fields.iter().map(|f| f.field.clone()).collect();
                let detail = if fields.is_empty() {
                    String::new()
                } else {
                    format!(" fields {}", fields.join(","))
                };
                println!(
                    "  t+{:>6}ms {:<8} {:<8} {}{} (since t+{}ms)",
                    time.saturating_sub(GenConfig::default().start_ms),
                    format!("{:?}", r.status).to_lowercase(),
                    r.drift.kind.name(),
                    JsonKey(&r.key).to_json(),
                    detail,
                    r.since.saturating_sub(GenConfig::default().start_ms)
                );
            } else if g.1 == self.show + 1 {
                println!("  … (further records not shown)");
            }
            g.2 += 1;
        }
        Ok(())
    }
}

fn key_of(id: i64) -> Key {
    let mut b = RowBuilder::default();
    b.push("id", ValueRef::Int(id)).expect("short name");
    b.finish_key()
}

/// What the demo is asked to do, resolved from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// Source change events to generate.
    pub events: u64,
    /// Distinct order ids.
    pub keys: u64,
    /// Random seed.
    pub seed: u64,
    /// Messages per second to feed (both sides together); 0 = as fast as possible.
    pub rate: u64,
    /// How many drift records to print as they are detected.
    pub show: usize,
    /// The timely cluster.
    pub cluster: crate::run::Cluster,
}

/// Runs the demo.
pub fn run(args: &Options) -> anyhow::Result<()> {
    let spec =
        crate::spec::load_str(ORDERS_SPEC).map_err(|p| anyhow::anyhow!("embedded spec: {p:?}"))?;
    let cfg = GenConfig {
        events: args.events,
        keys: args.keys,
        seed: args.seed,
        ..GenConfig::default()
    };
    let generated = generate(&cfg);
    println!(
        "driftwatch demo: {} source and {} replica change events over {} order ids, grace {}; injected {:?}",
        generated.source.len(),
        generated.target.len(),
        args.keys,
        spec.grace,
        generated.injected
    );
    println!("drift as it is detected (event time since the first change):");
    let (source, target) = (Arc::new(generated.source), Arc::new(generated.target));
    let side_rate = args.rate / 2;
    let parts = crate::run::per_side(source, target, move |side, lines| {
        Box::new(GeneratedPartition::new(side, lines, side_rate)) as Box<dyn Partition>
    });
    let latest = LatestDrift::default();
    let sink_latest = latest.clone();
    let show = args.show;
    let report = crate::run::execute(
        &spec,
        &args.cluster,
        parts,
        Some(Arc::new(move || sink_latest.sink(show))),
        u64::MAX,
    )?;
    println!("\n{}", report.summary());
    let found = latest.open();
    let expected: BTreeMap<Key, DriftKind> = generated
        .expected
        .iter()
        .map(|(id, k)| (key_of(*id), *k))
        .collect();
    let hits = expected
        .iter()
        .filter(|(k, kind)| found.get(*k) == Some(kind))
        .count();
    let missed: Vec<String> = expected
        .iter()
        .filter(|(k, kind)| found.get(*k) != Some(kind))
        .map(|(k, kind)| format!("{} {}", kind.name(), JsonKey(k).to_json()))
        .collect();
    let false_: Vec<String> = found
        .iter()
        .filter(|(k, kind)| expected.get(*k) != Some(kind))
        .map(|(k, kind)| format!("{} {}", kind.name(), JsonKey(k).to_json()))
        .collect();
    println!(
        "ground truth: {} keys drifted; found {hits}, missed {}, false {}",
        expected.len(),
        missed.len(),
        false_.len()
    );
    if !missed.is_empty() || !false_.is_empty() {
        anyhow::bail!(
            "detected drift differs from the ground truth: missed {missed:?}, false {false_:?}"
        );
    }
    Ok(())
}
