//! driftwatch: continuous drift detection between a system of record and its copies.
//!
//! Data flows left to right: bytes → changes → per-side state → drift → outputs.
//!
//! - [`spec`]: the job spec (one TOML file per synchronized entity), validated up front.
//! - [`cdc`]: decoders from Debezium / upsert messages to keyed, versioned changes.
//! - [`row`]: canonical rows, normalisation and field-level comparison.
//! - [`dataflow`]: the timely dataflow: keyed state of both sides, drift, grace, corrections.
//! - [`io`]: inputs (files, generators) read so their event times advance together; outputs.
//! - [`checkpoint`]: checkpoint files: abomonation behind a magic/version header and a CRC.
//! - [`loadtest`]: `driftwatch loadtest`: faults injected, fed in real time, scored.
//! - [`metrics`]: Prometheus text exposition of the counters over HTTP.
//! - [`report`]: `driftwatch report`: the current open drift, from the drift topic.
//! - [`job`]: a job's lifecycle: workers, the read loop, checkpoints, the first failure.
//! - [`run`]: jobs assembled from adapters (files, generators, Kafka) and run.
//! - [`shutdown`]: SIGINT/SIGTERM stop a live job without ending event time.
//! - [`alloc`]: the global allocator (mimalloc), and why.
//! - [`demo`]: the embedded default job with generated, fault-injected data.
//! - [`init`]: `driftwatch init`: one spec per table, from the topics themselves.
//! - [`cli`]: the command line.

/// The hash map of the hot paths: foldhash (fast, seeded per process) instead of SipHash.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// The hash set of the hot paths (see [`FastMap`]).
pub type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

pub mod alloc;
pub mod cdc;
pub mod checkpoint;
pub mod cli;
pub mod commands;
pub mod dataflow;
pub mod demo;
pub mod init;
pub mod io;
pub mod job;
pub mod loadtest;
pub mod metrics;
pub mod report;
pub mod row;
pub mod run;
pub mod shutdown;
pub mod spec;
