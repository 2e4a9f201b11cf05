//! The ordered output sink: every output, one completed event time at a time, sorted.

use super::stats::add;
use super::{Lane, Output, Rendered, SharedSink, Sink, Stats, Time};
use crate::job::Halt;
use std::collections::BTreeMap;
use std::sync::Arc;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

/// What the sink operator hands a sink: outputs as they are, or rendered.
pub trait Deliverable: Ord + Clone + 'static {
    /// Which output it is.
    fn lane(&self) -> Lane;
    /// Hands `sink` the items of event time `time`, sorted.
    fn emit(sink: &mut dyn Sink, time: Time, items: &[Self]) -> anyhow::Result<()>;
}

impl Deliverable for Output {
    fn lane(&self) -> Lane {
        Output::lane(self)
    }
    fn emit(sink: &mut dyn Sink, time: Time, items: &[Self]) -> anyhow::Result<()> {
        sink.emit(time, items)
    }
}

impl Deliverable for Rendered {
    fn lane(&self) -> Lane {
        self.lane
    }
    fn emit(sink: &mut dyn Sink, time: Time, items: &[Self]) -> anyhow::Result<()> {
        sink.emit_rendered(time, items)
    }
}

/// Delivers a stream of outputs, or of rendered outputs, to a [`super::Sink`].
pub trait Deliver<'s> {
    /// Delivers the outputs to `sink` one completed event time at a time, sorted, and
    /// tells it when time ends; an output's failure is reported to `halt` and ends
    /// delivery.
    ///
    /// Why sorted and by completed time: outputs of one time come from every worker, in
    /// whatever order the workers ran, and records carry their own times. Held until the
    /// frontier has passed their time and sorted, the same input yields the same output
    /// files whatever the number of workers. Routed to one worker (worker 0 holds the
    /// sink), which is where this operator runs in the job.
    ///
    /// ```
    /// use driftwatch::dataflow::sink::Deliver;
    /// use driftwatch::dataflow::{DeadLetter, Output, Sink, Time};
    /// use std::sync::{Arc, Mutex};
    /// use timely::dataflow::operators::ToStream;
    ///
    /// /// Writes down each time it is given, and the end of time.
    /// struct Times(Arc<Mutex<Vec<String>>>);
    /// impl Sink for Times {
    ///     fn emit(&mut self, time: Time, outputs: &[Output]) -> anyhow::Result<()> {
    ///         Ok(self.0.lock().unwrap().push(format!("{time}: {}", outputs.len())))
    ///     }
    ///     fn finish(&mut self) -> anyhow::Result<()> {
    ///         Ok(self.0.lock().unwrap().push("end".into()))
    ///     }
    /// }
    ///
    /// let letter = |reason: &str| Output::DeadLetter(DeadLetter {
    ///     side: driftwatch::cdc::SideId::Source,
    ///     origin: driftwatch::cdc::Origin::File { file: "orders.jsonl".into(), line: 1 },
    ///     reason: reason.into(),
    ///     key: None,
    ///     value: None,
    ///     truncated: false,
    /// });
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let times = seen.clone();
    /// timely::example(move |scope| {
    ///     let sink = std::rc::Rc::new(std::cell::RefCell::new(
    ///         Some(Box::new(Times(times)) as Box<dyn Sink>),
    ///     ));
    ///     // Out of time order in one message: delivered in time order.
    ///     vec![(letter("b"), 7), (letter("a"), 3), (letter("c"), 7)]
    ///         .to_stream(scope)
    ///         .deliver(sink, Arc::default(), Arc::default());
    /// });
    /// assert_eq!(*seen.lock().unwrap(), ["3: 1", "7: 2", "end"]);
    /// ```
    fn deliver(
        self,
        sink: SharedSink,
        stats: Arc<Stats>,
        halt: Arc<Halt>,
    ) -> Stream<'s, Time, Vec<()>>;
}

impl<'s, D: Deliverable> Deliver<'s> for Stream<'s, Time, Vec<(D, Time)>> {
    fn deliver(
        self,
        sink: SharedSink,
        stats: Arc<Stats>,
        halt: Arc<Halt>,
    ) -> Stream<'s, Time, Vec<()>> {
        self.unary_frontier::<timely::container::CapacityContainerBuilder<Vec<()>>, _, _, _>(
            Pipeline,
            "Sink",
            move |_, _| {
                let mut stash: BTreeMap<Time, Vec<D>> = BTreeMap::new();
                let (mut failed, mut finished) = (false, false);
                move |(input, frontier), _output| {
                    input.for_each(|_cap, data| {
                        for (o, t) in data.drain(..) {
                            stash.entry(t).or_default().push(o);
                        }
                    });
                    while let Some(entry) = stash.first_entry() {
                        if frontier.less_equal(entry.key()) {
                            break;
                        }
                        let (time, mut outputs) = entry.remove_entry();
                        outputs.sort();
                        for o in &outputs {
                            match o.lane() {
                                Lane::Drift => add(&stats.drift_records, 1),
                                Lane::Correction => add(&stats.corrections, 1),
                                Lane::DeadLetter => {}
                            }
                        }
                        if let (Some(s), false) = (sink.borrow_mut().as_mut(), failed) {
                            if let Err(e) = D::emit(s.as_mut(), time, &outputs) {
                                // The sink remembers its error; the job reports it at the end.
                                failed = true;
                                halt.output_failed(format!("{e:#}"));
                            }
                        }
                    }
                    if frontier.is_empty() && !finished {
                        finished = true;
                        if let (Some(s), false) = (sink.borrow_mut().as_mut(), failed) {
                            if let Err(e) = s.finish() {
                                failed = true;
                                halt.output_failed(format!("{e:#}"));
                            }
                        }
                    }
                }
            },
        )
    }
}
