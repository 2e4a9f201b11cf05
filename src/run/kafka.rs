//! A job on Kafka: every entity's input topics in, its output topics (created when
//! missing) out, in one cluster.

use super::{execute_entities, Cluster, EntityPartitionFactory, FailedSink, KafkaOptions, Report};
use crate::dataflow::{Sink, Stats};
use crate::io::driver::Job;
use crate::io::kafka::{admin, config::KafkaConfig, sink, source::KafkaInputs};
use crate::spec::Spec;
use std::sync::Arc;

/// Restores the newest checkpoint of the job (in `spec`'s `[checkpoint]`, which every
/// entity shares), adding its offsets to `inputs`' starts.
fn checkpoints(
    spec: &Spec,
    options: &KafkaOptions,
    inputs: &mut KafkaInputs,
) -> anyhow::Result<Option<Arc<crate::io::checkpointer::Checkpoints>>> {
    let Some(c) = &spec.checkpoint else {
        return Ok(None);
    };
    let store = crate::checkpoint::store::Store::new(&c.dir);
    let loaded = if options.from_beginning {
        None
    } else {
        match store.load_newest() {
            Ok(found) => found,
            Err(e) if options.require_checkpoint => {
                return Err(e.context("--require-checkpoint: not replaying"))
            }
            Err(e) => {
                eprintln!("driftwatch: {e:#}; replaying from the earliest offsets instead");
                None
            }
        }
    };
    let restore = loaded
        .map(crate::io::checkpointer::Restore::new)
        .transpose()?;
    if let Some(r) = &restore {
        eprintln!(
            "resuming from the checkpoint at event time {} in {}",
            crate::row::format_timestamp(r.time as i64 * 1_000_000),
            store.dir().display()
        );
        inputs
            .starts
            .extend(r.offsets().iter().map(|(k, v)| (k.clone(), *v)));
    }
    Ok(Some(Arc::new(crate::io::checkpointer::Checkpoints {
        restore,
    })))
}

/// Creates every entity's output topics that are missing, in one request (a job of
/// many entities would otherwise make an admin client per entity).
fn ensure_outputs(
    config: &KafkaConfig,
    specs: &[Spec],
    topics: &[sink::OutputTopics],
) -> anyhow::Result<()> {
    let mut all = Vec::new();
    for (spec, topics) in specs.iter().zip(topics) {
        let partitions = spec.outputs.partitions as i32;
        let out = |name, compact| admin::OutputTopic {
            name,
            partitions,
            compact,
        };
        all.extend([
            out(&topics.drift, true),
            out(&topics.corrections, true),
            out(&topics.dlq, false),
        ]);
    }
    admin::ensure_topics(config, &all)
}

/// Runs `specs` (one entity each) on Kafka in one cluster. Runs until SIGINT/SIGTERM, or
/// with `stop_at_end` until the inputs' ends. One checkpoint covers every entity.
pub fn run_many(
    specs: &[Spec],
    cluster: &Cluster,
    options: KafkaOptions,
) -> anyhow::Result<Report> {
    anyhow::ensure!(!specs.is_empty(), "no entity to run");
    if specs.len() > 1 {
        // One checkpoint covers every entity of the job: they must agree on it.
        let table = |s: &Spec| s.checkpoint.as_ref().map(toml::to_string).transpose();
        let first = table(&specs[0])?;
        for s in &specs[1..] {
            if table(s)? != first {
                anyhow::bail!(
                    "{}: its [checkpoint] differs from {}'s; the entities of one job share one checkpoint (or give --checkpoint-dir, which applies the first spec's table to all)",
                    s.entity,
                    specs[0].entity
                );
            }
        }
        let mut readers = std::collections::BTreeMap::new();
        for s in specs {
            for t in s.source.input.topics.iter().chain(&s.target.input.topics) {
                if let Some(other) = readers.insert(t.clone(), s.entity.clone()) {
                    anyhow::bail!("topic {t} is read by {other} and {}: entities of one job read their own topics for now", s.entity);
                }
            }
        }
    }
    let configs = specs
        .iter()
        .map(|s| KafkaConfig::new(s, None))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let stats = Arc::new(Stats::default());
    // One set of consumers reads every entity's partitions: the entities must reach
    // their cluster the same way. Offsets are committed under the first entity's group.
    if let Some((s, _)) = specs
        .iter()
        .zip(&configs)
        .find(|(_, c)| !c.same_client(&configs[0]))
    {
        anyhow::bail!(
            "{}: its [kafka] brokers or properties differ from {}'s; the entities of one job read one Kafka cluster with one set of settings",
            s.entity,
            specs[0].entity
        );
    }
    let sides: Vec<(&[String], &[String], u64)> = specs
        .iter()
        .map(|s| {
            (
                s.source.input.topics.as_slice(),
                s.target.input.topics.as_slice(),
                s.kafka.clock_skew.as_millis(),
            )
        })
        .collect();
    let mut inputs = KafkaInputs::discover_entities(configs[0].clone(), &sides)?;
    inputs.starts = options.starts.clone();
    let restored = checkpoints(&specs[0], &options, &mut inputs)?;
    if let Some(r) = restored.as_ref().and_then(|c| c.restore.as_ref()) {
        let held = r.entities();
        for s in specs.iter().filter(|s| !held.contains(&s.entity)) {
            eprintln!(
                "driftwatch: entity {} is new since the checkpoint: it starts from the earliest offsets (or --start-offset)",
                s.entity
            );
        }
        for name in held
            .iter()
            .filter(|n| !specs.iter().any(|s| &s.entity == *n))
        {
            eprintln!("driftwatch: entity {name} is in the checkpoint but not in this job: its state is dropped");
        }
    }
    inputs.stop_at_end = options.stop_at_end;
    let topics: Vec<sink::OutputTopics> = specs
        .iter()
        .map(|s| sink::OutputTopics {
            drift: s.drift_topic(),
            corrections: s.corrections_topic(),
            dlq: s.dlq_topic(),
        })
        .collect();
    if cluster.process == 0 {
        // The entities share their Kafka settings (checked above).
        ensure_outputs(&configs[0], specs, &topics)?;
    }
    crate::shutdown::install()?;
    let jobs: Vec<Job> = super::jobs_of(specs, &stats);
    let sink_specs: Vec<Spec> = specs.to_vec();
    let schemas: Vec<crate::cdc::RowSchema> = jobs.iter().map(|j| j.schema.clone()).collect();
    // One producer for every entity's outputs (entities share their Kafka settings),
    // made when worker 0 makes its first sink.
    let producer = std::sync::OnceLock::new();
    let sinks = Arc::new(move |e: usize| {
        let made = producer
            .get_or_init(|| sink::SharedProducer::new(&configs[0]).map_err(|e| format!("{e:#}")));
        match made {
            Ok(p) => Box::new(sink::KafkaSink::new(
                p,
                &sink_specs[e],
                topics[e].clone(),
                schemas[e].clone(),
            )) as Box<dyn Sink>,
            Err(e) => Box::new(FailedSink(e.clone())),
        }
    });
    let inputs = Arc::new(inputs);
    let parts: EntityPartitionFactory =
        Arc::new(move |index, peers| inputs.open_entities(index, peers));
    if let Some(addr) = &options.metrics_addr {
        let sources = crate::metrics::Sources {
            process: stats.clone(),
            entities: jobs
                .iter()
                .map(|j| (j.spec.entity.clone(), j.stats.clone()))
                .collect(),
        };
        let bound = crate::metrics::serve(addr, sources)?;
        eprintln!("metrics on http://{bound}/metrics");
    }
    execute_entities(jobs, cluster, parts, Some(sinks), u64::MAX, stats, restored)
}
