//! SIGINT/SIGTERM: a live job stops reading, delivers what it has emitted, and exits.
//!
//! Stopping does not end event time: pending differences are not reported as drift
//! (they may be replication lag), and a restart recomputes them.
//!
//! A stop must not hang: closing Kafka clients with the broker gone can block (a final
//! offset commit to an unreachable coordinator). A watchdog ends the process
//! [`STOP_DEADLINE`] after the signal if the orderly stop has not finished by then.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::sync::OnceLock;

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// How long an orderly stop may take before the watchdog exits the process.
pub const STOP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Registers the signal handlers (once per process).
pub fn install() -> anyhow::Result<()> {
    if FLAG.get().is_some() {
        return Ok(());
    }
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, flag.clone())
            .map_err(|e| anyhow::anyhow!("cannot handle signal {signal}: {e}"))?;
    }
    let watched = flag.clone();
    std::thread::Builder::new()
        .name("stop-watchdog".into())
        .spawn(move || {
            while !watched.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            std::thread::sleep(STOP_DEADLINE);
            eprintln!(
                "driftwatch: the stop did not finish within {}s (Kafka unreachable?); exiting",
                STOP_DEADLINE.as_secs()
            );
            std::process::exit(2);
        })
        .map_err(|e| anyhow::anyhow!("cannot start the stop watchdog: {e}"))?;
    let _ = FLAG.set(flag);
    Ok(())
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::Relaxed))
}
