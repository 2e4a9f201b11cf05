//! One worker's life: build every entity's dataflow, restore, read until the inputs end
//! (or a stop is asked), then drain until every output is delivered.

use super::checkpoint::{Checkpointing, Checkpoints};
use super::entity::Entity;
use super::read::{Input, Inputs, Round};
use super::report::SizeSamples;
use super::{Halt, Job};
use crate::cdc::SideId;
use crate::dataflow::sides::Sizes;
use crate::dataflow::stats::{add, PartitionGauge};
use crate::dataflow::{Sink, Stats, Time};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use timely::dataflow::ProbeHandle;

/// What every worker of a process shares.
pub(super) struct Shared<'a> {
    /// The job's entities.
    pub(super) jobs: &'a [Job],
    /// The process's counters.
    pub(super) stats: &'a Stats,
    /// The first failure, which stops every worker.
    pub(super) halt: &'a std::sync::Arc<Halt>,
    /// Checkpoints to take, and the one to restore.
    pub(super) checkpoints: Option<&'a Checkpoints>,
    /// Sample the state's size every this many messages read.
    pub(super) sample_every: u64,
}

/// How often a worker publishes its partitions' lag and progress to the metrics.
const GAUGE_EVERY: Duration = Duration::from_secs(1);

/// The longest a worker sleeps when none of its partitions has anything to read.
const IDLE_PARK: Duration = Duration::from_millis(20);

/// Runs this worker: every entity's dataflow, fed from `parts` (each with the entities'
/// sides it feeds), outputs to `sinks` (each entity's, on worker 0). Returns samples of
/// the state's size.
pub(super) fn run(
    worker: &mut timely::worker::Worker,
    shared: &Shared<'_>,
    parts: Vec<crate::io::Routed>,
    sinks: Vec<Option<Box<dyn Sink>>>,
) -> anyhow::Result<SizeSamples> {
    let jobs = shared.jobs;
    let probes = crate::dataflow::Probes::default();
    let probe = &probes.outputs;
    let mut entities = build(worker, jobs, sinks, &probes, shared);
    let mut checkpointing = Checkpointing::new(worker, jobs, shared.checkpoints);
    let mut inputs = Inputs::new(parts, jobs, checkpointing.on());
    checkpointing.restore(worker, shared.checkpoints, jobs, &entities, &mut inputs)?;
    let mut sampler = Sampler::new(shared.sample_every);
    let mut gauges_at = Instant::now();
    let mut idle_rounds = 0u64;
    // Whether a round was held since the last read (the first held one steps without
    // parking; the rest park).
    let mut held = false;
    loop {
        let frontier = probe.with_frontier(|f| f.first().copied());
        if gauges_at.elapsed() >= GAUGE_EVERY {
            gauges_at = Instant::now();
            publish_gauges(shared.stats, &mut inputs.all, frontier);
        }
        shared.halt.check()?;
        let read_frontier = probes.inputs.with_frontier(|f| f.first().copied());
        let hold = checkpointing.hold();
        let round = inputs.read_next(read_frontier, hold, &mut entities, jobs, shared.stats)?;
        advance(&mut entities, &inputs, hold);
        checkpointing.step(probe, jobs, &entities, &mut inputs)?;
        sampler.sample(inputs.read_total, &entities);
        if inputs.all_done() {
            break;
        }
        if crate::shutdown::requested() {
            // Stop without ending time: drop the dataflow instead of draining it.
            for id in worker.installed_dataflows() {
                worker.drop_dataflow(id);
            }
            return Ok(sampler.finish(inputs.read_total, &entities));
        }
        // Held by the allowance: the frontier may only wait for this worker's own step
        // to pass on what it read (a worker alone parked here 231 times a run, though
        // one step moved the frontier on). Held again, it waits for the other workers,
        // whose progress wakes it.
        if round == Round::Read || (round == Round::Held && !held) {
            held = round == Round::Held;
            idle_rounds = 0;
            worker.step();
        } else {
            // Nothing to read: back off up to IDLE_PARK so an idle job costs ~no CPU.
            idle_rounds = (idle_rounds + 1).min(64);
            let park = Duration::from_micros(500 * idle_rounds).min(IDLE_PARK);
            worker.step_or_park(Some(park));
        }
    }
    drain(
        worker,
        shared,
        probe,
        &mut entities,
        &mut inputs,
        &mut checkpointing,
    )?;
    Ok(sampler.finish(inputs.read_total, &entities))
}

/// Builds every entity's dataflow on this worker, reporting progress to `probes`.
fn build(
    worker: &mut timely::worker::Worker,
    jobs: &[Job],
    sinks: Vec<Option<Box<dyn Sink>>>,
    probes: &crate::dataflow::Probes,
    shared: &Shared<'_>,
) -> Vec<Entity> {
    jobs.iter()
        .zip(sinks)
        .map(|(job, sink)| Entity::build(worker, job, sink, probes, shared.halt))
        .collect()
}

/// Moves each entity's inputs to the least progress of the partitions that feed them,
/// held at `hold` (the checkpoint boundary). One pass over the partitions: an idle job
/// of many entities does this at every wake-up.
fn advance(entities: &mut [Entity], inputs: &Inputs, hold: Time) {
    let mut least: Vec<[Option<Time>; 2]> = vec![[None; 2]; entities.len()];
    for p in inputs.all.iter().filter(|p| !p.done) {
        for r in &p.routes {
            let l = &mut least[r.entity][r.side as usize];
            *l = Some(l.map_or(p.progress, |t| t.min(p.progress)));
        }
    }
    for (entity, [source, target]) in entities.iter_mut().zip(least) {
        entity.advance(
            |side| match side {
                Some(SideId::Source) => source,
                Some(SideId::Target) => target,
                None => source.into_iter().chain(target).min(),
            },
            hold,
        );
    }
}

/// Every partition is read: the inputs close, or, while checkpoints are taken, wait at
/// the boundary until the last one is settled (see `checkpoint`). Returns once every
/// output is delivered.
fn drain(
    worker: &mut timely::worker::Worker,
    shared: &Shared<'_>,
    probe: &ProbeHandle<Time>,
    entities: &mut [Entity],
    inputs: &mut Inputs,
    checkpointing: &mut Checkpointing,
) -> anyhow::Result<()> {
    checkpointing.finished();
    loop {
        let hold = checkpointing.hold();
        entities.iter_mut().for_each(|e| e.advance(|_| None, hold));
        if probe.done() {
            break;
        }
        if let Some(cause) = shared.halt.worker_failure() {
            anyhow::bail!("{cause}");
        }
        checkpointing.step(probe, shared.jobs, entities, inputs)?;
        worker.step_or_park(Some(Duration::from_millis(1)));
    }
    if checkpointing.written() > 0 {
        add(&shared.stats.checkpoints, checkpointing.written());
    }
    shared.halt.check()
}

/// Samples the size of the state every so many messages read.
struct Sampler {
    every: u64,
    next: u64,
    samples: SizeSamples,
}

impl Sampler {
    fn new(every: u64) -> Self {
        Sampler {
            every,
            next: every,
            samples: SizeSamples::new(),
        }
    }

    fn sample(&mut self, read: u64, entities: &[Entity]) {
        if read >= self.next {
            self.samples.push((read, sizes(entities)));
            self.next = read.saturating_add(self.every);
        }
    }

    fn finish(mut self, read: u64, entities: &[Entity]) -> SizeSamples {
        self.samples.push((read, sizes(entities)));
        self.samples
    }
}

/// The keyed state's size over every entity.
fn sizes(entities: &[Entity]) -> Sizes {
    entities.iter().fold(Sizes::default(), |acc, e| {
        let s = e.sizes.sizes();
        Sizes {
            keys: acc.keys + s.keys,
            pending: acc.pending + s.pending,
        }
    })
}

/// Publishes the partitions' lag and event-time progress, and the output frontier.
fn publish_gauges(stats: &Stats, parts: &mut [Input], frontier: Option<Time>) {
    if let Some(f) = frontier {
        stats.frontier_ms.store(f, Relaxed);
    }
    let mut gauges = Vec::new();
    for p in parts.iter_mut() {
        let errors = p.part.take_errors();
        if errors > 0 {
            add(&stats.kafka_errors, errors);
            stats
                .last_kafka_error_ms
                .store(crate::io::now_ms(), Relaxed);
        }
        if let Some((topic, partition, lag)) = p.part.gauge() {
            let gauge = PartitionGauge {
                side: Some(p.part.side()),
                lag,
                progress_ms: p.progress,
            };
            gauges.push(((topic, partition), gauge));
        }
    }
    if !gauges.is_empty() {
        if let Ok(mut map) = stats.partitions.lock() {
            map.extend(gauges);
        }
    }
}
