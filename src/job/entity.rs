//! One entity's inputs on a worker: its dataflow's input handles, its decoders, and
//! how its changes are stamped. A job watching many entities has one per entity, all
//! fed by the same read loop.

use crate::cdc::{Change, Decoder, SideId};
use crate::dataflow::route::{Packed, Packer};
use crate::dataflow::{self, Handles, Output, Sink, Time};
use crate::spec::Spec;
use std::sync::Arc;
use timely::dataflow::InputHandleVec;

/// Moves an input to `least` (its open partitions' least progress), or closes it when
/// none is open.
fn advance<D: Clone + 'static>(input: &mut Option<InputHandleVec<Time, D>>, least: Option<Time>) {
    match (least, input.as_mut()) {
        (None, _) => *input = None,
        (Some(t), Some(h)) if *h.time() < t => h.advance_to(t),
        _ => {}
    }
}

type Changes = InputHandleVec<Time, Packed>;
type Truncates = InputHandleVec<Time, (Change, Time)>;

/// One entity's dataflow inputs and decoders on this worker.
pub(super) struct Entity {
    /// Each side's changes (source, target); `None` once closed.
    changes: [Option<Changes>; 2],
    /// Each side's changes read since its input last moved, packed for their keys'
    /// workers.
    packers: [Packer; 2],
    /// Each side's truncates.
    pub(super) truncates: [Option<Truncates>; 2],
    /// Dead letters.
    pub(super) dead: Option<InputHandleVec<Time, (Output, Time)>>,
    /// Each side's decoder.
    pub(super) decoders: [Decoder; 2],
    /// Whether each side names a version (else input order decides).
    pub(super) versioned: [bool; 2],
    /// Event times are rounded down to a multiple of this (ms).
    pub(super) resolution: Time,
    /// The largest message kept whole in a dead letter.
    pub(super) max_bytes: usize,
    /// The dataflow's state and sink.
    pub(super) state: dataflow::State,
    pub(super) sink: dataflow::SharedSink,
    pub(super) sizes: dataflow::sides::SizeProbe,
}

impl Entity {
    /// Builds `job`'s dataflow on `worker`, reporting to `probes`, its outputs rendered
    /// by the job's renderer when it has one.
    pub(super) fn build(
        worker: &mut timely::worker::Worker,
        job: &super::Job,
        sink: Option<Box<dyn Sink>>,
        probes: &dataflow::Probes,
        halt: &Arc<super::Halt>,
    ) -> Entity {
        let spec: &Spec = &job.spec;
        let Handles {
            source,
            target,
            truncates,
            dead,
            sizes,
            state,
            sink,
            ..
        } = dataflow::build_probed(
            worker,
            spec,
            job.stats.clone(),
            sink,
            job.render.clone(),
            probes,
            halt.clone(),
        );
        let mut decoders = [
            Decoder::new(spec, SideId::Source),
            Decoder::new(spec, SideId::Target),
        ];
        decoders[SideId::Source as usize].publish_schema(job.schema.clone());
        // Co-partitioned inputs' changes stay on the worker that read them (their keys'
        // claims are checked in the dataflow, see `dataflow::claims`).
        let packer = || match spec.co_partitioned {
            true => Packer::local(worker.index()),
            false => Packer::new(worker.index(), worker.peers()),
        };
        Entity {
            changes: [Some(source), Some(target)],
            packers: [packer(), packer()],
            truncates: truncates.map(Some),
            dead: Some(dead),
            decoders,
            versioned: [spec.source.version.is_some(), spec.target.version.is_some()],
            resolution: spec.time_resolution.as_millis().max(1),
            max_bytes: spec.max_message_bytes,
            state,
            sink,
            sizes,
        }
    }

    /// Sends `change` at event time `time` to `side`'s input, whose partitions are
    /// open (packed now, sent when the input next moves).
    pub(super) fn send_change(&mut self, side: SideId, change: Change, time: Time) {
        assert!(
            self.changes[side as usize].is_some(),
            "a side with open partitions has an open input"
        );
        self.packers[side as usize].push(change, time);
    }

    /// Delivers everything its sink (worker 0's) has been given.
    pub(super) fn flush(&self) -> anyhow::Result<()> {
        match self.sink.borrow_mut().as_mut() {
            Some(s) => s.flush(),
            None => Ok(()),
        }
    }

    /// Moves each input to its partitions' least progress (`least(side)`, `None`: no
    /// open partition left), held at `hold`. A side without open partitions closes,
    /// unless held: then it waits at `hold` (see `checkpointer`: a worker's state must not
    /// pass a boundary before it has written it, and an entity whose input ends while the
    /// job goes on must not run past the boundary the other entities' offsets stop at).
    pub(super) fn advance(&mut self, least: impl Fn(Option<SideId>) -> Option<Time>, hold: Time) {
        let capped = |l: Option<Time>| match l {
            Some(l) => Some(l.min(hold)),
            None => (hold < Time::MAX).then_some(hold),
        };
        for side in SideId::BOTH {
            let l = capped(least(Some(side)));
            let changes = &mut self.changes[side as usize];
            if let Some(input) = changes.as_mut() {
                self.packers[side as usize]
                    .take()
                    .for_each(|packed| input.send(packed));
            }
            advance(changes, l);
            advance(&mut self.truncates[side as usize], l);
        }
        advance(&mut self.dead, capped(least(None)));
    }
}
