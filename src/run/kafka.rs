//! A job on Kafka: every entity's input topics in, its output topics (created when
//! missing) out, in one cluster.

use super::{Cluster, FailedSink, KafkaOptions, Report};
use crate::dataflow::{Sink, Stats};
use crate::io::kafka::{admin, config::KafkaConfig, sink, source::KafkaInputs};
use crate::job::checkpoint::{self, Checkpoints};
use crate::job::{Halt, Job, Plan};
use crate::spec::Spec;
use std::sync::Arc;

/// Restores the newest checkpoint of the job (in `spec`'s `[checkpoint]`, which every
/// entity shares), adding its offsets to `inputs`' starts.
fn checkpoints(
    spec: &Spec,
    options: &KafkaOptions,
    inputs: &mut KafkaInputs,
) -> anyhow::Result<Option<Arc<Checkpoints>>> {
    let Some(c) = &spec.checkpoint else {
        return Ok(None);
    };
    let loaded = checkpoint::load(c, options.from_beginning, options.require_checkpoint)?;
    if let Some(r) = &loaded.restore {
        inputs
            .starts
            .extend(r.offsets().iter().map(|(k, v)| (k.clone(), *v)));
    }
    Ok(Some(Arc::new(loaded)))
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
    inputs.by_partition = co_partitioned_topics(specs, &inputs)?;
    let restored = checkpoints(&specs[0], &options, &mut inputs)?;
    if let Some(r) = restored.as_ref().and_then(|c| c.restore.as_ref()) {
        let entities: Vec<(&str, Vec<&str>)> = specs
            .iter()
            .map(|s| {
                let topics = s.source.input.topics.iter().chain(&s.target.input.topics);
                (s.entity.as_str(), topics.map(String::as_str).collect())
            })
            .collect();
        r.report_entities(&entities);
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
    let jobs: Vec<Job> = Job::of(specs, &stats);
    let halt = Arc::new(Halt::default());
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
    let parts: crate::job::PartitionFactory =
        Arc::new(move |index, peers| inputs.open_entities(index, peers));
    if let Some(addr) = &options.metrics_addr {
        let sources = crate::metrics::Sources {
            process: stats.clone(),
            entities: jobs
                .iter()
                .map(|j| (j.spec.entity.clone(), j.stats.clone()))
                .collect(),
            halt: halt.clone(),
        };
        let bound = crate::metrics::serve(addr, sources)?;
        eprintln!("metrics on http://{bound}/metrics");
    }
    let plan = Plan {
        jobs,
        parts,
        sinks: Some(sinks),
        sample_every: u64::MAX,
        stats,
        halt,
        checkpoints: restored,
    };
    crate::job::execute(plan, cluster)
}

/// Whether partitions are assigned by number (an entity declares its inputs
/// co-partitioned): partition `i` of every topic on one worker. Refuses what cannot be:
/// a co-partitioned entity's topics of different partition counts.
fn co_partitioned_topics(specs: &[Spec], inputs: &KafkaInputs) -> anyhow::Result<bool> {
    let mut any = false;
    for spec in specs.iter().filter(|s| s.co_partitioned) {
        any = true;
        let topics = spec
            .source
            .input
            .topics
            .iter()
            .chain(&spec.target.input.topics);
        let counts: Vec<(&String, usize)> = topics
            .map(|t| {
                (
                    t,
                    inputs.partitions.iter().filter(|p| &p.topic == t).count(),
                )
            })
            .collect();
        let Some(&(a, n)) = counts.first() else {
            continue;
        };
        if let Some((b, m)) = counts.iter().find(|(_, m)| *m != n) {
            anyhow::bail!(
                "entity {} declares co_partitioned, but topic {a} has {n} partitions and \
                 topic {b} {m}: co-partitioned topics have the same number of partitions",
                spec.entity
            );
        }
    }
    Ok(any)
}
