//! Kafka client configuration shared by every StreamLake binary: connection and security flags, extra
//! librdkafka properties, and the producer settings that make an acknowledged record durable.

use std::fmt;

use clap::Args;
use rdkafka::ClientConfig;

pub mod topics;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KafkaConfigError {
    #[error("Kafka property {0:?} is not of the form key=value")]
    MalformedProperty(String),
    #[error(
        "Kafka property {key}={value} would weaken delivery guarantees; StreamLake producers always use \
         {key}={required}"
    )]
    WeakensDelivery {
        key: String,
        value: String,
        required: &'static str,
    },
}

/// How to reach the Kafka cluster. Flattened into each binary's command line.
#[derive(Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, host:port[,host:port...].
    #[arg(long = "kafka-bootstrap-servers", env = "KAFKA_BOOTSTRAP_SERVERS")]
    pub bootstrap_servers: String,
    /// security.protocol: plaintext, ssl, sasl_plaintext or sasl_ssl (managed Kafka usually sasl_ssl).
    #[arg(long = "kafka-security-protocol", env = "KAFKA_SECURITY_PROTOCOL")]
    pub security_protocol: Option<String>,
    /// sasl.mechanism, e.g. PLAIN, SCRAM-SHA-512, OAUTHBEARER.
    #[arg(long = "kafka-sasl-mechanism", env = "KAFKA_SASL_MECHANISM")]
    pub sasl_mechanism: Option<String>,
    #[arg(long = "kafka-sasl-username", env = "KAFKA_SASL_USERNAME")]
    pub sasl_username: Option<String>,
    #[arg(
        long = "kafka-sasl-password",
        env = "KAFKA_SASL_PASSWORD",
        hide_env_values = true
    )]
    pub sasl_password: Option<String>,
    /// CA certificate file used to verify the brokers (ssl.ca.location).
    #[arg(long = "kafka-ssl-ca-location", env = "KAFKA_SSL_CA_LOCATION")]
    pub ssl_ca_location: Option<String>,
    /// Extra librdkafka properties as key=value; repeat the flag, or separate them by newlines or commas
    /// (KAFKA_PROPERTIES). They are applied last, so they override the flags above.
    #[arg(long = "kafka-property", env = "KAFKA_PROPERTIES", hide_env_values = true)]
    pub properties: Vec<String>,
}

// The password and extra properties (which may hold secrets) stay out of logs.
impl fmt::Debug for KafkaArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaArgs")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("security_protocol", &self.security_protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field(
                "sasl_password",
                &self.sasl_password.as_ref().map(|_| "<redacted>"),
            )
            .field("ssl_ca_location", &self.ssl_ca_location)
            .field("properties", &format_args!("<{} entries>", self.properties.len()))
            .finish()
    }
}

impl KafkaArgs {
    /// Connection settings for plain clients (admin, consumer) on a given bootstrap list.
    pub fn for_bootstrap(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            security_protocol: None,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            ssl_ca_location: None,
            properties: Vec::new(),
        }
    }

    /// The librdkafka properties these flags stand for, in the order they are applied.
    pub fn properties(&self) -> Result<Vec<(String, String)>, KafkaConfigError> {
        let mut props = vec![("bootstrap.servers".to_owned(), self.bootstrap_servers.clone())];
        let flags = [
            ("security.protocol", &self.security_protocol),
            ("sasl.mechanism", &self.sasl_mechanism),
            ("sasl.username", &self.sasl_username),
            ("sasl.password", &self.sasl_password),
            ("ssl.ca.location", &self.ssl_ca_location),
        ];
        props.extend(
            flags
                .into_iter()
                .filter_map(|(k, v)| v.clone().map(|v| (k.to_owned(), v))),
        );
        for list in &self.properties {
            props.extend(parse_properties(list)?);
        }
        Ok(props)
    }

    pub fn client_config(&self) -> Result<ClientConfig, KafkaConfigError> {
        let mut config = ClientConfig::new();
        for (key, value) in self.properties()? {
            config.set(key, value);
        }
        Ok(config)
    }
}

/// Parses `key=value` entries separated by newlines or commas. A comma-separated piece without `=`
/// continues the previous value, so `bootstrap.servers=a:9092,b:9092` stays one entry.
pub fn parse_properties(list: &str) -> Result<Vec<(String, String)>, KafkaConfigError> {
    let mut props: Vec<(String, String)> = Vec::new();
    for line in list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        for piece in line.split(',') {
            match piece.split_once('=') {
                Some((key, value)) if !key.trim().is_empty() => {
                    props.push((key.trim().to_owned(), value.trim().to_owned()));
                }
                None if !piece.trim().is_empty() && !props.is_empty() => {
                    if let Some((_, value)) = props.last_mut() {
                        value.push(',');
                        value.push_str(piece.trim());
                    }
                }
                None if piece.trim().is_empty() => {}
                _ => return Err(KafkaConfigError::MalformedProperty(piece.trim().to_owned())),
            }
        }
    }
    Ok(props)
}

/// Producer tuning. acks=all and idempotence are not settings: they are always on.
#[derive(Debug, Clone, Args)]
pub struct ProducerArgs {
    /// compression.type: none, gzip, snappy, lz4 or zstd.
    #[arg(long = "kafka-compression", env = "KAFKA_COMPRESSION", default_value = "lz4")]
    pub compression: String,
    /// linger.ms: how long the producer waits to fill a batch. Small, because each HTTP answer waits for
    /// its record's acknowledgement; records queued while a request is in flight are batched anyway.
    #[arg(long = "kafka-linger-ms", env = "KAFKA_LINGER_MS", default_value_t = 1)]
    pub linger_ms: u32,
    /// message.timeout.ms: how long a record may wait for its acknowledgement before it fails.
    #[arg(
        long = "kafka-message-timeout-ms",
        env = "KAFKA_MESSAGE_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub message_timeout_ms: u32,
    /// queue.buffering.max.messages: records waiting for the broker before sends are refused.
    #[arg(
        long = "kafka-queue-max-messages",
        env = "KAFKA_QUEUE_MAX_MESSAGES",
        default_value_t = 100_000
    )]
    pub queue_max_messages: u32,
    /// queue.buffering.max.kbytes: bytes waiting for the broker before sends are refused.
    #[arg(
        long = "kafka-queue-max-kbytes",
        env = "KAFKA_QUEUE_MAX_KBYTES",
        default_value_t = 262_144
    )]
    pub queue_max_kbytes: u32,
}

impl Default for ProducerArgs {
    fn default() -> Self {
        Self {
            compression: "lz4".into(),
            linger_ms: 1,
            message_timeout_ms: 10_000,
            queue_max_messages: 100_000,
            queue_max_kbytes: 262_144,
        }
    }
}

/// Properties that an acknowledged record depends on; extra properties may not change them.
const DURABILITY: [(&str, &str); 2] = [("acks", "all"), ("enable.idempotence", "true")];

/// A producer configuration: connection, tuning, then acks=all and idempotence, which cannot be weakened.
pub fn producer_config(kafka: &KafkaArgs, producer: &ProducerArgs) -> Result<ClientConfig, KafkaConfigError> {
    let props = kafka.properties()?;
    for (key, value) in &props {
        let alias = if key == "request.required.acks" {
            "acks"
        } else {
            key.as_str()
        };
        if let Some((_, required)) = DURABILITY.iter().find(|(k, _)| *k == alias) {
            let equivalent = *required == value || (alias == "acks" && value == "-1");
            if !equivalent {
                return Err(KafkaConfigError::WeakensDelivery {
                    key: key.clone(),
                    value: value.clone(),
                    required,
                });
            }
        }
    }
    let mut config = ClientConfig::new();
    config
        .set("compression.type", &producer.compression)
        .set("linger.ms", producer.linger_ms.to_string())
        .set("message.timeout.ms", producer.message_timeout_ms.to_string())
        .set(
            "queue.buffering.max.messages",
            producer.queue_max_messages.to_string(),
        )
        .set(
            "queue.buffering.max.kbytes",
            producer.queue_max_kbytes.to_string(),
        );
    for (key, value) in props {
        config.set(key, value);
    }
    for (key, value) in DURABILITY {
        config.set(key, value);
    }
    Ok(config)
}

#[cfg(test)]
mod tests;
