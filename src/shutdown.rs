//! SIGINT/SIGTERM: a live job stops reading, delivers what it has emitted, and exits.
//!
//! Stopping does not end event time: pending differences are not reported as drift
//! (they may be replication lag), and a restart recomputes them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::sync::OnceLock;

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

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
    let _ = FLAG.set(flag);
    Ok(())
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::Relaxed))
}
