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
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Weak;
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
/// partitions are dropped.
pub fn spawn(
    client: BaseConsumer,
    partitions: Vec<(String, i32, Weak<Probe>)>,
    every: Duration,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("watermark-probe".into())
        .spawn(move || loop {
            let mut alive = false;
            for (topic, partition, probe) in &partitions {
                let Some(probe) = probe.upgrade() else {
                    continue;
                };
                alive = true;
                let asked = crate::io::now_ms();
                // A failure (broker away) leaves the last bounds: their time stays.
                if let Ok((low, high)) =
                    client.fetch_watermarks(topic, *partition, Duration::from_secs(5))
                {
                    probe.set(low, high, asked);
                }
            }
            if !alive {
                return;
            }
            std::thread::sleep(every);
        })
        .map(drop)
}
