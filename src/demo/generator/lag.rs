//! The replica's clock: a serial replica applies each change a replication lag after
//! its commit, the lag drifting over event time.
//!
//! Why the lag is a process of time, not a draw per change: a serial replica applies
//! change `i` at `max(applied(i - 1), t(i) + lag(i))`, so a lag drawn afresh for every
//! change made the replica's actual lag the running maximum of every recent draw. The
//! more changes per second, the more draws, the worse the maximum: for a configured
//! median of 20 ms (p99 200 ms) the actual median was 0.4 s at 2k changes/s and 1.7 s
//! at 150k/s, and each spike's end released a burst of hundreds of thousands of
//! messages at one time. Here the lag at any instant is lognormal with the configured
//! median and spread, and moves smoothly between values drawn every [`PERIOD_MS`] of
//! event time, so the replica's actual lag is the configured one at every rate.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Event time (ms) between independent values of the lag.
const PERIOD_MS: u64 = 1_000;

/// The lag (ms) at each event time: `median · exp(sigma · X(t))`, with `X` a standard
/// normal at every instant: between independent standard normals `a` (at a period's
/// start) and `b` (at its end), `X = a·cos(πu/2) + b·sin(πu/2)` for the fraction `u` of
/// the period passed, whose variance is `cos² + sin² = 1` throughout.
pub(super) struct Lag {
    rng: SmallRng,
    median_ms: f64,
    sigma: f64,
    start_ms: u64,
    /// The period `[a, b]` spans.
    period: u64,
    a: f64,
    b: f64,
}

impl Lag {
    /// The lag from `start_ms` on, its values drawn from `seed`.
    pub(super) fn new(seed: u64, start_ms: u64, median_ms: f64, sigma: f64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let (a, b) = (normal(&mut rng), normal(&mut rng));
        Lag {
            rng,
            median_ms,
            sigma,
            start_ms,
            period: 0,
            a,
            b,
        }
    }

    /// The lag at event time `t` (ms), for `t` not before the last asked.
    pub(super) fn at(&mut self, t: u64) -> u64 {
        let since = t.saturating_sub(self.start_ms);
        while self.period < since / PERIOD_MS {
            self.a = self.b;
            self.b = normal(&mut self.rng);
            self.period += 1;
        }
        let u = (since % PERIOD_MS) as f64 / PERIOD_MS as f64;
        let angle = u * std::f64::consts::FRAC_PI_2;
        let x = self.a * angle.cos() + self.b * angle.sin();
        (self.median_ms * (self.sigma * x).exp()).min(60_000.0) as u64
    }
}

/// When a serial replica applies each change: in commit order, a [`Lag`] after it.
pub(super) struct ReplicaClock {
    lag: Lag,
    applied: u64,
}

impl ReplicaClock {
    pub(super) fn new(lag: Lag) -> Self {
        ReplicaClock { lag, applied: 0 }
    }

    /// When the change committed at `t` (ms) is applied: not before the one before it.
    pub(super) fn apply(&mut self, t: u64) -> u64 {
        self.applied = self.applied.max(t + self.lag.at(t));
        self.applied
    }
}

/// A standard normal sample (Box–Muller).
fn normal(rng: &mut SmallRng) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quantile(mut v: Vec<u64>, q: f64) -> u64 {
        v.sort_unstable();
        v[((v.len() - 1) as f64 * q) as usize]
    }

    #[test]
    fn the_lag_is_lognormal_at_every_instant() {
        // Median 20 ms, sigma 1: the p99 is 20·e^2.326 = 205 ms.
        let mut lag = Lag::new(3, 0, 20.0, 1.0);
        // Sampled at a third of each period (a point where two draws mix) over 100k
        // periods.
        let v: Vec<u64> = (0..100_000).map(|i| lag.at(i * 1_000 + 333)).collect();
        let (p50, p99) = (quantile(v.clone(), 0.5), quantile(v, 0.99));
        assert!((18..=22).contains(&p50), "median {p50}");
        assert!((180..=230).contains(&p99), "p99 {p99}");
    }

    /// The actual lag of a serial replica at `per_s` changes a second, for 60 s.
    fn actual(per_s: u64) -> Vec<u64> {
        let mut clock = ReplicaClock::new(Lag::new(5, 0, 20.0, 1.0));
        let step_us = 1_000_000 / per_s;
        (0..per_s * 60)
            .map(|i| {
                let t = i * step_us / 1_000;
                clock.apply(t) - t
            })
            .collect()
    }

    #[test]
    fn a_serial_replicas_lag_is_the_configured_one_at_any_rate() {
        // A lag drawn per change gave a median of 0.4 s at 2k/s and 1.7 s at 150k/s.
        for per_s in [1_000, 150_000] {
            let v = actual(per_s);
            let (p50, p99) = (quantile(v.clone(), 0.5), quantile(v, 0.99));
            assert!(p50 <= 40, "{per_s}/s: median {p50} ms for a configured 20");
            assert!(p99 <= 600, "{per_s}/s: p99 {p99} ms for a configured 205");
        }
    }
}
