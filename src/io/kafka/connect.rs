//! The first contact with the cluster: a wrong password or an untrusted certificate is
//! refused within seconds, by name, instead of retried forever.
//!
//! librdkafka retries every connection failure, authentication and TLS included, so a
//! misconfigured job would sit silent while its metadata request times out. The first
//! metadata request therefore runs on a client whose context keeps the errors and log
//! lines librdkafka reports, in short rounds; as soon as one of them says the SASL
//! handshake or the certificate check failed, the job stops with a line that says which
//! and what to fix. Neither librdkafka's reasons nor these lines carry the password.

use super::config::KafkaConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why a connection cannot succeed, as far as librdkafka has said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// SASL authentication failed: wrong user, password or mechanism.
    Authentication,
    /// The broker's certificate was not trusted.
    UntrustedCertificate,
    /// The TLS handshake failed for another reason.
    Tls,
}

impl Refusal {
    /// What librdkafka's error or log line means, if it is a refusal.
    pub(crate) fn classify(code: Option<RDKafkaErrorCode>, text: &str) -> Option<Refusal> {
        let lower = text.to_ascii_lowercase();
        if code == Some(RDKafkaErrorCode::Authentication)
            || lower.contains("sasl authentication error")
            || lower.contains("authentication failed")
        {
            Some(Refusal::Authentication)
        } else if lower.contains("certificate verify failed")
            || lower.contains("certificate could not be verified")
        {
            Some(Refusal::UntrustedCertificate)
        } else if code == Some(RDKafkaErrorCode::SSL) || lower.contains("ssl handshake failed") {
            Some(Refusal::Tls)
        } else {
            None
        }
    }

    fn explain(self, brokers: &str) -> String {
        match self {
            Refusal::Authentication => format!(
                "Kafka at {brokers} refused the credentials (SASL authentication failed): \
                 check kafka.properties sasl.username, sasl.password and sasl.mechanism"
            ),
            Refusal::UntrustedCertificate => format!(
                "the TLS certificate of Kafka at {brokers} is not trusted: set \
                 kafka.properties ssl.ca.location to the CA that signed it"
            ),
            Refusal::Tls => format!(
                "the TLS handshake with Kafka at {brokers} failed: check \
                 kafka.properties security.protocol and the ssl.* settings"
            ),
        }
    }
}

/// A client context that remembers the first refusal librdkafka reports.
#[derive(Default)]
pub(crate) struct Watch {
    refusal: Mutex<Option<Refusal>>,
}

impl Watch {
    fn note(&self, code: Option<RDKafkaErrorCode>, text: &str) {
        if let Some(r) = Refusal::classify(code, text) {
            if let Ok(mut slot) = self.refusal.lock() {
                slot.get_or_insert(r);
            }
        }
    }

    fn refusal(&self) -> Option<Refusal> {
        self.refusal.lock().ok().and_then(|r| *r)
    }
}

impl ClientContext for Watch {
    fn log(&self, level: RDKafkaLogLevel, _facility: &str, message: &str) {
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
            self.note(None, message);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.note(error.rdkafka_error_code(), reason);
    }
}

impl ConsumerContext for Watch {}

/// The cluster's metadata for `topic`, or an error that says why it cannot be had:
/// refused credentials or certificate (as soon as librdkafka reports them), otherwise
/// the last error after `timeout`.
pub(crate) fn metadata(
    config: &KafkaConfig,
    topic: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<Metadata> {
    let client: BaseConsumer<Watch> = config
        .client(&[])
        .create_with_context(Watch::default())
        .map_err(|e| anyhow::anyhow!("cannot create a Kafka client: {e}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        let round = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(500));
        let result = client.fetch_metadata(topic, round);
        // Error events reach the context only when the client is polled.
        let _ = client.poll(Duration::ZERO);
        if let Some(refusal) = client.context().refusal() {
            anyhow::bail!("{}", refusal.explain(config.brokers()));
        }
        match result {
            Ok(md) => return Ok(md),
            Err(e) if Instant::now() >= deadline => {
                anyhow::bail!("cannot reach Kafka at {}: {e}", config.brokers())
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn librdkafka_reasons_are_classified() {
        let auth = "sasl_ssl://127.0.0.1:1/bootstrap: SASL authentication error: \
                    Authentication failed during authentication due to invalid credentials \
                    with SASL mechanism SCRAM-SHA-512";
        assert_eq!(Refusal::classify(None, auth), Some(Refusal::Authentication));
        let cert = "ssl://127.0.0.1:1/bootstrap: SSL handshake failed: error:0A000086:SSL \
                    routines::certificate verify failed: broker certificate could not be \
                    verified, verify that ssl.ca.location is correctly configured";
        assert_eq!(
            Refusal::classify(Some(RDKafkaErrorCode::SSL), cert),
            Some(Refusal::UntrustedCertificate)
        );
        assert_eq!(
            Refusal::classify(Some(RDKafkaErrorCode::SSL), "SSL handshake failed: EOF"),
            Some(Refusal::Tls)
        );
        assert_eq!(
            Refusal::classify(
                Some(RDKafkaErrorCode::BrokerTransportFailure),
                "Connection refused"
            ),
            None
        );
    }
}
