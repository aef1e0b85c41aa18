use chrono::TimeZone;

use super::*;

fn metadata() -> RecordMetadata {
    RecordMetadata {
        event_id: Uuid::now_v7(),
        schema_version: 3,
        ingested_at: Utc
            .with_ymd_and_hms(2026, 11, 22, 10, 0, 0)
            .single()
            .expect("valid time"),
        source: "checkout".into(),
        content_type: CONTENT_TYPE_JSON.into(),
    }
}

#[test]
fn record_metadata_round_trips_through_kafka_headers() {
    let meta = metadata();
    let headers = meta.to_headers();
    assert_eq!(
        get_str(&headers, INGESTED_AT),
        Ok(Some("2026-11-22T10:00:00.000Z"))
    );
    assert_eq!(get_str(&headers, SCHEMA_VERSION), Ok(Some("3")));
    assert_eq!(RecordMetadata::from_headers(&headers), Ok(meta));
}

#[test]
fn dlq_headers_round_trip_with_and_without_a_source_position() {
    let failed_at = Utc
        .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
        .single()
        .expect("valid time");
    let api = DlqError {
        stage: ErrorStage::Api,
        error_type: "contract_violation".into(),
        message: "/currency: \"euro\" does not match".into(),
        source_topic: "streamlake.orders.raw".into(),
        source_partition: None,
        source_offset: None,
        failed_at,
        original_bytes: None,
    };
    let headers = metadata().append_to(api.to_headers());
    assert_eq!(get_str(&headers, SOURCE_PARTITION), Ok(None));
    assert_eq!(DlqError::from_headers(&headers), Ok(api.clone()));
    assert!(
        RecordMetadata::from_headers(&headers).is_ok(),
        "metadata survives next to error headers"
    );

    let consumer = DlqError {
        stage: ErrorStage::Consumer,
        source_partition: Some(4),
        source_offset: Some(99),
        ..api
    };
    let headers = consumer.to_headers();
    assert_eq!(get_str(&headers, ERROR_STAGE), Ok(Some("consumer")));
    assert_eq!(get_str(&headers, PAYLOAD_ORIGINAL_BYTES), Ok(None));
    assert_eq!(DlqError::from_headers(&headers), Ok(consumer.clone()));

    let excerpt = consumer.excerpt(65_536, 150_000);
    assert!(
        excerpt
            .message
            .ends_with("; this record keeps its first 65536 bytes"),
        "{}",
        excerpt.message
    );
    let headers = excerpt.to_headers();
    assert_eq!(get_str(&headers, PAYLOAD_ORIGINAL_BYTES), Ok(Some("150000")));
    assert_eq!(DlqError::from_headers(&headers), Ok(excerpt));
}

#[test]
fn long_error_messages_are_cut_on_a_char_boundary() {
    let dlq = DlqError {
        stage: ErrorStage::Api,
        error_type: "x".into(),
        message: "é".repeat(MAX_ERROR_MESSAGE_BYTES),
        source_topic: "t".into(),
        source_partition: None,
        source_offset: None,
        failed_at: Utc::now(),
        original_bytes: None,
    };
    let headers = dlq.to_headers();
    let message = get_str(&headers, ERROR_MESSAGE).expect("utf-8").expect("present");
    assert_eq!(message.len(), MAX_ERROR_MESSAGE_BYTES);
}

#[test]
fn missing_or_malformed_headers_are_named_in_the_error() {
    let headers = OwnedHeaders::new().insert(text(EVENT_ID, "not-a-uuid"));
    match RecordMetadata::from_headers(&headers) {
        Err(HeaderError::Invalid { name, value, .. }) => {
            assert_eq!((name, value.as_str()), (EVENT_ID, "not-a-uuid"))
        }
        other => panic!("expected an invalid event_id, got {other:?}"),
    }
    let headers = OwnedHeaders::new().insert(text(ERROR_STAGE, "api"));
    assert_eq!(
        DlqError::from_headers(&headers),
        Err(HeaderError::Missing(ERROR_TYPE))
    );
    let headers = OwnedHeaders::new().insert(text(ERROR_STAGE, "lake"));
    assert!(matches!(
        DlqError::from_headers(&headers),
        Err(HeaderError::Invalid {
            name: ERROR_STAGE,
            ..
        })
    ));
    let headers = OwnedHeaders::new().insert(Header {
        key: SOURCE,
        value: Some(&[0xff_u8, 0xfe][..]),
    });
    assert_eq!(get_str(&headers, SOURCE), Err(HeaderError::NotUtf8(SOURCE)));
}

#[test]
fn the_last_header_of_a_name_wins() {
    let headers = OwnedHeaders::new()
        .insert(text(SOURCE, "a"))
        .insert(text(SOURCE, "b"));
    assert_eq!(get_str(&headers, SOURCE), Ok(Some("b")));
}
