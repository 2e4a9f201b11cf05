//! A benchmark's Apache Kafka broker (`scripts/broker`) on a free port, stopped on drop;
//! and the CPU a job process has used.

use std::path::Path;
use std::process::Command;

pub struct Broker {
    port: u16,
    /// `None`: a broker the bench did not start (`--brokers`), left running.
    dir: Option<tempfile::TempDir>,
}

impl Broker {
    /// Starts a broker on a free port; it answers metadata requests once this returns.
    pub fn start() -> anyhow::Result<Broker> {
        let broker = Broker {
            port: std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port(),
            dir: Some(tempfile::tempdir()?),
        };
        broker.script("start")?;
        Ok(broker)
    }

    /// A running broker at `addr`, left running.
    #[allow(dead_code)]
    pub fn existing(addr: &str) -> anyhow::Result<Broker> {
        Ok(Broker {
            port: addr.rsplit(':').next().unwrap_or_default().parse()?,
            dir: None,
        })
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn script(&self, verb: &str) -> anyhow::Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/broker");
        let out = Command::new("bash")
            .arg(script)
            .args([verb, &self.port.to_string()])
            .arg(dir.path())
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "scripts/broker {verb}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.script("stop");
    }
}

/// The CPU time process `pid` has used, user and system, in clock ticks (1/100 s).
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}
