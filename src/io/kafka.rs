//! Kafka: partitions as inputs, topics as outputs, and topic administration.
//!
//! - [`config`]: client settings from the spec (brokers, properties, `${VAR}` secrets);
//! - [`connect`]: the first contact: refused credentials or certificates named at once;
//! - [`admin`]: input topic metadata, creation of missing output topics;
//! - [`source`]: statically assigned partitions read through per-partition queues;
//! - [`probe`]: fresh high watermarks, for when a partition may vouch for the clock;
//! - [`sink`]: drift, corrections and dead letters produced idempotently, every
//!   delivery checked.

pub mod admin;
pub mod config;
pub(crate) mod connect;
pub mod probe;
pub mod sink;
pub mod source;
