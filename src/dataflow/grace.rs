//! Grace in event time: when a difference becomes a drift record, and its corrections.
//!
//! A key's *episode* is a maximal interval of event time during which its sides differ.
//! It is reported (an `open` record) once it has lasted `grace`: at `since + grace`, if
//! it is still open after that time's changes. While reported, every change of its
//! details yields a new `open` record, and healing yields a `resolved` one. Episodes
//! that heal within grace are never reported; how long every episode lasted is the
//! observed sync lag. When time ends (files exhausted), all pending timers fire.
//!
//! Corrections follow open records: an upsert of the source row (missing, mismatch) or
//! a delete (orphan), emitted again only when it would differ from the last one.
//!
//! Why the sides operator keeps the episodes, beside the rows they are about, rather
//! than an operator of its own: a lagging replica puts nearly every key it touches in
//! and out of drift, so an operator of its own received about one drift update per
//! change, each a divergence holding both rows, and looked each up in a second table
//! of its own. Its table and the rows' reference counts were out of the cache by then
//! (a tenth of a `-w 2` file-mode run; BENCHMARKS.md, issue 14). Here an episode is a
//! few bytes of its key's state, which the comparison has just read; a divergence is
//! made only for an episode that is reported; and each timer holds its key's slot.

use super::timed::Timed;
use super::{
    Correction, Divergence, DriftKind, DriftRecord, Output, SideRowRef, Stats, Status, Time,
};
use crate::checkpoint::state::EpisodeEntry;
use crate::row::CompareRules;
use crate::row::{Key, Row};
use crate::FastMap;
use std::sync::Arc;

/// A key's episode as its state holds it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Episode {
    /// When it began (while open).
    pub(super) since: Time,
    /// Whether the key's sides differ.
    pub(super) open: bool,
    /// Whether it has been reported (then [`Grace`] keeps its divergence).
    pub(super) reported: bool,
}

/// A key as grace reads it in the keyed state: its slot, its episode, its sides' rows.
pub(super) struct KeyAt<'a> {
    /// The key.
    pub(super) key: &'a Key,
    /// Its slot (what its timers and reported episode are found by).
    pub(super) slot: usize,
    /// Its episode.
    pub(super) episode: &'a mut Episode,
    /// Each side's row, if it has one.
    pub(super) rows: [Option<SideRowRef<'a>>; 2],
}

/// What a reported episode keeps: the divergence last reported and the last correction.
struct Reported {
    current: Divergence,
    corrected: Option<(DriftKind, Option<Row>)>,
}

/// A worker's grace timers and reported episodes (the episodes themselves are in the
/// keyed state), and the lags of the episodes healed in the current activation.
pub(super) struct Grace {
    /// How rows compare.
    pub(super) rules: Arc<CompareRules>,
    /// Where open drift, sync lags and the sides' counts are counted.
    pub(super) stats: Arc<Stats>,
    /// How long a difference lasts before it is reported.
    grace_ms: u64,
    /// Each episode's grace timer, with its key's slot, in time order: an episode begins
    /// at the time being processed, which only grows, so a timer goes to the back.
    timers: Timed<usize>,
    /// The reported episodes, by their keys' slots.
    reported: FastMap<usize, Reported>,
    /// How long each episode healed since the last [`Grace::record_lags`] lasted.
    lags: Vec<u64>,
}

impl Grace {
    /// No episodes, under `rules`, reported after `grace_ms`.
    pub(super) fn new(rules: Arc<CompareRules>, stats: Arc<Stats>, grace_ms: u64) -> Self {
        Grace {
            rules,
            stats,
            grace_ms,
            timers: Timed::default(),
            reported: FastMap::default(),
            lags: Vec::new(),
        }
    }

    /// The key `at` was compared after `now`'s changes.
    pub(super) fn compared(&mut self, at: KeyAt<'_>, now: Time, out: &mut Vec<(Output, Time)>) {
        let (key, slot, ep) = (at.key, at.slot, at.episode);
        let [source, target] = at.rows;
        let kind = Divergence::kind_between(&self.rules, source, target);
        match (ep.open, kind) {
            (false, None) => {}
            (false, Some(_)) => {
                *ep = Episode {
                    since: now,
                    open: true,
                    reported: false,
                };
                self.timers.push(now + self.grace_ms, slot);
            }
            // Unreported: its divergence is made when (if) its timer fires.
            (true, Some(_)) if !ep.reported => {}
            (true, Some(kind)) => {
                let current = Divergence::of_kind(kind, source, target);
                let Some(rep) = self.reported.get_mut(&slot) else {
                    return;
                };
                if rep.current != current {
                    self.stats.add_open(rep.current.kind, -1);
                    self.stats.add_open(current.kind, 1);
                    rep.current = current;
                    report(out, &self.rules, rep, ep.since, key.clone(), now);
                }
            }
            (true, None) => {
                let Episode {
                    since, reported, ..
                } = std::mem::take(ep);
                self.lags.push(now - since);
                if let Some(rep) = reported.then(|| self.reported.remove(&slot)).flatten() {
                    self.stats.add_open(rep.current.kind, -1);
                    let record = DriftRecord {
                        key: key.clone(),
                        status: Status::Resolved,
                        drift: rep.current.details(&self.rules),
                        since,
                        reported: now,
                        resolved: Some(now),
                    };
                    out.push((Output::Drift(record), now));
                }
            }
        }
    }

    /// The earliest pending timer's time.
    pub(super) fn next_timer(&self) -> Option<Time> {
        self.timers.first()
    }

    /// The slot of the next timer due at `now`, taken.
    pub(super) fn pop_timer(&mut self, now: Time) -> Option<usize> {
        self.timers.pop_at(now)
    }

    /// The slot of the `i`th pending timer (to fetch its state ahead).
    pub(super) fn timer_slot(&self, i: usize) -> Option<usize> {
        self.timers.get(i).map(|&(_, slot)| slot)
    }

    /// The timer of the key `at`, set when an episode began, fires at `now`: the
    /// episode is reported if it is the same one and still open.
    pub(super) fn fire(&mut self, at: KeyAt<'_>, now: Time, out: &mut Vec<(Output, Time)>) {
        let ep = at.episode;
        let [source, target] = at.rows;
        if !ep.open || ep.reported || ep.since + self.grace_ms != now {
            return;
        }
        let Some(kind) = Divergence::kind_between(&self.rules, source, target) else {
            debug_assert!(false, "an open episode's sides agree");
            return;
        };
        ep.reported = true;
        self.stats.add_open(kind, 1);
        let mut rep = Reported {
            current: Divergence::of_kind(kind, source, target),
            corrected: None,
        };
        report(out, &self.rules, &mut rep, ep.since, at.key.clone(), now);
        self.reported.insert(at.slot, rep);
    }

    /// Hands the lags of the episodes healed since the last call to the statistics.
    pub(super) fn record_lags(&mut self) {
        self.stats.record_sync_lag(&self.lags);
        self.lags.clear();
    }

    /// The open episode `ep` of `key` in `slot` as a checkpoint entry.
    pub(super) fn entry(&self, key: &Key, slot: usize, ep: &Episode) -> EpisodeEntry {
        use crate::checkpoint::Bytes;
        let corrected = self.reported.get(&slot).and_then(|r| r.corrected.as_ref());
        EpisodeEntry {
            key: Bytes::from(key.as_bytes()),
            since: ep.since,
            reported: u64::from(ep.reported),
            corrected: corrected.map(|(kind, row)| {
                (
                    *kind as u64,
                    row.as_ref().map(|r| Bytes::from(r.as_bytes())),
                )
            }),
        }
    }

    /// Restores the episode `e` of the key `at`.
    pub(super) fn restore(&mut self, e: &EpisodeEntry, at: KeyAt<'_>) -> anyhow::Result<()> {
        let (slot, ep) = (at.slot, at.episode);
        let [source, target] = at.rows;
        let bad = || anyhow::anyhow!("checkpoint holds a malformed grace episode");
        let kind = Divergence::kind_between(&self.rules, source, target)
            .ok_or_else(|| anyhow::anyhow!("checkpoint holds an episode for a key in sync"))?;
        let corrected = match &e.corrected {
            None => None,
            Some((kind, row)) => {
                let kind = *DriftKind::ALL.get(*kind as usize).ok_or_else(bad)?;
                let row = match row {
                    Some(b) => Some(Row::from_encoded(&b.to_vec().ok_or_else(bad)?)),
                    None => None,
                };
                Some((kind, row))
            }
        };
        *ep = Episode {
            since: e.since,
            open: true,
            reported: e.reported != 0,
        };
        if ep.reported {
            self.stats.add_open(kind, 1);
            let current = Divergence::of_kind(kind, source, target);
            self.reported.insert(slot, Reported { current, corrected });
        } else {
            self.timers.push(e.since + self.grace_ms, slot);
        }
        Ok(())
    }
}

/// An `open` record for a reported episode, after its correction if that changed.
fn report(
    out: &mut Vec<(Output, Time)>,
    rules: &CompareRules,
    rep: &mut Reported,
    since: Time,
    key: Key,
    now: Time,
) {
    let fix = match rep.current.kind {
        DriftKind::Orphan => (DriftKind::Orphan, None),
        kind => (kind, rep.current.source.as_ref().map(|s| s.row.clone())),
    };
    // A kind change between missing and mismatch keeps the same upsert: not re-emitted.
    if rep.corrected.as_ref().map(|(_, r)| r) != Some(&fix.1) {
        out.push((
            Output::Correction(Correction {
                key: key.clone(),
                kind: fix.0,
                row: fix.1.as_ref().map(|r| rules.target_names(r)),
            }),
            now,
        ));
        rep.corrected = Some(fix);
    }
    let record = DriftRecord {
        key,
        status: Status::Open,
        drift: rep.current.details(rules),
        since,
        reported: now,
        resolved: None,
    };
    out.push((Output::Drift(record), now));
}
