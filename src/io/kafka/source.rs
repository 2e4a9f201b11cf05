//! Kafka partitions as inputs: one consumer per worker, one queue per assigned partition.
//!
//! Partitions are assigned statically: every (side, topic, partition) of the job is
//! numbered, and worker `i` of `n` (over all processes) takes those numbered `i mod n`,
//! so the same input lands on the same worker in every run. There is no group
//! rebalancing; the group id only carries offset commits for lag tools (auto-committed
//! from offsets stored after each read).
//!
//! Each partition's queue is split off the consumer so the driver can read the
//! partition furthest behind in event time. A split can only follow the assignment, so
//! a fetch answered in between lands on the consumer's main queue: every poll first
//! moves such strays aside, and their partition reads them before its own queue (in a
//! busy test run they were once a partition's whole first fetch, and it waited
//! forever).
//!
//! A partition is never paused to bound what it prefetches: its queue's size limit does
//! that ([`PREFETCH_KBYTES`]), and a pause drops the prefetched messages.
//!
//! A partition that has read up to its high watermark, as last asked of the broker
//! ([`super::probe`]), vouches for the time of asking less `clock_skew`
//! ([`Partition::heartbeat`]), so idle inputs do not stall grace, and a lagging one
//! holds reporting back.

use super::config::KafkaConfig;
use super::probe::{self, Probe};
use crate::cdc::{Message, Origin, SideId};
use crate::io::{Partition, Poll, Route};
use anyhow::Context as _;
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer, DefaultConsumerContext};
use rdkafka::message::Message as _;
use rdkafka::message::OwnedMessage;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// librdkafka's prefetch per worker, shared by its partitions (at least 1 MiB each): the
/// most a worker holds read from the broker but not yet taken. Each partition's queue
/// (split off the consumer) is its own, so librdkafka's `queued.max.messages.kbytes`
/// applies per partition: set to this share, with `fetch.queue.backoff.ms` at 20 ms so a
/// queue that reached its bound is refilled as soon as it drains (librdkafka's default,
/// a second, starved a partition read at 30k messages/s). Both can be overridden in
/// `[kafka.properties]`.
const PREFETCH_KBYTES: usize = 64 * 1024;

/// Where to start reading a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The earliest offset still in the log.
    Earliest,
    /// A given offset.
    At(i64),
}

/// One input partition of the job.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The entities' sides it feeds (several when entities share the topic).
    pub routes: Vec<Route>,
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
}

/// What the Kafka partitions of a job share: client settings, start offsets, bounds.
#[derive(Debug, Clone)]
pub struct KafkaInputs {
    /// Client settings.
    pub config: KafkaConfig,
    /// Every input partition of the job, in assignment order.
    pub partitions: Vec<TopicPartition>,
    /// Start offsets by (topic, partition); others start at the earliest offset.
    pub starts: BTreeMap<(String, i32), i64>,
    /// Stop at the high watermarks seen at start (time then ends, as with files).
    pub stop_at_end: bool,
    /// Assign partitions to workers by partition number (`i` modulo the workers), so
    /// that partition `i` of every topic is read by one worker: an entity declares its
    /// inputs co-partitioned. Else by position in `partitions`.
    pub by_partition: bool,
    /// Each entity's event-time allowance for clock skew, in ms.
    pub clock_skew_ms: Vec<u64>,
    /// A pause between assigning the partitions and splitting their queues (zero; a
    /// test sets it to make fetches land on the main queue first).
    pub split_delay: Duration,
}

impl KafkaInputs {
    /// Lists the partitions of the source and target topics (a job of one entity).
    pub fn discover(
        config: KafkaConfig,
        source: &[String],
        target: &[String],
        clock_skew_ms: u64,
    ) -> anyhow::Result<Self> {
        Self::discover_entities(config, &[(source, target, clock_skew_ms)])
    }

    /// Lists the partitions of every entity's source and target topics, each entity's
    /// allowance beside them, one entity after the other: the static assignment
    /// (position mod workers) then carries on from one entity to the next, so each
    /// entity's partitions spread over the workers, and so do many small entities. A
    /// topic several entities read is listed once, with a route to each.
    pub fn discover_entities(
        config: KafkaConfig,
        entities: &[(&[String], &[String], u64)],
    ) -> anyhow::Result<Self> {
        let mut topics: Vec<(String, Vec<Route>)> = Vec::new();
        for (entity, (source, target, _)) in entities.iter().enumerate() {
            for (side, names) in [(SideId::Source, *source), (SideId::Target, *target)] {
                for name in names {
                    let route = Route { entity, side };
                    match topics.iter_mut().find(|(t, _)| t == name) {
                        Some((_, routes)) => routes.push(route),
                        None => topics.push((name.clone(), vec![route])),
                    }
                }
            }
        }
        let names: Vec<String> = topics.iter().map(|(t, _)| t.clone()).collect();
        let counts = super::admin::partitions(&config, &names)?;
        let mut partitions = Vec::new();
        for ((topic, routes), n) in topics.into_iter().zip(counts) {
            partitions.extend((0..n).map(|partition| TopicPartition {
                routes: routes.clone(),
                topic: topic.clone(),
                partition,
            }));
        }
        Ok(KafkaInputs {
            config,
            partitions,
            starts: BTreeMap::new(),
            stop_at_end: false,
            by_partition: false,
            clock_skew_ms: entities.iter().map(|(_, _, skew)| *skew).collect(),
            split_delay: Duration::ZERO,
        })
    }

    /// Opens the partitions of worker `index` of `peers` on one consumer (a job of one
    /// entity).
    pub fn open(&self, index: usize, peers: usize) -> anyhow::Result<Vec<Box<dyn Partition>>> {
        Ok(self
            .open_entities(index, peers)?
            .into_iter()
            .map(|(_, p)| p)
            .collect())
    }

    /// Opens the partitions of worker `index` of `peers`, of every entity, on one
    /// consumer, each with the entities' sides it feeds.
    pub fn open_entities(
        &self,
        index: usize,
        peers: usize,
    ) -> anyhow::Result<Vec<crate::io::Routed>> {
        let numbered = self.partitions.iter().map(|p| (p.partition as usize, p));
        let mine: Vec<&TopicPartition> =
            crate::job::assigned_by(numbered, self.by_partition, index, peers);
        if mine.is_empty() {
            return Ok(Vec::new());
        }
        let queue_kbytes = (PREFETCH_KBYTES / mine.len()).max(1024).to_string();
        let consumer: BaseConsumer = self
            .config
            .client(&[
                ("group.id", &self.config.group_id),
                ("enable.auto.commit", "true"),
                ("enable.auto.offset.store", "false"),
                ("auto.offset.reset", "earliest"),
                ("enable.partition.eof", "false"),
                ("queued.max.messages.kbytes", &queue_kbytes),
                ("fetch.queue.backoff.ms", "20"),
            ])
            .create()
            .context("cannot create a Kafka consumer")?;
        let consumer = Arc::new(consumer);
        let probes: Vec<Arc<Probe>> = mine.iter().map(|_| Arc::default()).collect();
        if !self.stop_at_end {
            let probed = mine
                .iter()
                .zip(&probes)
                .map(|(p, probe)| (p.topic.clone(), p.partition, Arc::downgrade(probe)))
                .collect();
            let client = self
                .config
                .client(&[])
                .create()
                .context("cannot create the watermark client")?;
            let skew = mine.iter().map(|p| self.skew_ms(p)).min().unwrap_or(0);
            probe::spawn(client, probed, probe::interval(skew))
                .context("cannot start the watermark probe")?;
        }
        // Each partition starts at an explicit offset: its given start, else the log's
        // beginning as asked of the broker now. (Assigned at `Offset::Beginning`,
        // librdkafka resolved the beginning itself and fetched nothing for about 450 ms.)
        let mut bounds = Vec::with_capacity(mine.len());
        for p in &mine {
            let (low, high) = consumer
                .fetch_watermarks(&p.topic, p.partition, super::admin::TIMEOUT)
                .with_context(|| {
                    format!("cannot read the offsets of {}/{}", p.topic, p.partition)
                })?;
            let start = self.starts.get(&(p.topic.clone(), p.partition)).copied();
            let next = start.unwrap_or(low).max(low);
            bounds.push((next, self.stop_at_end.then_some(high)));
        }
        let mut tpl = TopicPartitionList::new();
        for (p, (next, _)) in mine.iter().zip(&bounds) {
            tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(*next))
                .with_context(|| format!("cannot assign {}/{}", p.topic, p.partition))?;
        }
        consumer
            .assign(&tpl)
            .context("cannot assign partitions to the consumer")?;
        let mut out: Vec<crate::io::Routed> = Vec::new();
        if !self.split_delay.is_zero() {
            std::thread::sleep(self.split_delay);
        }
        let strays = Arc::new(Mutex::new(Vec::new()));
        for ((p, probe), (next, end)) in mine.into_iter().zip(probes).zip(bounds) {
            let queue = consumer
                .split_partition_queue(&p.topic, p.partition)
                .ok_or_else(|| anyhow::anyhow!("cannot read {}/{}", p.topic, p.partition))?;
            let skew_ms = self.skew_ms(p);
            out.push((
                p.routes.clone(),
                Box::new(KafkaPartition {
                    side: p.routes[0].side,
                    topic: p.topic.as_str().into(),
                    topic_c: CString::new(p.topic.as_str())?,
                    partition: p.partition,
                    consumer: consumer.clone(),
                    queue,
                    strays: strays.clone(),
                    next,
                    read_any: false,
                    end,
                    skew_ms,
                    probe,
                    error_logged: None,
                    errors: 0,
                }),
            ));
        }
        Ok(out)
    }
}

impl KafkaInputs {
    /// A partition's allowance for clock skew: the least of its entities'.
    fn skew_ms(&self, p: &TopicPartition) -> u64 {
        p.routes
            .iter()
            .map(|r| self.clock_skew_ms[r.entity])
            .min()
            .unwrap_or(0)
    }
}

/// Hands message `offset` to `f` unless it was read already (a stray read again);
/// returns how many it handed over.
fn take(
    next: &mut i64,
    read_any: &mut bool,
    f: &mut dyn FnMut(&Message<'_>, u64),
    offset: i64,
    message: &Message<'_>,
) -> usize {
    if *read_any && offset < *next {
        return 0;
    }
    f(message, offset as u64);
    *next = offset + 1;
    *read_any = true;
    1
}

/// A Kafka message as the decoders take it.
fn message_of<M: rdkafka::message::Message>(m: &M) -> Message<'_> {
    Message {
        key: m.key(),
        value: m.payload(),
        timestamp_ms: m.timestamp().to_millis(),
    }
}

/// One assigned partition.
struct KafkaPartition {
    side: SideId,
    topic: Arc<str>,
    partition: i32,
    consumer: Arc<BaseConsumer>,
    queue: PartitionQueue<DefaultConsumerContext>,
    /// The topic name for librdkafka calls.
    topic_c: CString,
    /// Messages the consumer's main queue returned (fetched before the queues were
    /// split), shared by the consumer's partitions.
    strays: Arc<Mutex<Vec<OwnedMessage>>>,
    /// The next offset to read (one past the last read).
    next: i64,
    /// Whether anything was read yet (until then the log may begin after `next`).
    read_any: bool,
    /// Exclusive end offset, when bounded.
    end: Option<i64>,
    skew_ms: u64,
    /// The partition's end as last asked of the broker.
    probe: Arc<Probe>,
    error_logged: Option<Instant>,
    /// Errors since the last `take_errors`.
    errors: u64,
}

impl KafkaPartition {
    /// Messages between the read position and the high watermark librdkafka cached
    /// from its last fetch (no request is made); `None` before the first fetch.
    fn lag(&self) -> Option<i64> {
        let (mut low, mut high) = (-1i64, -1i64);
        // SAFETY: the client outlives this call (held by `self.consumer`), the topic is
        // a NUL-terminated string we own, and the out-pointers are valid locals.
        let err = unsafe {
            rdkafka::bindings::rd_kafka_get_watermark_offsets(
                self.consumer.client().native_ptr(),
                self.topic_c.as_ptr(),
                self.partition,
                &mut low,
                &mut high,
            )
        };
        if err != rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || high < 0 {
            return None;
        }
        // Until the first message, the log may begin after `next` (retention).
        let position = if self.read_any {
            self.next
        } else {
            self.next.max(low)
        };
        Some((high - position).max(0))
    }

    /// Moves what the consumer's main queue holds aside (errors are noted) and returns
    /// this partition's strays, in offset order. They precede its own queue's messages.
    /// Nothing is allocated or locked for long when there are none, as nearly always.
    fn take_strays(&mut self) -> anyhow::Result<Vec<OwnedMessage>> {
        let mut found = Vec::new();
        loop {
            match self.consumer.poll(Duration::ZERO) {
                None => break,
                Some(Err(e)) => self.note_error(e.to_string()),
                Some(Ok(m)) => found.push(m.detach()),
            }
        }
        let mut all = self
            .strays
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        all.append(&mut found);
        if all.is_empty() {
            return Ok(found);
        }
        let (mut mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut *all)
            .into_iter()
            .partition(|m| m.partition() == self.partition && m.topic() == &*self.topic);
        *all = others;
        mine.sort_by_key(|m| m.offset());
        Ok(mine)
    }

    fn note_error(&mut self, e: String) {
        // librdkafka retries by itself; say so once in a while, not per poll.
        if self
            .error_logged
            .is_none_or(|t| t.elapsed() > Duration::from_secs(10))
        {
            eprintln!(
                "driftwatch: kafka {}/{}: {e} (retrying)",
                self.topic, self.partition
            );
            self.error_logged = Some(Instant::now());
        }
        self.errors += 1;
    }
}

impl Partition for KafkaPartition {
    fn side(&self) -> SideId {
        self.side
    }

    fn poll(&mut self, max: usize, f: &mut dyn FnMut(&Message<'_>, u64)) -> anyhow::Result<Poll> {
        let mine = self.take_strays()?;
        if self.end.is_some_and(|end| self.next >= end) {
            return Ok(Poll::Done);
        }
        let mut read = 0;
        let (mut next, mut read_any) = (self.next, self.read_any);
        let at_end = |next: i64| self.end.is_some_and(|end| next >= end);
        for m in &mine {
            if at_end(next) {
                break;
            }
            read += take(&mut next, &mut read_any, f, m.offset(), &message_of(m));
        }
        let mut error = None;
        while read < max && !at_end(next) {
            match self.queue.poll(Duration::ZERO) {
                None => break,
                Some(Err(e)) => {
                    error = Some(e.to_string());
                    break;
                }
                Some(Ok(m)) => {
                    read += take(&mut next, &mut read_any, f, m.offset(), &message_of(&m))
                }
            }
        }
        (self.next, self.read_any) = (next, read_any);
        if let Some(e) = error {
            self.note_error(e);
        }
        if read > 0 {
            // Committed (asynchronously, by librdkafka) for lag tools only. This call
            // takes the last message's offset; librdkafka commits the one after it.
            let _ = self
                .consumer
                .store_offset(&self.topic, self.partition, self.next - 1);
            Ok(Poll::Ready)
        } else {
            Ok(Poll::Idle)
        }
    }

    fn heartbeat(&mut self) -> Option<u64> {
        if self.end.is_some() {
            return None;
        }
        // Everything produced before the end was asked for has been read: later
        // messages carry later times (less the skew allowance).
        let (low, high, asked) = self.probe.get()?;
        let position = if self.read_any {
            self.next
        } else {
            self.next.max(low)
        };
        (position >= high).then(|| asked.saturating_sub(self.skew_ms))
    }

    fn gauge(&mut self) -> Option<(String, i32, i64)> {
        Some((self.topic.to_string(), self.partition, self.lag()?))
    }

    fn set_paused(&mut self, paused: bool) -> anyhow::Result<()> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.topic, self.partition);
        let result = if paused {
            self.consumer.pause(&tpl)
        } else {
            self.consumer.resume(&tpl)
        };
        result.with_context(|| format!("cannot pause/resume {}/{}", self.topic, self.partition))
    }

    fn topic_partition(&self) -> Option<(String, i32)> {
        Some((self.topic.to_string(), self.partition))
    }

    fn resume_position(&self) -> Option<i64> {
        // Until the first message, `next` is the start offset given (or 0: earliest).
        Some(self.next)
    }

    fn take_errors(&mut self) -> u64 {
        std::mem::take(&mut self.errors)
    }

    fn origin(&self, position: u64) -> Origin {
        Origin::Kafka {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: position as i64,
        }
    }
}
