//! A Kafka record copied out of the client's buffers, as the sink keeps it until it is durable.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Headers, OwnedHeaders};
use streamlake_core::rawzone::IngestionDate;

/// Bookkeeping bytes charged per record on top of its key, payload and headers.
const RECORD_OVERHEAD: usize = 96;

/// Size of the chunks keys and payloads are copied into.
pub const ARENA_CHUNK: usize = 128 * 1024;

#[derive(Debug)]
pub struct SourceRecord {
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch (create or log-append time); `None` if the record has none.
    pub timestamp: Option<i64>,
    pub key: Option<Bytes>,
    pub payload: Option<Bytes>,
    pub headers: Option<OwnedHeaders>,
}

impl SourceRecord {
    /// Copies the message out, its key and payload into `arena`.
    pub fn from_message(message: &BorrowedMessage<'_>, arena: &mut RecordArena) -> Self {
        Self {
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis(),
            key: message.key().map(|k| arena.copy(k)),
            payload: message.payload().map(|p| arena.copy(p)),
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
            + self.key.as_ref().map_or(0, Bytes::len)
            + self.payload.as_ref().map_or(0, Bytes::len)
            + headers
    }
}

/// One [`RecordArena`] per Kafka partition, as the poll loop copies records out.
#[derive(Debug, Default)]
pub struct PartitionArenas {
    arenas: HashMap<i32, RecordArena>,
}

impl PartitionArenas {
    /// Copies a message out of the client's buffers, into its partition's arena.
    pub fn copy_out(&mut self, message: &BorrowedMessage<'_>) -> SourceRecord {
        let arena = self.arenas.entry(message.partition()).or_default();
        SourceRecord::from_message(message, arena)
    }

    /// Drops the arena of a partition no longer read (its chunks go once its records are dropped).
    pub fn forget(&mut self, partition: i32) {
        self.arenas.remove(&partition);
    }
}

/// Copies of record bytes, packed into shared chunks: one allocation per chunk instead of one per
/// record (malloc and a cross-thread free per record were ~4% of the consumer's CPU). A chunk is freed
/// when the last record copied into it is dropped, so the poll loop keeps one arena per Kafka partition:
/// the records of a partition land together, and a quiet partition does not pin a busy one's chunks.
#[derive(Debug, Default)]
pub struct RecordArena {
    chunk: BytesMut,
}

impl RecordArena {
    pub fn copy(&mut self, bytes: &[u8]) -> Bytes {
        if self.chunk.capacity() - self.chunk.len() < bytes.len() {
            // A record larger than a chunk gets an allocation of its own.
            self.chunk = BytesMut::with_capacity(ARENA_CHUNK.max(bytes.len()));
        }
        self.chunk.extend_from_slice(bytes);
        self.chunk.split().freeze()
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
        r.key = Some(Bytes::from(vec![0; 10]));
        r.payload = Some(Bytes::from(vec![0; 1000]));
        r.headers = Some(OwnedHeaders::new().insert(rdkafka::message::Header {
            key: "abc",
            value: Some("12345"),
        }));
        assert_eq!(r.charged_bytes(), empty + 10 + 1000 + 8);
    }

    #[test]
    fn arena_copies_share_a_chunk_until_it_is_full() {
        let mut arena = RecordArena::default();
        let a = arena.copy(b"first");
        let b = arena.copy(b"second");
        assert_eq!((&a[..], &b[..]), (&b"first"[..], &b"second"[..]));
        assert_eq!(
            b.as_ptr(),
            a.as_ptr().wrapping_add(a.len()),
            "packed into one chunk"
        );
        let filler = vec![7u8; ARENA_CHUNK - a.len() - b.len() - 1];
        let c = arena.copy(&filler);
        assert_eq!(c.as_ptr(), b.as_ptr().wrapping_add(b.len()));
        let d = arena.copy(b"no room left");
        assert_ne!(d.as_ptr(), c.as_ptr().wrapping_add(c.len()), "a new chunk");
        let big = arena.copy(&vec![1u8; 3 * ARENA_CHUNK]);
        assert_eq!(big.len(), 3 * ARENA_CHUNK);
        assert!(big.iter().all(|&x| x == 1));
        drop((a, b, c));
        assert_eq!(&d[..], b"no room left", "copies outlive the chunks before them");
    }
}
