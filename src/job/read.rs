//! The read loop's parts: which partition to read next, and one batch of it decoded,
//! stamped with event time and routed to the entities that take it.
//!
//! Inputs are read so that their event times advance together: the partition furthest
//! behind is read first, and a partition more than `max_read_ahead` ahead of the
//! frontier of every worker's inputs (`dataflow::Probes::inputs`) is not read, once it
//! has read [`SLACK`] batches the frontier has not passed (or reached the checkpoint
//! boundary the inputs wait at). A late
//! event (older than its partition's progress) takes the partition's progress as its
//! time, so the same input always yields the same times, whatever the number of
//! workers.

use super::checkpoint::{Rise, RiseLog};
use super::entity::Entity;
use super::select::{Selector, Unreadable};
use super::Job;
use crate::cdc::{Decoded, Message, SideId};
use crate::dataflow::stats::add;
use crate::dataflow::{DeadLetter, Output, Stats, Time};
use crate::io::{Partition, Poll, Route};
use std::collections::VecDeque;

/// Messages polled from one partition per round.
const BATCH: usize = 1024;

/// How many batches a partition may read past its allowance: a batch can span more
/// event time than the allowance (1,024 messages of a sparse partition, seconds), and
/// then each worker waited for the others' progress at every batch or two: two
/// co-partitioned workers sat idle for 4–14% of a run (BENCHMARKS.md, issue 14). The
/// read-ahead stays bounded, by these batches' messages.
const SLACK: usize = 4;

/// A partition's batches that the inputs' frontier has not passed: the progress each
/// ended at, oldest first, at most [`SLACK`].
#[derive(Default)]
struct Ahead(VecDeque<Time>);

impl Ahead {
    /// Whether a partition at `progress` may read another batch: it is within
    /// `allowance` of `frontier` (none yet: it is), or fewer than [`SLACK`] of its
    /// batches are past the frontier and it is short of `hold` (the checkpoint
    /// boundary the inputs wait at: a partition beyond it moved the next boundary on
    /// with it, and the slack skipped most checkpoints of a short interval).
    fn may_read(
        &mut self,
        progress: Time,
        frontier: Option<Time>,
        allowance: Time,
        hold: Time,
    ) -> bool {
        let Some(f) = frontier else { return true };
        while self.0.front().is_some_and(|&t| t < f) {
            self.0.pop_front();
        }
        progress.saturating_sub(f) <= allowance || (self.0.len() < SLACK && progress < hold)
    }

    /// A batch was read, up to `progress`.
    fn read(&mut self, progress: Time) {
        if self.0.len() == SLACK {
            self.0.pop_front();
        }
        self.0.push_back(progress);
    }
}

/// What a round of the read loop did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Round {
    /// It read a batch.
    Read,
    /// Nothing: a partition with more to read is held by the read-ahead allowance.
    Held,
    /// Nothing: no partition it may read has anything.
    Idle,
}

/// One partition as the read loop keeps it.
pub(super) struct Input {
    /// The entities' sides it feeds.
    pub(super) routes: Vec<Route>,
    /// Which routes take a message, when some select.
    selector: Option<Selector>,
    pub(super) part: Box<dyn Partition>,
    /// Its event-time progress: the latest time it has vouched for.
    pub(super) progress: Time,
    pub(super) done: bool,
    /// How far it may run ahead of the dataflow (its entities' least allowance).
    allowance: Time,
    /// Its batches the frontier has not passed.
    ahead: Ahead,
    /// Event times round down to a multiple of this (its entities' least resolution).
    resolution: Time,
    /// Where its event time rose (kept only while checkpointing).
    pub(super) rises: RiseLog,
}

/// A rejected message: route, position, time, reason, key, value (cut), whether cut.
type Rejected = (
    usize,
    u64,
    Time,
    String,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    bool,
);

/// What one route took from a batch.
#[derive(Default, Clone, Copy)]
struct Tally {
    read: u64,
    skipped: u64,
    truncated: u64,
    non_row: [u64; 4],
    rejected: u64,
}

/// A worker's partitions, and the buffers reused from one batch to the next.
pub(super) struct Inputs {
    pub(super) all: Vec<Input>,
    /// Whether rises are logged (checkpoints are taken).
    logging: bool,
    rejected: Vec<Rejected>,
    taken: Vec<bool>,
    chosen: Vec<usize>,
    tallies: Vec<Tally>,
    /// Messages read so far.
    pub(super) read_total: u64,
}

impl Inputs {
    /// The partitions `parts`, routed to `jobs`' entities.
    pub(super) fn new(parts: Vec<crate::io::Routed>, jobs: &[Job], logging: bool) -> Self {
        let all = parts
            .into_iter()
            .map(|(routes, part)| {
                let selects: Vec<_> = routes
                    .iter()
                    .map(|r| &jobs[r.entity].spec.side(r.side).select)
                    .collect();
                let spec = |r: &Route| &jobs[r.entity].spec;
                let least = |f: &dyn Fn(&Route) -> Time| routes.iter().map(f).min().unwrap_or(0);
                Input {
                    selector: Selector::new(&selects),
                    allowance: least(&|r| spec(r).max_read_ahead.as_millis()),
                    resolution: least(&|r| spec(r).time_resolution.as_millis().max(1)),
                    routes,
                    part,
                    progress: 0,
                    ahead: Ahead::default(),
                    done: false,
                    rises: RiseLog::default(),
                }
            })
            .collect();
        Inputs {
            all,
            logging,
            rejected: Vec::new(),
            taken: Vec::new(),
            chosen: Vec::new(),
            tallies: Vec::new(),
            read_total: 0,
        }
    }

    /// The least progress of the open partitions; `None` when none is open.
    pub(super) fn least(&self) -> Option<Time> {
        self.all
            .iter()
            .filter(|p| !p.done)
            .map(|p| p.progress)
            .min()
    }

    /// Whether every partition is read to its end.
    pub(super) fn all_done(&self) -> bool {
        self.all.iter().all(|p| p.done)
    }

    /// Reads one batch of the partition furthest behind that has anything and is not
    /// too far ahead of the inputs' `frontier` (idle ones may vouch for a later time:
    /// heartbeats), its slack only short of `hold`. Returns what the round did: read,
    /// held by the allowance, or idle.
    ///
    /// A partition ahead is not read, so a replay buffers read-ahead, not history. It is
    /// not paused either: a Kafka partition's prefetch is bounded by its queue limits
    /// (see `kafka::source`), and pausing dropped that prefetch, so every resume waited
    /// for a new fetch (a 1,024-message batch of a replay moves a partition seconds of
    /// event time, so nearly every batch paused it: the job read a broker at a
    /// twentieth of its rate).
    pub(super) fn read_next(
        &mut self,
        frontier: Option<Time>,
        hold: Time,
        entities: &mut [Entity],
        jobs: &[Job],
        stats: &Stats,
    ) -> anyhow::Result<Round> {
        let mut held = false;
        let mut order: Vec<usize> = Vec::new();
        for (i, p) in self.all.iter_mut().enumerate().filter(|(_, p)| !p.done) {
            if p.ahead.may_read(p.progress, frontier, p.allowance, hold) {
                order.push(i);
            } else {
                held = true;
            }
        }
        order.sort_by_key(|&i| self.all[i].progress);
        for i in order {
            let read = self.read_batch(i, entities, jobs, stats)?;
            self.read_total += read;
            if read > 0 {
                return Ok(Round::Read);
            }
        }
        Ok(if held { Round::Held } else { Round::Idle })
    }

    /// Reads up to a batch of partition `i`, feeding every entity that takes a message.
    fn read_batch(
        &mut self,
        i: usize,
        entities: &mut [Entity],
        jobs: &[Job],
        stats: &Stats,
    ) -> anyhow::Result<u64> {
        let Inputs {
            all,
            logging,
            rejected,
            taken,
            chosen,
            tallies,
            ..
        } = self;
        let input = &mut all[i];
        let (routes, selector, rises) = (&input.routes, &input.selector, &mut input.rises);
        tallies.clear();
        tallies.resize(routes.len(), Tally::default());
        let mut progress = input.progress;
        let (mut read, mut unselected) = (0u64, 0u64);
        let poll = input.part.poll(BATCH, &mut |msg, pos| {
            read += 1;
            chosen.clear();
            match selector {
                None => chosen.extend(0..routes.len()),
                Some(s) => match s.select(msg.value, taken) {
                    Ok(()) => chosen.extend((0..routes.len()).filter(|&r| taken[r])),
                    Err(Unreadable(reason)) => {
                        // No reader can tell it is theirs: the first keeps it.
                        let entity = &entities[routes[0].entity];
                        tallies[0].rejected += 1;
                        rejected.push(reject(0, msg, pos, progress, reason, entity.max_bytes));
                        return;
                    }
                },
            }
            if chosen.is_empty() {
                unselected += 1;
            }
            for &r in chosen.iter() {
                let mut rise = |t: Time, progress: &mut Time| {
                    if *logging && t > *progress {
                        rises.push(Rise {
                            time: t,
                            position: pos as i64,
                            restore: *progress,
                        });
                    }
                    *progress = (*progress).max(t);
                };
                let feed = Feed {
                    route: r,
                    side: routes[r].side,
                    tally: &mut tallies[r],
                    rejected,
                };
                feed.decode(
                    &mut entities[routes[r].entity],
                    msg,
                    pos,
                    &mut progress,
                    &mut rise,
                );
            }
        })?;
        if poll == Poll::Idle {
            if let Some(t) = input.part.heartbeat() {
                let t = t - t % input.resolution;
                if self.logging && t > progress {
                    // Messages read next take this time: resume them with it.
                    let position = input.part.resume_position().unwrap_or(0);
                    input.rises.push(Rise {
                        time: t,
                        position,
                        restore: t,
                    });
                }
                progress = progress.max(t);
            }
        }
        if read > 0 {
            input.ahead.read(progress);
        }
        input.progress = progress;
        if poll == Poll::Done {
            input.done = true;
        }
        add(&stats.unselected, unselected);
        for (route, tally) in input.routes.iter().zip(tallies.iter()) {
            let c = jobs[route.entity].stats.side(route.side);
            add(&c.read, tally.read);
            add(&c.skipped, tally.skipped);
            add(&c.truncates, tally.truncated);
            for (counter, n) in c.non_row.iter().zip(tally.non_row) {
                add(counter, n);
            }
            add(&c.rejected, tally.rejected);
        }
        for (r, pos, time, reason, key, value, truncated) in rejected.drain(..) {
            let route = input.routes[r];
            if let Some(dead) = entities[route.entity].dead.as_mut() {
                let letter = DeadLetter {
                    side: route.side,
                    origin: input.part.origin(pos),
                    reason,
                    key,
                    value,
                    truncated,
                };
                dead.send((Output::DeadLetter(letter), time));
            }
        }
        Ok(read)
    }
}

/// A rejected message, its value cut at `max_bytes`.
fn reject(
    route: usize,
    msg: &Message<'_>,
    pos: u64,
    time: Time,
    reason: String,
    max_bytes: usize,
) -> Rejected {
    let value = msg.value.map(|v| v[..v.len().min(max_bytes)].to_vec());
    let truncated = msg.value.is_some_and(|v| v.len() > max_bytes);
    (
        route,
        pos,
        time,
        reason,
        msg.key.map(<[u8]>::to_vec),
        value,
        truncated,
    )
}

/// One message's way into one entity's side.
struct Feed<'a> {
    route: usize,
    side: SideId,
    tally: &'a mut Tally,
    rejected: &'a mut Vec<Rejected>,
}

impl Feed<'_> {
    /// Decodes `msg` with the entity's decoder for this side and sends what it is to
    /// the entity's inputs, stamped with the partition's `progress` (which a change,
    /// a truncate or a heartbeat moves to its time, by `rise`).
    fn decode(
        self,
        entity: &mut Entity,
        msg: &Message<'_>,
        pos: u64,
        progress: &mut Time,
        rise: &mut impl FnMut(Time, &mut Time),
    ) {
        let side = self.side as usize;
        let (resolution, versioned) = (entity.resolution, entity.versioned[side]);
        self.tally.read += 1;
        match entity.decoders[side].decode(msg) {
            Ok(Decoded::Change(mut change)) => {
                let t = change.time_ms.map_or(*progress, |t| t - t % resolution);
                rise(t, progress);
                if !versioned {
                    change.version = Some(crate::cdc::Version::Num(pos));
                }
                entity.send_change(self.side, change, *progress);
            }
            Ok(Decoded::Truncate { version, time_ms }) => {
                rise(time_ms - time_ms % resolution, progress);
                self.tally.truncated += 1;
                let version = version.filter(|_| versioned);
                let truncate = crate::cdc::Change::truncate(version, time_ms);
                entity.truncates[side]
                    .as_mut()
                    .expect("a side with open partitions has open truncates")
                    .send((truncate, *progress));
            }
            Ok(Decoded::NonRow { kind, time_ms }) => {
                self.tally.non_row[kind as usize] += 1;
                if let Some(t) = time_ms {
                    rise(t - t % resolution, progress);
                }
            }
            Ok(Decoded::Skip) => self.tally.skipped += 1,
            Err(e) => {
                self.tally.rejected += 1;
                let max = entity.max_bytes;
                self.rejected
                    .push(reject(self.route, msg, pos, *progress, e.0, max));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Ahead, Time, SLACK};
    use proptest::prelude::*;

    #[test]
    fn a_sparse_partition_reads_its_slack_past_the_allowance_and_no_further() {
        let mut ahead = Ahead::default();
        let (allowance, mut progress) = (2, 0);
        // Each batch spans 4 ms, twice the allowance; the frontier stays at 0.
        for _ in 0..SLACK {
            assert!(ahead.may_read(progress, Some(0), allowance, Time::MAX));
            progress += 4;
            ahead.read(progress);
        }
        assert!(!ahead.may_read(progress, Some(0), allowance, Time::MAX));
        // The frontier passes the first batch: one more may be read.
        assert!(ahead.may_read(progress, Some(5), allowance, Time::MAX));
        ahead.read(progress + 4);
        assert!(!ahead.may_read(progress + 4, Some(5), allowance, Time::MAX));
        // Within the allowance, always.
        assert!(ahead.may_read(progress + 4, Some(progress + 2), allowance, Time::MAX));
        assert!(ahead.may_read(progress + 4, None, allowance, Time::MAX));
    }

    #[test]
    fn the_slack_stops_at_a_checkpoint_boundary() {
        let mut ahead = Ahead::default();
        // Batches of 4 ms, an allowance of 2, the frontier at 0, a boundary at 8.
        assert!(ahead.may_read(0, Some(0), 2, 8));
        ahead.read(4);
        assert!(
            ahead.may_read(4, Some(0), 2, 8),
            "short of the boundary: slack"
        );
        ahead.read(8);
        assert!(!ahead.may_read(8, Some(0), 2, 8), "at the boundary: held");
        assert!(
            ahead.may_read(8, Some(0), 2, Time::MAX),
            "no boundary: slack"
        );
    }

    proptest! {
        /// Whatever the batches' spans and the frontier's moves, a partition read only
        /// when allowed is never more than its allowance ahead of the frontier with
        /// more than `SLACK` batches the frontier has not passed.
        #[test]
        fn read_ahead_past_the_allowance_is_at_most_slack_batches(
            steps in prop::collection::vec((0u64..10, 0u64..6), 1..200),
            allowance in 0u64..8,
        ) {
            let mut ahead = Ahead::default();
            let (mut progress, mut frontier, mut ends): (Time, Time, Vec<Time>) = (0, 0, vec![]);
            for (span, lag) in steps {
                // The frontier moves up to the progress less some lag, never back.
                frontier = frontier.max(progress.saturating_sub(lag));
                if ahead.may_read(progress, Some(frontier), allowance, Time::MAX) {
                    let past = ends.iter().filter(|&&t| t >= frontier).count();
                    prop_assert!(progress - frontier <= allowance || past < SLACK);
                    progress += span;
                    ahead.read(progress);
                    ends.push(progress);
                }
            }
        }
    }
}
