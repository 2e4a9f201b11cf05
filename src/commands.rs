//! The commands: each resolves its command line into domain values once, then runs.
//! Nothing below this layer sees clap.

mod loadtest;
mod many;

use crate::cli::RunArgs;
use crate::spec::{self, Spec};
use std::path::PathBuf;

/// `driftwatch validate SPEC…`: every problem of every spec at once, or the resolved
/// configuration (of a single spec; with several, their entities).
pub fn validate(paths: &[PathBuf]) -> anyhow::Result<()> {
    match spec::load_all(paths) {
        Ok(specs) => {
            if let [(path, spec)] = specs.as_slice() {
                println!("{} is valid. Resolved configuration:\n", path.display());
                print!("{}", toml::to_string_pretty(&resolved(spec))?);
            } else {
                for (path, spec) in &specs {
                    println!("{}: entity `{}` is valid", path.display(), spec.entity);
                }
                println!("{} specs can run together in one job", specs.len());
            }
            Ok(())
        }
        Err(errors) => {
            let mut count = 0;
            for e in &errors {
                for p in &e.problems {
                    eprintln!("{}: {p}", e.file.display());
                    count += 1;
                }
            }
            anyhow::bail!("{count} problem(s) in {} spec file(s)", errors.len())
        }
    }
}

/// `driftwatch demo`.
pub fn demo(args: &crate::cli::DemoArgs) -> anyhow::Result<()> {
    crate::demo::run(&crate::demo::Options {
        events: args.events,
        keys: args.keys,
        seed: args.seed,
        rate: args.rate,
        show: args.show,
        cluster: args.cluster.cluster(),
    })
}

/// `driftwatch loadtest`.
pub fn loadtest(args: &crate::cli::LoadtestArgs) -> anyhow::Result<()> {
    crate::loadtest::run(&loadtest::options(args)?)
}

/// `driftwatch report`.
pub fn report(args: &crate::cli::ReportArgs) -> anyhow::Result<()> {
    crate::report::report(&report_options(args)?)
}

/// Resolves `driftwatch report`'s command line: the specs (files or directories) name
/// the drift topics, unless `--drift-topic` names them.
fn report_options(args: &crate::cli::ReportArgs) -> anyhow::Result<crate::report::Options> {
    let specs = crate::spec::load_all(&args.specs).map_err(|errors| {
        let first = &errors[0];
        anyhow::anyhow!("{first}")
    })?;
    let (_, first) = &specs[0];
    let config = crate::io::kafka::config::KafkaConfig::new(first, args.brokers.as_deref())?;
    let topics = if args.drift_topic.is_empty() {
        specs.iter().map(|(_, s)| s.drift_topic()).collect()
    } else {
        args.drift_topic.clone()
    };
    Ok(crate::report::Options {
        config,
        topics,
        top: args.top,
        json: args.format == crate::cli::ReportFormat::Json,
        follow: args.follow,
    })
}

/// `driftwatch init`: one spec per pair of topics, and what was left out.
pub fn init(args: &crate::cli::InitArgs) -> anyhow::Result<()> {
    let samples = match (&args.brokers, &args.from_files) {
        (_, Some(dir)) => crate::init::Samples::Files(dir.clone()),
        (Some(b), None) => crate::init::Samples::Kafka {
            brokers: b.clone(),
            properties: init_properties(&args.properties)?,
        },
        (None, None) => anyhow::bail!("give --brokers HOST:PORT or --from-files DIR"),
    };
    if args.source_prefix == args.target_prefix {
        anyhow::bail!(
            "--source-prefix and --target-prefix are both `{}`: give the target's own prefix",
            args.source_prefix
        );
    }
    let outcome = crate::init::run(&crate::init::Options {
        samples,
        source_prefix: args.source_prefix.clone(),
        target_prefix: args.target_prefix.clone(),
        out: args.out.clone(),
        force: args.force,
    })?;
    for path in &outcome.written {
        println!("wrote {}", path.display());
    }
    for topic in &outcome.unpaired {
        println!("unpaired: {topic}");
    }
    for pair in &outcome.unsampled {
        println!("no row change to learn from: {pair}");
    }
    println!(
        "{} spec(s) written, {} topic(s) unpaired, {} pair(s) without a sample",
        outcome.written.len(),
        outcome.unpaired.len(),
        outcome.unsampled.len()
    );
    Ok(())
}

/// `init`'s `-X NAME=VALUE` properties; a secret must come from the environment.
fn init_properties(given: &[String]) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    for p in given {
        let Some((name, value)) = p.split_once('=').filter(|(n, _)| !n.trim().is_empty()) else {
            anyhow::bail!("-X/--property takes NAME=VALUE, e.g. -X security.protocol=SASL_SSL");
        };
        let name = name.trim();
        let from_env = value.starts_with("${") && value.ends_with('}');
        if is_secret(name) && !from_env {
            anyhow::bail!(
                "-X {name}: give a secret as ${{VAR}} (quoted: -X '{name}=${{KAFKA_PASSWORD}}'), read from the environment, so the specs init writes never hold it"
            );
        }
        if name == "bootstrap.servers" {
            anyhow::bail!("-X bootstrap.servers: give --brokers instead");
        }
        out.insert(name.to_string(), value.to_string());
    }
    Ok(out)
}

/// Whether a client property holds a secret, so it is never printed.
fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "secret", "jaas", "key"]
        .iter()
        .any(|word| name.contains(word))
}

/// The spec with every default filled in (topic names included) and every secret
/// property masked.
fn resolved(spec: &Spec) -> Spec {
    let mut s = spec.clone();
    for (name, value) in s.kafka.properties.iter_mut() {
        if is_secret(name) {
            *value = "********".into();
        }
    }
    s.outputs.drift_topic = Some(spec.drift_topic());
    s.outputs.corrections_topic = Some(spec.corrections_topic());
    s.outputs.dlq_topic = Some(spec.dlq_topic());
    s
}

/// Checkpoints `spec` in `dir` (`--checkpoint-dir`), with the default table if it has none.
fn set_checkpoint_dir(spec: &mut spec::Spec, dir: &std::path::Path) {
    let c = spec
        .checkpoint
        .get_or_insert_with(|| crate::spec::Checkpoint {
            dir: String::new(),
            interval: crate::spec::Duration::from_millis(10_000),
            min_wall_interval: crate::spec::Duration::from_millis(10_000),
            keep: 2,
        });
    c.dir = dir.display().to_string();
}

/// The Kafka-mode options of `run`'s command line.
fn kafka_options(args: &RunArgs) -> crate::run::KafkaOptions {
    let starts = if args.from_beginning {
        Default::default()
    } else {
        args.start_offset
            .iter()
            .map(|(t, p, o)| ((t.clone(), *p), *o))
            .collect()
    };
    crate::run::KafkaOptions {
        starts,
        stop_at_end: args.stop_at_end,
        metrics_addr: args.metrics_addr.clone(),
        from_beginning: args.from_beginning,
        require_checkpoint: args.require_checkpoint,
    }
}

/// `driftwatch run SPEC…`: file mode when files are given (here or in the spec), else
/// Kafka.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    // A panic anywhere (a lost peer process, a bug) ends the job with one line.
    crate::job::halt::install_panic_hook();
    let paths = spec::spec_files(&args.specs)?;
    if paths.len() > 1 {
        return many::run(&args, kafka_options(&args));
    }
    let mut spec = spec::load(&paths[0])?;
    let files = |cli: &[PathBuf], side: &spec::Side| -> Vec<PathBuf> {
        if cli.is_empty() {
            side.input.files.iter().map(PathBuf::from).collect()
        } else {
            cli.to_vec()
        }
    };
    let source = files(&args.source_file, &spec.source);
    let target = files(&args.target_file, &spec.target);
    let cluster = args.cluster.cluster();
    if source.is_empty() != target.is_empty() {
        let (with, without) = if source.is_empty() {
            ("target", "source")
        } else {
            ("source", "target")
        };
        anyhow::bail!("the {with} reads files but the {without} does not: give --{without}-file PATH too (mixing files and Kafka is not supported)");
    }
    if !source.is_empty() {
        let out = args
            .out
            .clone()
            .or_else(|| spec.outputs.dir.as_ref().map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("out").join(&spec.entity));
        let report = crate::run::run_files(&spec, &cluster, source, target, &out)?;
        eprintln!("{}", report.summary());
        eprintln!("outputs in {}", out.display());
        return Ok(());
    }
    if !args.source_topic.is_empty() {
        spec.source.input.topics = args.source_topic.clone();
    }
    if !args.target_topic.is_empty() {
        spec.target.input.topics = args.target_topic.clone();
    }
    for (slot, value) in [
        (&mut spec.outputs.drift_topic, &args.drift_topic),
        (&mut spec.outputs.corrections_topic, &args.corrections_topic),
        (&mut spec.outputs.dlq_topic, &args.dlq_topic),
    ] {
        if value.is_some() {
            slot.clone_from(value);
        }
    }
    if let Some(b) = &args.brokers {
        spec.kafka.brokers = Some(b.clone());
    }
    if let Some(dir) = &args.checkpoint_dir {
        set_checkpoint_dir(&mut spec, dir);
    }
    for (name, side) in [("source", &spec.source), ("target", &spec.target)] {
        if side.input.topics.is_empty() {
            anyhow::bail!(
                "the {name} has no input: give --{name}-topic TOPIC or --{name}-file PATH"
            );
        }
    }
    let report = crate::run::run_kafka(&spec, &cluster, kafka_options(&args))?;
    eprintln!("{}", report.summary());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_masks_every_secret_property() {
        let mut spec = spec::load_str(crate::demo::ORDERS_SPEC).unwrap();
        for (name, value) in [
            ("sasl.password", "hunter2"),
            ("sasl.jaas.config", "org.apache... password=\"hunter2\";"),
            ("ssl.key.password", "hunter2"),
            ("ssl.keystore.key", "-----BEGIN hunter2"),
            ("sasl.oauthbearer.client.secret", "hunter2"),
            ("sasl.username", "driftwatch"),
            ("security.protocol", "SASL_SSL"),
        ] {
            spec.kafka.properties.insert(name.into(), value.into());
        }
        let shown = toml::to_string_pretty(&resolved(&spec)).unwrap();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(shown.matches("\"********\"").count(), 5, "{shown}");
        assert!(
            shown.contains("driftwatch") && shown.contains("SASL_SSL"),
            "{shown}"
        );
    }
}
