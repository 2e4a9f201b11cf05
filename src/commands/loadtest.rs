//! `driftwatch loadtest`'s command line, resolved into `loadtest::Options`.

use crate::cli::LoadtestArgs;
use crate::loadtest::config::Profile;
use crate::loadtest::{Mode, Options};

/// The profile file (if any) with the command line's overrides applied, checked.
fn profile(args: &LoadtestArgs) -> anyhow::Result<Profile> {
    let mut p = Profile::from_file(args.profile.as_deref())?;
    macro_rules! over {
        ($($field:ident),*) => {$(
            if let Some(v) = args.$field.clone() {
                p.$field = v;
            }
        )*};
    }
    over!(rate, duration_s, keys, seed, grace, lag_median_ms, p_delete);
    over!(
        p_drop,
        p_corrupt,
        p_extra,
        p_duplicate,
        p_redeliver,
        p_reorder
    );
    over!(reorder_ms);
    if args.lag_p99_ms.is_some() {
        p.lag_p99_ms = args.lag_p99_ms;
    }
    if args.close_loop {
        p.close_loop = true;
    }
    if args.stall_at_s.is_some() {
        p.stall_at_s = args.stall_at_s;
    }
    if args.stall_for_s.is_some() {
        p.stall_for_s = args.stall_for_s;
    }
    p.check()?;
    Ok(p)
}

/// Everything `loadtest` needs, from its command line.
pub(crate) fn options(args: &LoadtestArgs) -> anyhow::Result<Options> {
    anyhow::ensure!(args.workers >= 1, "--workers must be at least 1");
    let mode = match &args.brokers {
        None => Mode::InProcess,
        Some(brokers) => Mode::Kafka(crate::loadtest::kafka::KafkaMode {
            brokers: brokers.clone(),
            exe: std::env::current_exe()
                .map_err(|e| anyhow::anyhow!("cannot find this executable: {e}"))?,
            workers: args.workers,
            clock_skew: args.clock_skew,
        }),
    };
    Ok(Options {
        profile: profile(args)?,
        workers: args.workers,
        mode,
        report: args.report.clone(),
        chart: args.chart.clone(),
    })
}
