//! Outputs rendered as bytes on the worker that makes them, before they go to worker 0.

use super::{Output, Render, Rendered, Time};
use crate::job::Halt;
use std::sync::Arc;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

/// Renders a stream of outputs where they are made.
pub trait RenderOutputs<'s> {
    /// Each output rendered by `render`, at its time; a failure to render is reported
    /// to `halt` (the job stops with it) and the output is not passed on.
    ///
    /// Why here and not in the sink: every output goes to worker 0, whose sink writes
    /// them in order, and rendering (JSON encoding) is most of a sink's work. Done by
    /// the sink, all of it fell to worker 0 while the other workers waited for it at
    /// the next event time (the file sink was 2.8% of worker 0's instructions in a
    /// two-worker file-mode run, BENCHMARKS.md issue 14); done here, each worker
    /// renders what it made, and worker 0 only writes bytes. The bytes are sorted for
    /// delivery, so the order is still the same whatever the number of workers.
    ///
    /// ```
    /// use driftwatch::dataflow::render::RenderOutputs;
    /// use driftwatch::dataflow::{DeadLetter, Output, Render, Rendered};
    /// use std::sync::{Arc, Mutex};
    /// use timely::dataflow::operators::{Inspect, ToStream};
    ///
    /// /// Renders a dead letter as its reason; refuses an empty one.
    /// struct Reasons;
    /// impl Render for Reasons {
    ///     fn render(&self, output: &Output, bytes: &mut Vec<u8>) -> anyhow::Result<()> {
    ///         let Output::DeadLetter(d) = output else { anyhow::bail!("not a dead letter") };
    ///         anyhow::ensure!(!d.reason.is_empty(), "no reason");
    ///         Ok(bytes.extend_from_slice(d.reason.as_bytes()))
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
    /// let (got, halt) = (seen.clone(), Arc::new(driftwatch::job::Halt::default()));
    /// let stopped = halt.clone();
    /// timely::example(move |scope| {
    ///     vec![(letter("bad json"), 3), (letter(""), 4), (letter("no key"), 5)]
    ///         .to_stream(scope)
    ///         .render(Arc::new(Reasons), halt)
    ///         .inspect(move |(r, t): &(Rendered, u64)| {
    ///             got.lock().unwrap().push((String::from_utf8(r.bytes.clone()).unwrap(), *t))
    ///         });
    /// });
    /// // The one it could not render stopped the job, and went no further.
    /// assert_eq!(*seen.lock().unwrap(), [("bad json".into(), 3), ("no key".into(), 5)]);
    /// assert!(stopped.check().is_err());
    /// ```
    fn render(
        self,
        render: Arc<dyn Render>,
        halt: Arc<Halt>,
    ) -> Stream<'s, Time, Vec<(Rendered, Time)>>;
}

impl<'s> RenderOutputs<'s> for Stream<'s, Time, Vec<(Output, Time)>> {
    fn render(
        self,
        render: Arc<dyn Render>,
        halt: Arc<Halt>,
    ) -> Stream<'s, Time, Vec<(Rendered, Time)>> {
        self.unary(Pipeline, "Render", move |_, _| {
            // One buffer for every output's rendering, copied out at its length: a
            // buffer of its own grew by doubling, a reallocation or more per output.
            let mut scratch = Vec::new();
            let mut failed = false;
            move |input, output| {
                input.for_each(|cap, data| {
                    let mut session = output.session(&cap);
                    for (o, t) in data.drain(..) {
                        scratch.clear();
                        match render.render(&o, &mut scratch) {
                            Ok(()) => session.give((
                                Rendered {
                                    lane: o.lane(),
                                    bytes: scratch.as_slice().to_vec(),
                                },
                                t,
                            )),
                            Err(e) if !failed => {
                                failed = true;
                                halt.output_failed(format!("{e:#}"));
                            }
                            Err(_) => {}
                        }
                    }
                });
            }
        })
    }
}
