//! The detector as a child process: started on the run's spec, watched through its
//! Prometheus endpoint and `/proc`, stopped with SIGTERM.

use super::KafkaMode;
use crate::io::now_ms;
use anyhow::Context as _;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Waits until the job has read every message and its clock has passed `end_ms`;
/// returns the messages it read.
pub(super) fn wait_for_job(
    job: &mut Job,
    metrics: &str,
    total: impl Fn() -> u64,
    end_ms: u64,
) -> anyhow::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        job.check_running()?;
        let total = total();
        let read = scrape(metrics)
            .ok()
            .and_then(|m| job_counts(&m))
            .map_or(0, |(read, _)| read);
        if read >= total && now_ms() >= end_ms {
            return Ok(read);
        }
        anyhow::ensure!(
            Instant::now() < deadline || now_ms() < end_ms,
            "the job read {read} of {total} messages and stopped making progress"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The job as a child process, killed if the harness stops first.
pub(super) struct Job {
    child: Child,
    log: PathBuf,
}

impl Job {
    pub(super) fn spawn(
        mode: &KafkaMode,
        spec: &Path,
        metrics: &str,
        log: &Path,
    ) -> anyhow::Result<Job> {
        let out = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let child = Command::new(&mode.exe)
            .arg("run")
            .arg(spec)
            .args(["-w", &mode.workers.to_string(), "--metrics-addr", metrics])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("cannot start the job {}", mode.exe.display()))?;
        Ok(Job {
            child,
            log: log.to_path_buf(),
        })
    }

    /// An error with the job's log if it has exited.
    fn check_running(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => anyhow::bail!(
                "the job exited ({status}) early; its log {}: {}",
                self.log.display(),
                self.log_tail()
            ),
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(5).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }

    /// Waits until the job serves its metrics (it has found its topics and started).
    pub(super) fn wait_ready(&mut self, metrics: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while scrape(metrics).is_err() {
            self.check_running()?;
            anyhow::ensure!(
                Instant::now() < deadline,
                "the job did not start within 60 s; its log {}",
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// A memory figure of the job from `/proc` (Linux), in bytes.
    pub(super) fn proc_status(&self, field: &str) -> Option<u64> {
        crate::run::process_status_bytes(&self.child.id().to_string(), field)
    }

    /// SIGTERM (the job delivers what it emitted and exits 0), then waits.
    pub(super) fn stop(&mut self) -> anyhow::Result<()> {
        // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::ensure!(
                    status.success(),
                    "the job exited with {status} on SIGTERM; its log {}: {}",
                    self.log.display(),
                    self.log_tail()
                );
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "the job ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Messages read and open drift, from the job's metrics.
pub(super) fn job_counts(metrics: &str) -> Option<(u64, i64)> {
    let (mut read, mut open, mut seen) = (0u64, 0i64, false);
    for line in metrics.lines() {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        if name.starts_with("driftwatch_events_total{") && name.contains(r#"outcome="read""#) {
            read += value.parse::<u64>().ok()?;
            seen = true;
        } else if name.starts_with("driftwatch_open_drift{") {
            open += value.parse::<i64>().ok()?;
        }
    }
    seen.then_some((read, open))
}

/// `GET /metrics` over plain HTTP/1.0.
pub(super) fn scrape(addr: &str) -> anyhow::Result<String> {
    let addr: std::net::SocketAddr = addr.parse()?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: driftwatch\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (_, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("not an HTTP response"))?;
    Ok(body.to_string())
}

/// A loopback port nothing listens on right now.
pub(super) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
