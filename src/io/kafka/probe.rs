//! Fresh high watermarks for the caught-up rule: a background thread asks the broker
//! for the end of each partition, and a partition vouches for the wall clock only as of
//! a moment its end was known.
//!
//! Why not librdkafka's cached watermark: it is only as fresh as the last fetch
//! response. With a slow broker (or a paused partition) fetches lag behind production,
//! the cached end equals the read position, and the partition would vouch for a time
//! later than messages still unread. Those would then arrive late, take the partition's
//! progress as their time, and shift or invent drift (a load test through a bloated
//! broker showed it). Asking for the end first and vouching for the moment of asking
//! (less `clock_skew`) holds whatever was produced before then to be read first.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// A partition's log bounds as last asked of the broker, and when they were asked.
#[derive(Debug)]
pub struct Probe {
    low: AtomicI64,
    /// -1 until first known.
    high: AtomicI64,
    asked_ms: AtomicU64,
}

impl Default for Probe {
    fn default() -> Self {
        Probe {
            low: AtomicI64::new(0),
            high: AtomicI64::new(-1),
            asked_ms: AtomicU64::new(0),
        }
    }
}

impl Probe {
    /// (low, high, wall-clock ms at which they were asked), once known.
    pub fn get(&self) -> Option<(i64, i64, u64)> {
        // `asked_ms` is written last and read first: the bounds are at least as new.
        let asked = self.asked_ms.load(std::sync::atomic::Ordering::Acquire);
        let high = self.high.load(Relaxed);
        (high >= 0).then(|| (self.low.load(Relaxed), high, asked))
    }

    fn set(&self, low: i64, high: i64, asked_ms: u64) {
        self.low.store(low, Relaxed);
        self.high.store(high, Relaxed);
        self.asked_ms
            .store(asked_ms, std::sync::atomic::Ordering::Release);
    }
}

/// How often to ask: a quarter of the skew allowance (so a vouched time trails the wall
/// clock by little more than the allowance), between 20 ms and 250 ms.
pub fn interval(skew_ms: u64) -> Duration {
    Duration::from_millis((skew_ms / 4).clamp(20, 250))
}

/// Asks for the bounds of `partitions` every `every`, on a client of its own (so the
/// reading consumer's life, and its final offset commit, stay the driver's), until the
/// partitions are dropped. Every partition's bounds come in two batched requests a round
/// (ends, then beginnings), whatever the number of partitions: asked one partition at a
/// time, 400 idle partitions kept a core busy.
pub fn spawn(
    client: BaseConsumer,
    partitions: Vec<(String, i32, Weak<Probe>)>,
    every: Duration,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("watermark-probe".into())
        .spawn(move || loop {
            let alive: Vec<(&str, i32, Arc<Probe>)> = partitions
                .iter()
                .filter_map(|(t, p, probe)| Some((t.as_str(), *p, probe.upgrade()?)))
                .collect();
            if alive.is_empty() {
                return;
            }
            let asked = crate::io::now_ms();
            // A failure (broker away) leaves the last bounds: their time stays.
            if let (Some(high), Some(low)) = (
                bounds(&client, &alive, Offset::End),
                bounds(&client, &alive, Offset::Beginning),
            ) {
                for (topic, partition, probe) in &alive {
                    if let (Some(&h), Some(&l)) = (
                        high.get(&(*topic, *partition)),
                        low.get(&(*topic, *partition)),
                    ) {
                        probe.set(l, h, asked);
                    }
                }
            }
            drop(alive);
            std::thread::sleep(every);
        })
        .map(drop)
}

/// Every partition's offset at `at` (its end or its beginning), in one request a broker.
fn bounds<'a>(
    client: &BaseConsumer,
    partitions: &[(&'a str, i32, Arc<Probe>)],
    at: Offset,
) -> Option<HashMap<(&'a str, i32), i64>> {
    let mut list = TopicPartitionList::with_capacity(partitions.len());
    for (topic, partition, _) in partitions {
        list.add_partition_offset(topic, *partition, at).ok()?;
    }
    let found = client
        .offsets_for_times(list, Duration::from_secs(5))
        .ok()?;
    let mut out = HashMap::with_capacity(partitions.len());
    // A partition without an answer keeps its last bounds.
    for (topic, partition, _) in partitions {
        let Some(e) = found.find_partition(topic, *partition) else {
            continue;
        };
        if let (Ok(()), Offset::Offset(offset)) = (e.error(), e.offset()) {
            out.insert((*topic, *partition), offset);
        }
    }
    Some(out)
}
