//! The load-test profile: a TOML file (`--profile`) and command-line overrides.

use crate::spec::Duration;
use serde::{Deserialize, Serialize};

/// What to generate and how fast.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Source changes per second (the replica's follow at the same rate).
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// How long to generate, in seconds.
    #[serde(default = "default_duration")]
    pub duration_s: f64,
    /// Distinct order ids.
    #[serde(default = "default_keys")]
    pub keys: u64,
    /// Random seed.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// The detector's grace period, e.g. `"2s"`.
    #[serde(default = "default_grace")]
    pub grace: Duration,
    /// Median replication lag (ms); lognormal.
    #[serde(default = "default_lag")]
    pub lag_median_ms: f64,
    /// The lag's 99th percentile (ms), above the median; default 10× the median.
    #[serde(default)]
    pub lag_p99_ms: Option<f64>,
    /// Share of changes to an existing order that delete it; the rest update it, and
    /// an order not in the table is inserted (so the key space sets the insert share).
    #[serde(default = "default_delete")]
    pub p_delete: f64,
    /// Probability that the replica drops a change.
    #[serde(default)]
    pub p_drop: f64,
    /// Probability that the replica corrupts a change.
    #[serde(default)]
    pub p_corrupt: f64,
    /// Probability, per source change, of an extra row on the replica.
    #[serde(default)]
    pub p_extra: f64,
    /// Probability that a replica event is delivered twice.
    #[serde(default)]
    pub p_duplicate: f64,
    /// Probability that an old replica event is redelivered.
    #[serde(default)]
    pub p_redeliver: f64,
    /// Probability that a replica event is delivered late: after the events of up to
    /// `reorder_ms` later (reordering within a bound).
    #[serde(default)]
    pub p_reorder: f64,
    /// The reordering bound, in ms of event time.
    #[serde(default = "default_reorder")]
    pub reorder_ms: u64,
    /// Close the loop: apply the detector's corrections to the replica (as its own next
    /// writes) and report how long each difference took to repair and when none was
    /// left.
    #[serde(default)]
    pub close_loop: bool,
    /// Stall the replica's partition this many seconds into the run (its messages are
    /// held, then delivered late): with `stall_for_s`.
    #[serde(default)]
    pub stall_at_s: Option<f64>,
    /// How long the replica's partition stalls, in seconds.
    #[serde(default)]
    pub stall_for_s: Option<f64>,
}

fn default_rate() -> f64 {
    5_000.0
}
fn default_duration() -> f64 {
    10.0
}
fn default_keys() -> u64 {
    10_000
}
fn default_seed() -> u64 {
    1
}
fn default_grace() -> Duration {
    Duration::from_millis(2_000)
}
fn default_delete() -> f64 {
    0.05
}
fn default_reorder() -> u64 {
    200
}
fn default_lag() -> f64 {
    20.0
}

impl Default for Profile {
    fn default() -> Self {
        toml::from_str("").expect("every field has a default")
    }
}

impl Profile {
    /// The profile in the TOML file at `path`, or the defaults.
    pub fn from_file(path: Option<&std::path::Path>) -> anyhow::Result<Self> {
        match path {
            None => Ok(Profile::default()),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
                toml::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))
            }
        }
    }

    /// Refuses values that cannot work, saying what to fix.
    pub fn check(&self) -> anyhow::Result<()> {
        let p = self;
        anyhow::ensure!(
            p.stall_at_s.is_some() == p.stall_for_s.is_some(),
            "give both --stall-at and --stall-for (or neither)"
        );
        for (name, v) in [
            ("p_drop", p.p_drop),
            ("p_corrupt", p.p_corrupt),
            ("p_extra", p.p_extra),
            ("p_duplicate", p.p_duplicate),
            ("p_redeliver", p.p_redeliver),
            ("p_reorder", p.p_reorder),
            ("p_delete", p.p_delete),
        ] {
            anyhow::ensure!(
                (0.0..=1.0).contains(&v),
                "{name} must be a probability in [0, 1], got {v}"
            );
        }
        anyhow::ensure!(
            p.rate > 0.0 && p.rate <= 1_000_000.0,
            "rate must be in (0, 1000000], got {}",
            p.rate
        );
        anyhow::ensure!(
            p.duration_s > 0.0,
            "duration must be positive, got {}",
            p.duration_s
        );
        anyhow::ensure!(p.keys > 0, "keys must be at least 1");
        anyhow::ensure!(
            p.lag_median_ms >= 0.0,
            "lag_median_ms must not be negative, got {}",
            p.lag_median_ms
        );
        if let Some(p99) = p.lag_p99_ms {
            anyhow::ensure!(
                p99 > p.lag_median_ms,
                "lag_p99_ms ({p99}) must be above lag_median_ms ({})",
                p.lag_median_ms
            );
        }
        Ok(())
    }

    /// The lag's log-scale spread: sigma of a lognormal with the given median and p99.
    pub fn lag_sigma(&self) -> f64 {
        // The standard normal's 99th percentile.
        const Z99: f64 = 2.326_347_874;
        match self.lag_p99_ms {
            Some(p99) if self.lag_median_ms > 0.0 => (p99 / self.lag_median_ms).ln() / Z99,
            _ => 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_spread_gives_the_asked_p99() {
        let p = Profile {
            lag_median_ms: 20.0,
            lag_p99_ms: Some(500.0),
            ..Profile::default()
        };
        // exp(sigma × z99) × median = p99
        let p99 = 20.0 * (p.lag_sigma() * 2.326_347_874).exp();
        assert!((p99 - 500.0).abs() < 1e-6, "{p99}");
        assert_eq!(Profile::default().lag_sigma(), 1.0);
    }

    #[test]
    fn a_profile_refuses_unknown_fields() {
        let err = toml::from_str::<Profile>("rate = 10\nrtae = 5").unwrap_err();
        assert!(err.message().contains("rtae"), "{err}");
    }
}
