//! A Kafka record copied out of the client's buffers, as the sink keeps it until it is durable.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
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
    pub headers: Option<RecordHeaders>,
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
            headers: message.headers().map(|h| RecordHeaders::copy(h, arena)),
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
        let headers = self.headers.as_ref().map_or(0, RecordHeaders::content_len);
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
        SourceRecord::from_message(message, self.arena(message.partition()))
    }

    /// The arena of `partition`.
    pub fn arena(&mut self, partition: i32) -> &mut RecordArena {
        self.arenas.entry(partition).or_default()
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
        self.copy_with(bytes.len(), |chunk| chunk.extend_from_slice(bytes))
    }

    /// The `len` bytes that `fill` appends, as one copy in the arena.
    fn copy_with(&mut self, len: usize, fill: impl FnOnce(&mut BytesMut)) -> Bytes {
        if self.chunk.capacity() - self.chunk.len() < len {
            // A record larger than a chunk gets an allocation of its own.
            self.chunk = BytesMut::with_capacity(ARENA_CHUNK.max(len));
        }
        fill(&mut self.chunk);
        debug_assert_eq!(self.chunk.len(), len, "the arena copy is as long as announced");
        self.chunk.split().freeze()
    }
}

/// A record's headers, copied into its partition's arena with its key and payload (librdkafka's own copy
/// takes a malloc per header, freed on another thread: with the ingest API's five headers a record, most
/// of what headers cost the poll loop). Each header is its name's length and its value's (`u32`
/// little-endian; `u32::MAX` for a null value), then the name and the value.
#[derive(Debug, Clone, Default)]
pub struct RecordHeaders {
    bytes: Bytes,
    count: usize,
}

const NULL_VALUE: u32 = u32::MAX;
/// Headers a record's copy reads onto the stack; more go through a `Vec` (the ingest API stamps five).
const STAGED_HEADERS: usize = 8;

impl RecordHeaders {
    /// `headers` copied into `arena`. They are read once (a call into librdkafka each), into a small array
    /// on the stack, or a `Vec` beyond `STAGED_HEADERS`.
    pub fn copy<H: Headers>(headers: &H, arena: &mut RecordArena) -> Self {
        let mut staged: [(&str, Option<&[u8]>); STAGED_HEADERS] = [("", None); STAGED_HEADERS];
        let mut spilled = Vec::new();
        let mut count = 0;
        for header in headers.iter() {
            let entry = (header.key, header.value);
            match staged.get_mut(count) {
                Some(slot) => *slot = entry,
                None if spilled.is_empty() => spilled.extend(staged.iter().copied().chain([entry])),
                None => spilled.push(entry),
            }
            count += 1;
        }
        let entries = if spilled.is_empty() {
            &staged[..count]
        } else {
            &spilled[..]
        };
        let len: usize = (entries.iter())
            .map(|(key, value)| 8 + key.len() + value.map_or(0, <[u8]>::len))
            .sum();
        let bytes = arena.copy_with(len, |chunk| {
            for (key, value) in entries {
                chunk.put_u32_le(key.len() as u32);
                chunk.put_u32_le(value.map_or(NULL_VALUE, |v| v.len() as u32));
                chunk.extend_from_slice(key.as_bytes());
                chunk.extend_from_slice(value.unwrap_or_default());
            }
        });
        Self { bytes, count }
    }

    /// The bytes of the headers' names and values (the copy less each header's two lengths; the poll loop
    /// asks for every record).
    pub fn content_len(&self) -> usize {
        self.bytes.len() - 8 * self.count
    }

    /// Each header's name and value (`None`: a null value), in order, in one pass (the [`Headers`] trait's
    /// `iter` looks each up from the first).
    pub fn entries(&self) -> Entries<'_> {
        Entries {
            bytes: &self.bytes,
            left: self.count,
        }
    }

    /// The headers as a producer takes them (the DLQ forwards them).
    pub fn to_owned_headers(&self) -> OwnedHeaders {
        (self.iter()).fold(OwnedHeaders::new_with_capacity(self.count), |owned, h| {
            owned.insert(h)
        })
    }
}

impl From<OwnedHeaders> for RecordHeaders {
    fn from(headers: OwnedHeaders) -> Self {
        Self::copy(&headers, &mut RecordArena::default())
    }
}

impl Headers for RecordHeaders {
    fn count(&self) -> usize {
        self.count
    }

    fn try_get(&self, idx: usize) -> Option<Header<'_, &[u8]>> {
        let (name, value) = self.entries().nth(idx)?;
        Some(Header {
            key: std::str::from_utf8(name).ok()?,
            value,
        })
    }
}

/// [`RecordHeaders::entries`].
#[derive(Debug)]
pub struct Entries<'a> {
    bytes: &'a [u8],
    left: usize,
}

impl<'a> Iterator for Entries<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        self.left = self.left.checked_sub(1)?;
        let lengths = self.bytes.get(..8)?;
        let name_len = u32::from_le_bytes(lengths[..4].try_into().ok()?) as usize;
        let value_len = u32::from_le_bytes(lengths[4..].try_into().ok()?);
        let value_len = (value_len != NULL_VALUE).then_some(value_len as usize);
        let name = self.bytes.get(8..8 + name_len)?;
        let value_at = 8 + name_len;
        let value = match value_len {
            Some(len) => Some(self.bytes.get(value_at..value_at + len)?),
            None => None,
        };
        self.bytes = self.bytes.get(value_at + value_len.unwrap_or(0)..)?;
        Some((name, value))
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
        r.headers = Some(
            OwnedHeaders::new()
                .insert(rdkafka::message::Header {
                    key: "abc",
                    value: Some("12345"),
                })
                .into(),
        );
        assert_eq!(r.charged_bytes(), empty + 10 + 1000 + 8);
    }

    #[test]
    fn more_headers_than_the_stack_holds_are_copied_in_order() {
        for count in [
            STAGED_HEADERS - 1,
            STAGED_HEADERS,
            STAGED_HEADERS + 1,
            3 * STAGED_HEADERS,
        ] {
            let written: Vec<(String, Option<Vec<u8>>)> = (0..count)
                .map(|i| (format!("h{i}"), (i % 3 != 1).then(|| vec![b'v'; i])))
                .collect();
            let owned = (written.iter()).fold(OwnedHeaders::new(), |h, (key, value)| {
                h.insert(rdkafka::message::Header {
                    key,
                    value: value.as_deref(),
                })
            });
            let headers = RecordHeaders::copy(&owned, &mut RecordArena::default());
            assert_eq!(headers.count(), count);
            let read: Vec<(String, Option<Vec<u8>>)> = (headers.entries())
                .map(|(k, v)| {
                    (
                        String::from_utf8(k.to_vec()).expect("UTF-8"),
                        v.map(<[u8]>::to_vec),
                    )
                })
                .collect();
            assert_eq!(read, written, "{count} headers");
        }
    }

    #[test]
    fn headers_copied_into_the_arena_read_back_as_they_were_written() {
        let written: [(&str, Option<&[u8]>); 5] = [
            ("event_id", Some(b"0192")),
            ("null", None),
            ("empty", Some(b"")),
            ("événement", Some(&[0xff, 0, 1])),
            ("event_id", Some(b"last")),
        ];
        let owned = (written.iter()).fold(OwnedHeaders::new(), |h, &(key, value)| {
            h.insert(rdkafka::message::Header { key, value })
        });
        let mut arena = RecordArena::default();
        let payload = arena.copy(b"payload");
        let headers = RecordHeaders::copy(&owned, &mut arena);
        let read = |h: &dyn Fn(usize) -> Option<(String, Option<Vec<u8>>)>| (0..6).map(h).collect::<Vec<_>>();
        let expected: Vec<_> = (0..6)
            .map(|i| {
                written
                    .get(i)
                    .map(|&(k, v)| (k.to_owned(), v.map(<[u8]>::to_vec)))
            })
            .collect();
        assert_eq!(headers.count(), 5);
        let entries: Vec<(&[u8], Option<&[u8]>)> = headers.entries().collect();
        let as_written: Vec<(&[u8], Option<&[u8]>)> =
            (written.iter()).map(|&(k, v)| (k.as_bytes(), v)).collect();
        assert_eq!(entries, as_written);
        assert_eq!(
            read(&|i| headers
                .try_get(i)
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))),
            expected
        );
        // The copy sits right after the payload in the same chunk, and converts back for the DLQ.
        assert_eq!(
            headers.bytes.as_ptr(),
            payload.as_ptr().wrapping_add(payload.len())
        );
        let back = headers.to_owned_headers();
        assert_eq!(
            read(&|i| back
                .try_get(i)
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))),
            expected
        );
        assert_eq!(
            headers.content_len(),
            8 + 4 + 4 + 5 + "événement".len() + 3 + 8 + 4
        );
        assert_eq!(
            streamlake_core::headers::get_str(&headers, "event_id").expect("UTF-8"),
            Some("last")
        );
        let none = RecordHeaders::from(OwnedHeaders::new());
        assert_eq!(
            (none.count(), none.try_get(0).is_none(), none.content_len()),
            (0, true, 0)
        );
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
