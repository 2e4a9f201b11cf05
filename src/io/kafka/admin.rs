//! Topic metadata (partitions of the input topics) and creation of missing output topics.

use super::config::KafkaConfig;
use anyhow::Context as _;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use std::time::Duration;

/// How long metadata and admin requests may take.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// The number of partitions of each topic, in the order given; an error names a
/// missing topic.
pub fn partitions(config: &KafkaConfig, topics: &[String]) -> anyhow::Result<Vec<i32>> {
    // One request: for one topic, that topic's metadata; for several, the cluster's
    // (a job of two hundred entities made four hundred requests).
    let one = match topics {
        [topic] => Some(topic.as_str()),
        _ => None,
    };
    let md = super::connect::metadata(config, one, TIMEOUT)?;
    topics
        .iter()
        .map(|topic| {
            let t = md
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .filter(|t| t.error().is_none() && !t.partitions().is_empty())
                .ok_or_else(|| {
                    anyhow::anyhow!("topic {topic} does not exist on {}", config.brokers())
                })?;
            Ok(t.partitions().len() as i32)
        })
        .collect()
}

/// An output topic to make sure of.
pub struct OutputTopic<'a> {
    /// Its name.
    pub name: &'a str,
    /// Partitions, if it has to be created.
    pub partitions: i32,
    /// Whether it is a changelog (`cleanup.policy=compact`).
    pub compact: bool,
}

/// Creates the topics that do not exist yet; existing ones are left as they are.
pub fn ensure_topics(config: &KafkaConfig, topics: &[OutputTopic<'_>]) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = config
        .client(&[])
        .create()
        .context("cannot create a Kafka admin client")?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            let topic = NewTopic::new(t.name, t.partitions, TopicReplication::Fixed(-1));
            if t.compact {
                topic.set("cleanup.policy", "compact")
            } else {
                topic
            }
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let results = futures_executor::block_on(admin.create_topics(&new, &options))
        .with_context(|| format!("cannot create output topics on {}", config.brokers()))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!("cannot create topic {name}: {code}"),
        }
    }
    Ok(())
}
