//! A Kafka record copied out of the client's buffers, as the sink keeps it until it is durable.

use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Headers, OwnedHeaders};
use streamlake_core::rawzone::IngestionDate;

/// Bookkeeping bytes charged per record on top of its key, payload and headers.
const RECORD_OVERHEAD: usize = 96;

#[derive(Debug)]
pub struct SourceRecord {
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch (create or log-append time); `None` if the record has none.
    pub timestamp: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Option<OwnedHeaders>,
}

impl SourceRecord {
    pub fn from_message(message: &BorrowedMessage<'_>) -> Self {
        Self {
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers: message.headers().map(|h| h.detach()),
        }
    }

    /// The record's date partition. Records without a timestamp go to 1970-01-01, where they are
    /// rejected to the DLQ (and listed there), so every offset still has exactly one home.
    pub fn ingestion_date(&self) -> IngestionDate {
        let millis = self.timestamp.unwrap_or(0);
        IngestionDate::from_timestamp_millis(millis).unwrap_or_else(|_| epoch_date())
    }

    /// Memory charged against the buffer budget while the record is held.
    pub fn charged_bytes(&self) -> usize {
        let headers: usize = self
            .headers
            .as_ref()
            .map(|h| {
                h.iter()
                    .map(|h| h.key.len() + h.value.map_or(0, <[u8]>::len))
                    .sum()
            })
            .unwrap_or(0);
        RECORD_OVERHEAD
            + self.key.as_ref().map_or(0, Vec::len)
            + self.payload.as_ref().map_or(0, Vec::len)
            + headers
    }
}

fn epoch_date() -> IngestionDate {
    IngestionDate::new(chrono::NaiveDate::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(timestamp: Option<i64>) -> SourceRecord {
        SourceRecord {
            partition: 0,
            offset: 0,
            timestamp,
            key: None,
            payload: None,
            headers: None,
        }
    }

    #[test]
    fn date_is_the_utc_day_of_the_timestamp() {
        assert_eq!(
            record(Some(1_735_862_400_000)).ingestion_date().to_string(),
            "2025-01-03"
        );
    }

    #[test]
    fn records_without_a_timestamp_get_the_epoch_date() {
        assert_eq!(record(None).ingestion_date().to_string(), "1970-01-01");
        assert_eq!(record(Some(i64::MAX)).ingestion_date().to_string(), "1970-01-01");
    }

    #[test]
    fn charged_bytes_count_key_payload_and_headers() {
        let mut r = record(None);
        let empty = r.charged_bytes();
        r.key = Some(vec![0; 10]);
        r.payload = Some(vec![0; 1000]);
        r.headers = Some(OwnedHeaders::new().insert(rdkafka::message::Header {
            key: "abc",
            value: Some("12345"),
        }));
        assert_eq!(r.charged_bytes(), empty + 10 + 1000 + 8);
    }
}
