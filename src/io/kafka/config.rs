//! librdkafka client settings from the spec: brokers, user properties, `${VAR}` secrets.

use crate::spec::Spec;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};

/// The resolved client settings of a job. `Debug` shows property names, never values.
#[derive(Clone)]
pub struct KafkaConfig {
    brokers: String,
    /// User properties with `${VAR}` already read from the environment.
    properties: Vec<(String, String)>,
    /// The consumer group for offset commits.
    pub group_id: String,
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.properties.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("properties", &names)
            .field("group_id", &self.group_id)
            .finish()
    }
}

impl KafkaConfig {
    /// Resolves the spec's `[kafka]` table (with `brokers` overridden if given).
    pub fn new(spec: &Spec, brokers: Option<&str>) -> anyhow::Result<Self> {
        let brokers = brokers
            .map(str::to_string)
            .or_else(|| spec.kafka.brokers.clone())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no Kafka brokers: set `kafka.brokers` in the spec or give --brokers"
                )
            })?;
        let mut properties = Vec::new();
        for (name, value) in &spec.kafka.properties {
            properties.push((name.clone(), expand(name, value)?));
        }
        Ok(KafkaConfig {
            brokers,
            properties,
            group_id: spec.group_id(),
        })
    }

    /// Plain settings for `brokers`: no properties, a group id for offset commits.
    pub fn for_brokers(brokers: &str, group_id: &str) -> Self {
        KafkaConfig {
            brokers: brokers.to_string(),
            properties: Vec::new(),
            group_id: group_id.to_string(),
        }
    }

    /// Settings for `brokers` with user `properties` (`${VAR}` read from the
    /// environment), a group id for offset commits.
    pub fn with_properties(
        brokers: &str,
        group_id: &str,
        properties: &std::collections::BTreeMap<String, String>,
    ) -> anyhow::Result<Self> {
        let mut config = Self::for_brokers(brokers, group_id);
        for (name, value) in properties {
            config.properties.push((name.clone(), expand(name, value)?));
        }
        Ok(config)
    }

    /// Whether `other` reaches the same cluster the same way (brokers and properties), so
    /// one client can serve both.
    pub fn same_client(&self, other: &KafkaConfig) -> bool {
        self.brokers == other.brokers && self.properties == other.properties
    }

    /// The bootstrap servers.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// A client config with the brokers, driftwatch's defaults for `role`, then the
    /// user's properties (which win).
    pub fn client(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        c.set_log_level(RDKafkaLogLevel::Warning);
        for (k, v) in defaults {
            c.set(*k, *v);
        }
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }
}

/// Reads `${VAR}` from the environment; other values are taken as written.
fn expand(name: &str, value: &str) -> anyhow::Result<String> {
    match value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
        Some(var) => std::env::var(var).map_err(|_| {
            anyhow::anyhow!(
                "kafka.properties.{name} reads the environment variable {var}, which is not set"
            )
        }),
        None => Ok(value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_the_environment_and_are_not_shown() {
        let mut spec = crate::spec::load_str(crate::demo::ORDERS_SPEC).unwrap();
        spec.kafka
            .properties
            .insert("sasl.password".into(), "${DW_TEST_SECRET_XYZ}".into());
        let err = KafkaConfig::new(&spec, None).unwrap_err().to_string();
        assert!(err.contains("DW_TEST_SECRET_XYZ"), "{err}");
        std::env::set_var("DW_TEST_SECRET_XYZ", "hunter2");
        let c = KafkaConfig::new(&spec, Some("127.0.0.1:1")).unwrap();
        assert_eq!(c.brokers(), "127.0.0.1:1");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.client(&[]).get("sasl.password"), Some("hunter2"));
    }
}
