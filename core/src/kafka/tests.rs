use clap::Parser;

use super::*;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    producer: ProducerArgs,
}

fn cli(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("test").chain(args.iter().copied())).expect("parses")
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn properties_split_on_newlines_and_commas_and_keep_comma_lists_together() {
    let parsed =
        parse_properties("a=1,bootstrap.servers=h1:9092,h2:9092\n# comment\n\n  c = x=y ").expect("ok");
    assert_eq!(
        parsed,
        pairs(&[("a", "1"), ("bootstrap.servers", "h1:9092,h2:9092"), ("c", "x=y")])
    );
}

#[test]
fn a_property_without_a_key_is_refused() {
    assert_eq!(
        parse_properties("novalue"),
        Err(KafkaConfigError::MalformedProperty("novalue".into()))
    );
    assert_eq!(
        parse_properties("=v"),
        Err(KafkaConfigError::MalformedProperty("=v".into()))
    );
}

#[test]
fn security_flags_and_extra_properties_reach_the_client_config() {
    let c = cli(&[
        "--kafka-bootstrap-servers=b:9092",
        "--kafka-security-protocol=sasl_ssl",
        "--kafka-sasl-mechanism=PLAIN",
        "--kafka-sasl-username=u",
        "--kafka-sasl-password=secret",
        "--kafka-property=client.id=x,socket.timeout.ms=5000",
        "--kafka-property=sasl.mechanism=SCRAM-SHA-512",
    ]);
    let config = c.kafka.client_config().expect("valid");
    assert_eq!(config.get("bootstrap.servers"), Some("b:9092"));
    assert_eq!(config.get("security.protocol"), Some("sasl_ssl"));
    assert_eq!(config.get("sasl.password"), Some("secret"));
    assert_eq!(config.get("client.id"), Some("x"));
    assert_eq!(
        config.get("sasl.mechanism"),
        Some("SCRAM-SHA-512"),
        "extra properties win"
    );
    assert!(
        !format!("{:?}", c.kafka).contains("secret"),
        "Debug must not print the password"
    );
}

#[test]
fn producer_config_is_durable_and_tunable() {
    let c = cli(&[
        "--kafka-bootstrap-servers=b:9092",
        "--kafka-linger-ms=20",
        "--kafka-property=acks=-1",
    ]);
    let config = producer_config(&c.kafka, &c.producer).expect("valid");
    assert_eq!(config.get("acks"), Some("all"));
    assert_eq!(config.get("enable.idempotence"), Some("true"));
    assert_eq!(config.get("linger.ms"), Some("20"));
    assert_eq!(config.get("compression.type"), Some("lz4"));
}

#[test]
fn extra_properties_cannot_weaken_delivery() {
    for prop in ["acks=1", "request.required.acks=0", "enable.idempotence=false"] {
        let c = cli(&[
            "--kafka-bootstrap-servers=b:9092",
            &format!("--kafka-property={prop}"),
        ]);
        let err = producer_config(&c.kafka, &c.producer).expect_err(prop);
        assert!(
            matches!(err, KafkaConfigError::WeakensDelivery { .. }),
            "{prop}: {err}"
        );
    }
}
