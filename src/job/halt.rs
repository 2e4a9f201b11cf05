//! A failure anywhere ends the whole cluster promptly, with one line naming its cause.
//!
//! Timely has no way to stop a cluster: a worker that returns early leaves its peers
//! waiting for its progress forever, and a process that dies makes every peer's
//! communication threads panic ("timely communication error: reading data: socket
//! closed"), after which each worker panics in turn on its poisoned queues: a cascade of
//! backtraces that names the wrong cause, or a hang. So:
//!
//! - within a process, a failed worker (or a failed output) records its cause in the
//!   job's [`Halt`], and the other workers stop at their next round;
//! - in a cluster of several processes, the failed process prints its cause and exits at
//!   once ([`exit`]), without the orderly shutdown that would tell its peers it finished;
//! - [`install_panic_hook`] turns the first panic of any thread into one line and an
//!   exit: a lost peer says which process it lost, a bug says where it panicked.
//!
//! A supervisor then restarts the cluster, which resumes from its last checkpoint.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// Why a job stops before its end: the first failure of a worker or of an output, shared
/// by every worker of the process (which stop at their next round), its outputs (which
/// record why they could not deliver) and its metrics (which show it).
#[derive(Debug, Default)]
pub struct Halt {
    output: OnceLock<String>,
    worker: OnceLock<String>,
}

impl Halt {
    /// Records that an output could not be written (the first error is kept).
    pub fn output_failed(&self, error: String) {
        let _ = self.output.set(error);
    }

    /// Records that a worker failed (the first cause is kept).
    pub fn worker_failed(&self, cause: String) {
        let _ = self.worker.set(cause);
    }

    /// The first output error, if any.
    pub fn output_error(&self) -> Option<&str> {
        self.output.get().map(String::as_str)
    }

    /// The first worker failure, if any.
    pub fn worker_failure(&self) -> Option<&str> {
        self.worker.get().map(String::as_str)
    }

    /// `Err` with the cause to stop on, once anything failed.
    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(e) = self.output_error() {
            anyhow::bail!("writing outputs failed: {e}");
        }
        if let Some(cause) = self.worker_failure() {
            anyhow::bail!("{cause}");
        }
        Ok(())
    }
}

/// The exit code of a cluster process that stops on a failure.
pub const EXIT_CODE: i32 = 2;

static REPORTED: AtomicBool = AtomicBool::new(false);

/// Prints `driftwatch: {cause}` (only the first cause of this process) and exits.
pub fn exit(cause: &str) -> ! {
    if !REPORTED.swap(true, Ordering::SeqCst) {
        eprintln!("driftwatch: {cause}");
    }
    std::process::exit(EXIT_CODE)
}

/// The line a panic becomes: which peer was lost, or where a thread panicked.
pub fn describe_panic(thread: Option<&str>, message: &str, location: Option<String>) -> String {
    let peer = thread
        .and_then(|t| {
            t.strip_prefix("timely:recv-")
                .or(t.strip_prefix("timely:send-"))
        })
        .and_then(|p| p.parse::<usize>().ok());
    if message.starts_with("timely communication error") || message.contains("MergeQueue") {
        let who = peer.map_or("another process".to_string(), |p| format!("process {p}"));
        return format!(
            "{who} of the cluster is gone (it failed or was stopped; its own log names the \
             cause), so this process stops too: {message}"
        );
    }
    let at = location.map(|l| format!(" at {l}")).unwrap_or_default();
    let name = thread.unwrap_or("a thread");
    format!("{name} panicked{at}: {message} (a bug: please report it)")
}

/// Makes the first panic of any thread print one line and exit the process.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        let thread = std::thread::current();
        exit(&describe_panic(thread.name(), &message, location))
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_peer_is_named_and_a_bug_is_located() {
        let lost = describe_panic(
            Some("timely:recv-1"),
            "timely communication error: reading data: socket closed",
            None,
        );
        assert!(
            lost.starts_with("process 1 of the cluster is gone"),
            "{lost}"
        );
        assert!(lost.ends_with("reading data: socket closed"), "{lost}");
        let poisoned = describe_panic(Some("worker 0"), "MergeQueue poisoned.", None);
        assert!(poisoned.starts_with("another process of the cluster is gone"));
        let bug = describe_panic(
            Some("worker 3"),
            "index out of bounds",
            Some("a.rs:1".into()),
        );
        assert_eq!(
            bug,
            "worker 3 panicked at a.rs:1: index out of bounds (a bug: please report it)"
        );
    }
}
