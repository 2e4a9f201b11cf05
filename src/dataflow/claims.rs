//! Keys claimed by the workers that keep them, checked to be kept by one worker only.
//!
//! Inputs declared co-partitioned (`co_partitioned` in the spec) keep every change on
//! the worker that read it: correct only when each key is read on one worker. Nothing
//! in the data says so, and a wrong declaration (topics with different partition counts,
//! a producer that partitions by something else) would split a key's two sides across
//! workers and report both halves as drift. So each worker claims every key it adds to
//! its state, and the claims meet at the key's hash worker, which stops the job at the
//! first key claimed by two workers. A key is claimed once per worker, not per change:
//! the cost is one message per key, against the exchange of every change it replaces.

use super::{Output, Time};
use crate::job::Halt;
use crate::row::Key;
use differential_dataflow::hashable::Hashable;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::sync::Arc;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

/// The keys a worker's state added since they were last sent, shared by the keyed
/// state (which adds them) and the [`CheckClaims`] operator (which sends them).
#[derive(Clone, Default)]
pub struct Claims(Rc<RefCell<Vec<Key>>>);

impl Claims {
    /// Claims `key`, new to this worker's state.
    pub fn claim(&self, key: &Key) {
        self.0.borrow_mut().push(key.clone());
    }

    fn take(&self) -> Vec<Key> {
        std::mem::take(&mut *self.0.borrow_mut())
    }
}

/// A key kept by a worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claim {
    key: Key,
    worker: u32,
}

/// 128 bits of a key: its exchange hash and a second, independent one. Two keys share
/// one about once in 2^64 pairs of keys at the same worker, where a key kept whole
/// would cost its bytes again beside the state's copy.
fn fingerprint(key: &Key) -> u128 {
    let mut h = std::hash::DefaultHasher::new();
    0xC1A1_5EED_u64.hash(&mut h);
    key.as_bytes().hash(&mut h);
    (u128::from(key.hashed()) << 64) | u128::from(h.finish())
}

/// Checks that no key is kept by two workers.
pub trait CheckClaims<'s> {
    /// Sends the keys in `claims` (this worker's new keys) to their hash's worker as
    /// this stream (the keyed state's outputs, read only for their frontier) moves on,
    /// and checks there that every key is claimed by one worker: the first claimed by
    /// two stops the job (`halt`) with one line naming the entity and the key. The
    /// stream returned is empty; its frontier passes a time once the claims made before
    /// it are checked, so a job probing it ends only after the last check.
    ///
    /// ```
    /// use driftwatch::dataflow::claims::{CheckClaims, Claims};
    /// use driftwatch::dataflow::{Output, Time};
    /// use driftwatch::job::Halt;
    /// use driftwatch::row::{RowBuilder, ValueRef};
    /// use std::sync::Arc;
    /// use timely::dataflow::operators::{Input, Probe};
    ///
    /// let key = |id: i64| {
    ///     let mut b = RowBuilder::default();
    ///     b.push("id", ValueRef::Int(id)).unwrap();
    ///     b.finish_key()
    /// };
    /// // Each of two workers keeps its own keys (ids of its parity), and then, with
    /// // `both`, worker 1 keeps id 4 too.
    /// let run = |both: bool| {
    ///     let halt = Arc::new(Halt::default());
    ///     let seen = halt.clone();
    ///     timely::execute(timely::Config::process(2), move |worker| {
    ///         let claims = Claims::default();
    ///         let mut input = timely::dataflow::InputHandleVec::<Time, (Output, Time)>::new();
    ///         let probe = worker.dataflow(|scope| {
    ///             let outputs = scope.input_from(&mut input);
    ///             outputs.check_claims(claims.clone(), "orders", seen.clone()).probe().0
    ///         });
    ///         let me = worker.index() as i64;
    ///         (0..10).filter(|id| id % 2 == me).for_each(|id| claims.claim(&key(id)));
    ///         if both && me == 1 {
    ///             claims.claim(&key(4));
    ///         }
    ///         input.advance_to(1);
    ///         drop(input);
    ///         while !probe.done() {
    ///             worker.step();
    ///         }
    ///     })
    ///     .unwrap();
    ///     halt.worker_failure().map(str::to_string)
    /// };
    /// assert_eq!(run(false), None);
    /// let failure = run(true).unwrap();
    /// assert!(failure.contains("key {\"id\": Int(4)} was read on workers 0 and 1"), "{failure}");
    /// ```
    fn check_claims(
        self,
        claims: Claims,
        entity: &str,
        halt: Arc<Halt>,
    ) -> Stream<'s, Time, Vec<()>>;
}

impl<'s> CheckClaims<'s> for Stream<'s, Time, Vec<(Output, Time)>> {
    fn check_claims(
        self,
        claims: Claims,
        entity: &str,
        halt: Arc<Halt>,
    ) -> Stream<'s, Time, Vec<()>> {
        let me = self.scope().index() as u32;
        let sent = self.unary_frontier(Pipeline, "Claims", move |initial, _| {
            let mut held = Some(initial);
            move |(input, frontier), output| {
                input.for_each(|_, data| data.clear());
                let Some(cap) = held.as_mut() else { return };
                let keys = claims.take();
                if !keys.is_empty() {
                    let claim = |key| Claim { key, worker: me };
                    output
                        .session(&*cap)
                        .give_iterator(keys.into_iter().map(claim));
                }
                match frontier.frontier().first() {
                    Some(t) if t > cap.time() => cap.downgrade(t),
                    Some(_) => {}
                    None => held = None,
                }
            }
        });
        let entity = entity.to_string();
        let by_key = Exchange::new(|c: &Claim| c.key.hashed());
        sent.unary::<timely::container::CapacityContainerBuilder<Vec<()>>, _, _, _>(
            by_key,
            "CheckClaims",
            move |_, _| {
                let mut keepers: HashMap<u128, u32> = HashMap::new();
                move |input, _output| {
                    input.for_each(|_, data| {
                        for Claim { key, worker } in data.drain(..) {
                            let first = *keepers.entry(fingerprint(&key)).or_insert(worker);
                            if first != worker && halt.worker_failure().is_none() {
                                let (a, b) = (first.min(worker), first.max(worker));
                                halt.worker_failed(format!(
                                    "entity {entity}: co_partitioned is declared, but key {key:?} \
                                 was read on workers {a} and {b}: its sides are not in \
                                 partitions of the same number; make the inputs \
                                 co-partitioned or remove co_partitioned from the spec"
                                ));
                            }
                        }
                    });
                }
            },
        )
    }
}
