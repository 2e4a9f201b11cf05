//! `driftwatch run` with several specs: every entity in one job, on files or on Kafka.

use crate::cli::RunArgs;
use crate::run::EntityFiles;
use crate::spec;
use std::path::PathBuf;

/// Refuses the options that apply to one entity only.
fn refuse_single_entity_options(args: &RunArgs) -> anyhow::Result<()> {
    let given = [
        ("--source-file", !args.source_file.is_empty()),
        ("--target-file", !args.target_file.is_empty()),
        ("--source-topic", !args.source_topic.is_empty()),
        ("--target-topic", !args.target_topic.is_empty()),
        ("--drift-topic", args.drift_topic.is_some()),
        ("--corrections-topic", args.corrections_topic.is_some()),
        ("--dlq-topic", args.dlq_topic.is_some()),
    ];
    if let Some((flag, _)) = given.iter().find(|(_, on)| *on) {
        anyhow::bail!(
            "{flag} applies when one entity is given; with several, each spec names its own inputs and outputs"
        );
    }
    Ok(())
}

/// Runs every entity the specs name in one job.
pub(super) fn run(args: &RunArgs, kafka: crate::run::KafkaOptions) -> anyhow::Result<()> {
    refuse_single_entity_options(args)?;
    let specs = spec::load_all(&args.specs).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("{}", lines.join("; "))
    })?;
    let files =
        |s: &spec::Side| -> Vec<PathBuf> { s.input.files.iter().map(PathBuf::from).collect() };
    let with_files = specs
        .iter()
        .filter(|(_, s)| !s.source.input.files.is_empty() || !s.target.input.files.is_empty())
        .count();
    if with_files == 0 {
        let mut specs: Vec<spec::Spec> = specs.into_iter().map(|(_, s)| s).collect();
        if let Some(dir) = &args.checkpoint_dir {
            // One checkpoint covers every entity: the first spec's table (or the
            // default), in this directory, for all of them.
            super::set_checkpoint_dir(&mut specs[0], dir);
            let table = specs[0].checkpoint.clone();
            specs.iter_mut().for_each(|s| s.checkpoint = table.clone());
        }
        if let Some(b) = &args.brokers {
            specs
                .iter_mut()
                .for_each(|s| s.kafka.brokers = Some(b.clone()));
        }
        let report = crate::run::run_kafka_many(&specs, &args.cluster.cluster(), kafka)?;
        eprintln!("{}", report.summary());
        return Ok(());
    }
    if with_files < specs.len() {
        anyhow::bail!("some specs read files and some read Kafka: a job reads one or the other");
    }
    let mut entities = Vec::new();
    for (path, s) in specs {
        let (source, target) = (files(&s.source), files(&s.target));
        if source.is_empty() || target.is_empty() {
            anyhow::bail!(
                "{}: both sides need `input.files` when several entities run on files",
                path.display()
            );
        }
        entities.push(EntityFiles {
            spec: s,
            source,
            target,
        });
    }
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("out"));
    let report = crate::run::run_files_many(&entities, &args.cluster.cluster(), &out)?;
    eprintln!("{}", report.summary());
    eprintln!("outputs in {}", out.display());
    Ok(())
}
