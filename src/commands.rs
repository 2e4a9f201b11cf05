//! The `run` and `validate` commands.

use crate::cli::RunArgs;
use crate::spec::{self, Spec};
use std::path::{Path, PathBuf};

/// `driftwatch validate SPEC`: every problem at once, or the resolved configuration.
pub fn validate(path: &Path) -> anyhow::Result<()> {
    match spec::load(path) {
        Ok(spec) => {
            println!("{} is valid. Resolved configuration:\n", path.display());
            print!("{}", toml::to_string_pretty(&resolved(&spec))?);
            Ok(())
        }
        Err(e) => {
            for p in &e.problems {
                eprintln!("{}: {p}", path.display());
            }
            anyhow::bail!("{} has {} problem(s)", path.display(), e.problems.len())
        }
    }
}

/// The spec with every default filled in (topic names included).
fn resolved(spec: &Spec) -> Spec {
    let mut s = spec.clone();
    s.outputs.drift_topic = Some(spec.drift_topic());
    s.outputs.corrections_topic = Some(spec.corrections_topic());
    s.outputs.dlq_topic = Some(spec.dlq_topic());
    s
}

/// `driftwatch run SPEC`.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let spec = spec::load(&args.spec)?;
    let pick = |cli: &[PathBuf], side: &spec::Side, name: &str| -> anyhow::Result<Vec<PathBuf>> {
        if !cli.is_empty() {
            return Ok(cli.to_vec());
        }
        if !side.input.files.is_empty() {
            return Ok(side.input.files.iter().map(PathBuf::from).collect());
        }
        anyhow::bail!("the {name} reads Kafka topics {:?}, which this build cannot consume yet: give --{name}-file PATH to run over a dump", side.input.topics)
    };
    let source = pick(&args.source_file, &spec.source, "source")?;
    let target = pick(&args.target_file, &spec.target, "target")?;
    let out = args
        .out
        .clone()
        .or_else(|| spec.outputs.dir.as_ref().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("out").join(&spec.entity));
    let report = crate::run::run_files(&spec, &args.cluster.cluster(), source, target, &out)?;
    eprintln!("{}", report.summary());
    eprintln!("outputs in {}", out.display());
    Ok(())
}
