//! The per-worker read loop: decode, stamp with event time, feed the dataflow, step it.
//!
//! Inputs are read so that their event times advance together: the partition furthest
//! behind is read first, and a partition more than `max_read_ahead` ahead of the
//! dataflow's frontier is not read. A late event (older than its partition's progress)
//! takes the partition's progress as its time, so the same input always yields the same
//! times, whatever the number of workers.

mod entity;

use super::checkpointer::{offset_entry, Checkpointer, Checkpoints, Rise, RiseLog};
use super::{Partition, Poll};
use crate::cdc::{Decoded, SideId};
use crate::checkpoint::state::WorkerState;
use crate::dataflow::sides::Sizes;
use crate::dataflow::stats::add;
use crate::dataflow::{self, DeadLetter, Output, Sink, Stats, Time};
use crate::spec::Spec;
use entity::Entity;
use std::sync::Arc;
use std::time::Duration;

struct PartState {
    /// The entity it feeds (an index into the job's entities).
    entity: usize,
    part: Box<dyn Partition>,
    progress: Time,
    done: bool,
    /// Whether the partition is ahead of the dataflow by more than the allowance (and
    /// not read).
    ahead: bool,
    /// Where its event time rose (kept only while checkpointing).
    rises: RiseLog,
}

/// Sizes of the state sampled during a run: `(messages read so far, sizes)`.
pub type SizeSamples = Vec<(u64, Sizes)>;

/// A rejected message: position, time, reason, key, value (cut), whether cut.
type Rejected = (u64, Time, String, Option<Vec<u8>>, Option<Vec<u8>>, bool);

/// Messages polled from one partition per round.
const BATCH: usize = 1024;

/// How often a worker publishes its partitions' lag and progress to the metrics.
const GAUGE_EVERY: Duration = Duration::from_secs(1);

/// Publishes the partitions' lag and event-time progress, and the output frontier.
fn publish_gauges(stats: &Stats, parts: &mut [PartState], frontier: Option<Time>) {
    if let Some(f) = frontier {
        stats
            .frontier_ms
            .store(f, std::sync::atomic::Ordering::Relaxed);
    }
    let mut gauges = Vec::new();
    for p in parts.iter_mut() {
        let errors = p.part.take_errors();
        if errors > 0 {
            add(&stats.kafka_errors, errors);
            stats
                .last_kafka_error_ms
                .store(super::now_ms(), std::sync::atomic::Ordering::Relaxed);
        }
        if let Some((topic, partition, lag)) = p.part.gauge() {
            let gauge = crate::dataflow::stats::PartitionGauge {
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

/// This worker's state at checkpoint time `b` (index and peers are filled in later):
/// every entity's, and every partition's resume position.
fn snapshot(b: Time, jobs: &[Job], entities: &[Entity], parts: &[PartState]) -> WorkerState {
    use crate::checkpoint::{state::EntityState, Bytes};
    let offsets = parts
        .iter()
        .filter_map(|p| {
            let (topic, partition) = p.part.topic_partition()?;
            let next = p.part.resume_position()?;
            Some(offset_entry(
                &topic,
                partition,
                p.rises.resume(b, next, p.progress),
            ))
        })
        .collect();
    let entities = jobs
        .iter()
        .zip(entities)
        .map(|(job, e)| {
            let [source_floor, target_floor] = e
                .state
                .sides
                .floors()
                .map(|f| f.map(|b| Bytes::from(&b[..])));
            let episodes = e.state.grace.snapshot();
            EntityState {
                name: Bytes::from(job.spec.entity.as_bytes()),
                keys: e.state.sides.snapshot(),
                episodes,
                source_floor,
                target_floor,
            }
        })
        .collect();
    WorkerState {
        time: b,
        index: 0,
        peers: 0,
        entities,
        offsets,
    }
}

/// Delivers everything the sink (worker 0's) has been given.
fn flush(sink: &dataflow::SharedSink) -> anyhow::Result<()> {
    match sink.borrow_mut().as_mut() {
        Some(s) => s.flush(),
        None => Ok(()),
    }
}

/// The longest a worker sleeps when none of its partitions has anything to read.
const IDLE_PARK: Duration = Duration::from_millis(20);

/// One entity's part of a job, as a worker runs it.
pub struct Job {
    /// The entity's spec.
    pub spec: Arc<Spec>,
    /// The entity's counters (the process's own when the job has one entity).
    pub stats: Arc<Stats>,
    /// Where its source's Connect schema is published (for connect-json corrections).
    pub schema: crate::cdc::RowSchema,
}

/// Builds each entity's dataflow on this worker, reads its partitions (each tagged with
/// its entity's index in `jobs`) to the end, and waits until every output is delivered.
/// `sinks` holds each entity's sink on worker 0. Returns samples of the state's size.
#[allow(clippy::too_many_arguments)] // the job's parts, as `run::execute` hands them over
pub fn run_worker(
    worker: &mut timely::worker::Worker,
    jobs: &[Job],
    parts: Vec<(usize, Box<dyn Partition>)>,
    stats: Arc<Stats>,
    sinks: Vec<Option<Box<dyn Sink>>>,
    sample_every: u64,
    checkpoints: Option<Arc<Checkpoints>>,
) -> anyhow::Result<SizeSamples> {
    let probe = timely::dataflow::ProbeHandle::new();
    let mut entities: Vec<Entity> = jobs
        .iter()
        .zip(sinks)
        .map(|(job, sink)| {
            Entity::build(
                worker,
                &job.spec,
                &job.stats,
                sink,
                &probe,
                job.schema.clone(),
            )
        })
        .collect();
    let mut parts: Vec<PartState> = parts
        .into_iter()
        .map(|(entity, part)| PartState {
            entity,
            part,
            progress: 0,
            done: false,
            ahead: false,
            rises: RiseLog::default(),
        })
        .collect();
    // Every entity of a job shares one `[checkpoint]` (see `run::kafka`).
    let checkpoint = jobs.first().and_then(|j| j.spec.checkpoint.clone());
    let mut checkpointer = match (&checkpoint, &checkpoints) {
        (Some(c), Some(k)) => {
            let start = k.restore.as_ref().map_or(0, |r| r.time);
            Some(Checkpointer::new(worker, c, start))
        }
        _ => None,
    };
    if let (Some(r), Some(_)) = (
        checkpoints.as_ref().and_then(|k| k.restore.as_ref()),
        &checkpoint,
    ) {
        let (index, peers) = (worker.index(), worker.peers());
        for (job, entity) in jobs.iter().zip(&entities) {
            r.apply(&job.spec.entity, index, peers, &entity.state)?;
        }
        for p in parts.iter_mut() {
            if let Some(progress) = p.part.topic_partition().and_then(|tp| r.progress(&tp)) {
                p.progress = progress;
            }
        }
    }
    let sizes = |entities: &[Entity]| {
        entities.iter().fold(Sizes::default(), |acc, e| {
            let s = e.sizes.sizes();
            Sizes {
                keys: acc.keys + s.keys,
                pending: acc.pending + s.pending,
            }
        })
    };
    let flush_all = |entities: &[Entity]| -> anyhow::Result<()> {
        entities.iter().try_for_each(|e| flush(&e.sink))
    };
    let logging = checkpointer.is_some();
    let mut samples = SizeSamples::new();
    let mut read_total = 0u64;
    let mut next_sample = sample_every;
    let mut rejected: Vec<Rejected> = Vec::new();
    let mut idle_rounds = 0u64;
    let mut gauges_at = std::time::Instant::now();
    loop {
        let frontier = probe.with_frontier(|f| f.first().copied());
        if gauges_at.elapsed() >= GAUGE_EVERY {
            gauges_at = std::time::Instant::now();
            publish_gauges(&stats, &mut parts, frontier);
        }
        if let Some(e) = jobs.iter().find_map(|j| j.stats.sink_error()) {
            anyhow::bail!("writing outputs failed: {e}");
        }
        if let Some(cause) = stats.worker_failure() {
            anyhow::bail!("{cause}");
        }
        // Partitions ahead of the dataflow by more than `max_read_ahead` are not read,
        // so a replay buffers read-ahead, not history. They are not paused either: a
        // Kafka partition's prefetch is bounded by its queue limits (see
        // `kafka::source`), and pausing dropped that prefetch, so every resume waited
        // for a new fetch (a 1,024-message batch of a replay moves a partition seconds
        // of event time, so nearly every batch paused it: the job read a broker at a
        // twentieth of its rate).
        for p in parts.iter_mut().filter(|p| !p.done) {
            let over = frontier.map_or(0, |f| p.progress.saturating_sub(f));
            p.ahead = over > entities[p.entity].ahead;
        }
        // The others, furthest behind first: read the first that has anything. Idle ones
        // may vouch for a later time (heartbeat).
        let mut order: Vec<usize> = (0..parts.len())
            .filter(|&i| !parts[i].done && !parts[i].ahead)
            .collect();
        order.sort_by_key(|&i| parts[i].progress);
        let mut worked = false;
        for i in order {
            let state = &mut parts[i];
            let side = state.part.side();
            let entity = &mut entities[state.entity];
            let (resolution, max_bytes) = (entity.resolution, entity.max_bytes);
            let versioned = entity.versioned;
            let decoder = &mut entity.decoders[side as usize];
            let handle = entity.changes[side as usize]
                .as_mut()
                .expect("a side with open partitions has an open input");
            let mut progress = state.progress;
            let (mut read, mut skipped, mut truncated) = (0u64, 0u64, 0u64);
            let mut non_row = [0u64; 4];
            let truncates = entity.truncates[side as usize]
                .as_mut()
                .expect("a side with open partitions has open truncates");
            let rises = &mut state.rises;
            let poll = state.part.poll(BATCH, &mut |msg, pos| {
                read += 1;
                // A change, a truncate or a heartbeat moves the partition to its time.
                let mut rise = |t: Time, progress: &mut Time| {
                    if logging && t > *progress {
                        rises.push(Rise {
                            time: t,
                            position: pos as i64,
                            restore: *progress,
                        });
                    }
                    *progress = (*progress).max(t);
                };
                match decoder.decode(msg) {
                    Ok(Decoded::Change(mut change)) => {
                        let t = change.time_ms.map_or(progress, |t| t - t % resolution);
                        rise(t, &mut progress);
                        if !versioned[side as usize] {
                            change.version = Some(crate::cdc::Version::Num(pos));
                        }
                        handle.send((change, progress));
                    }
                    Ok(Decoded::Truncate { version, time_ms }) => {
                        rise(time_ms - time_ms % resolution, &mut progress);
                        truncated += 1;
                        let version = version.filter(|_| versioned[side as usize]);
                        truncates.send((crate::cdc::Change::truncate(version, time_ms), progress));
                    }
                    Ok(Decoded::NonRow { kind, time_ms }) => {
                        non_row[kind as usize] += 1;
                        if let Some(t) = time_ms {
                            rise(t - t % resolution, &mut progress);
                        }
                    }
                    Ok(Decoded::Skip) => skipped += 1,
                    Err(e) => {
                        let value = msg.value.map(|v| v[..v.len().min(max_bytes)].to_vec());
                        let truncated = msg.value.is_some_and(|v| v.len() > max_bytes);
                        rejected.push((
                            pos,
                            progress,
                            e.0,
                            msg.key.map(<[u8]>::to_vec),
                            value,
                            truncated,
                        ));
                    }
                }
            })?;
            if poll == Poll::Idle {
                if let Some(t) = state.part.heartbeat() {
                    let t = t - t % resolution;
                    if logging && t > progress {
                        // Messages read next take this time: resume them with it.
                        let position = state.part.resume_position().unwrap_or(0);
                        state.rises.push(Rise {
                            time: t,
                            position,
                            restore: t,
                        });
                    }
                    progress = progress.max(t);
                }
            }
            state.progress = progress;
            let c = jobs[state.entity].stats.side(side);
            add(&c.read, read);
            add(&c.skipped, skipped);
            add(&c.truncates, truncated);
            for (counter, n) in c.non_row.iter().zip(non_row) {
                add(counter, n);
            }
            add(&c.rejected, rejected.len() as u64);
            read_total += read;
            if let Some(dead) = entity.dead.as_mut() {
                for (pos, time, reason, key, value, truncated) in rejected.drain(..) {
                    let letter = DeadLetter {
                        side,
                        origin: state.part.origin(pos),
                        reason,
                        key,
                        value,
                        truncated,
                    };
                    dead.send((Output::DeadLetter(letter), time));
                }
            }
            if poll == Poll::Done {
                state.done = true;
            }
            if read > 0 {
                worked = true;
                break;
            }
        }
        // Each input's time is the least progress of its open partitions.
        let hold = checkpointer.as_ref().map_or(Time::MAX, Checkpointer::hold);
        for (index, entity) in entities.iter_mut().enumerate() {
            let least = |side: Option<SideId>| {
                parts
                    .iter()
                    .filter(|p| p.entity == index && !p.done)
                    .filter(|p| side.is_none_or(|s| p.part.side() == s))
                    .map(|p| p.progress)
                    .min()
            };
            entity.advance(least, hold);
        }
        let least = |side: Option<SideId>| {
            parts
                .iter()
                .filter(|p| !p.done && side.is_none_or(|s| p.part.side() == s))
                .map(|p| p.progress)
                .min()
        };
        if let Some(c) = checkpointer.as_mut() {
            let all = least(None);
            let snap = |b| snapshot(b, jobs, &entities, &parts);
            if c.step(&probe, all, snap, || flush_all(&entities))? {
                let keep_from = c.hold();
                parts.iter_mut().for_each(|p| p.rises.trim(keep_from));
            }
        }
        if read_total >= next_sample {
            samples.push((read_total, sizes(&entities)));
            next_sample = read_total + sample_every;
        }
        if parts.iter().all(|p| p.done) {
            break;
        }
        if crate::shutdown::requested() {
            // Stop without ending time: drop the dataflow instead of draining it.
            for id in worker.installed_dataflows() {
                worker.drop_dataflow(id);
            }
            samples.push((read_total, sizes(&entities)));
            return Ok(samples);
        }
        if worked {
            idle_rounds = 0;
            worker.step();
        } else {
            // Nothing to read: back off up to IDLE_PARK so an idle job costs ~no CPU.
            idle_rounds = (idle_rounds + 1).min(64);
            let park = Duration::from_micros(500 * idle_rounds).min(IDLE_PARK);
            worker.step_or_park(Some(park));
        }
    }
    // Every partition is read. The inputs close, or, while checkpoints are taken, wait
    // at the boundary until the last one is settled (see `checkpointer`).
    if let Some(c) = checkpointer.as_mut() {
        c.finished();
    }
    loop {
        let hold = checkpointer.as_ref().map_or(Time::MAX, Checkpointer::hold);
        entities.iter_mut().for_each(|e| e.advance(|_| None, hold));
        if probe.done() {
            break;
        }
        if let Some(cause) = stats.worker_failure() {
            anyhow::bail!("{cause}");
        }
        if let Some(c) = checkpointer.as_mut() {
            let snap = |b| snapshot(b, jobs, &entities, &parts);
            c.step(&probe, None, snap, || flush_all(&entities))?;
        }
        worker.step_or_park(Some(Duration::from_millis(1)));
    }
    if let Some(c) = &checkpointer {
        if c.written > 0 {
            crate::dataflow::stats::add(&stats.checkpoints, c.written);
        }
    }
    if let Some(e) = jobs.iter().find_map(|j| j.stats.sink_error()) {
        anyhow::bail!("writing outputs failed: {e}");
    }
    samples.push((read_total, sizes(&entities)));
    Ok(samples)
}
