//! Reading a single event's request body so that one over the size limit is still dead-lettered: its
//! first bytes are kept for the DLQ, and its length is known from `Content-Length` or counted.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use bytes::BytesMut;
use futures::StreamExt;
use streamlake_core::headers::DLQ_EXCERPT_BYTES;

use crate::error::ApiError;

/// A single event's body, as read.
#[derive(Debug, PartialEq, Eq)]
pub enum EventBody {
    /// Within the limit: the whole event.
    Whole(Bytes),
    /// Over the limit: its first bytes (at most [`DLQ_EXCERPT_BYTES`]) and its length.
    TooLarge { excerpt: Bytes, length: Length },
}

/// How long an event over the limit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// Its `Content-Length`, or every byte of a streamed body counted.
    Exact(u64),
    /// A streamed body the API stopped counting at this many bytes (it was longer).
    AtLeast(u64),
}

impl Length {
    pub fn bytes(self) -> u64 {
        match self {
            Length::Exact(n) | Length::AtLeast(n) => n,
        }
    }
}

/// Reads the body of one event whose limit is `limit`. An event declared larger by `Content-Length` is
/// read only as far as its excerpt; a streamed one is read on past the limit, discarding, to count it,
/// up to `count_up_to` bytes (the request timeout bounds the wait as for any body).
pub async fn read_event(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    count_up_to: usize,
) -> Result<EventBody, ApiError> {
    let declared = (headers.get(header::CONTENT_LENGTH))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let declared_over = declared.filter(|&n| n > limit as u64);
    let expected = match declared_over {
        Some(_) => DLQ_EXCERPT_BYTES,
        None => declared.map_or(0, |n| n as usize),
    };
    // Allocated only when a second frame comes (or the event is over the limit).
    let mut kept = BytesMut::new();
    // The common case, a body in one frame within the limit, is kept as it came: no copy.
    let mut first: Option<Bytes> = None;
    let mut read: u64 = 0;
    let mut stream = body.into_data_stream();
    let ended = loop {
        if declared_over.is_some() && kept.len() >= DLQ_EXCERPT_BYTES {
            break false;
        }
        if read > count_up_to as u64 {
            break false;
        }
        match stream.next().await {
            None => break true,
            Some(Err(e)) => return Err(ApiError::BodyUnreadable(e.to_string())),
            Some(Ok(chunk)) => {
                read += chunk.len() as u64;
                let within = declared_over.is_none() && read <= limit as u64;
                if within && first.is_none() && kept.is_empty() {
                    first = Some(chunk);
                    continue;
                }
                if kept.capacity() == 0 {
                    kept.reserve(expected);
                }
                if let Some(first) = first.take() {
                    kept.extend_from_slice(&first);
                }
                // While the event may still be within the limit every byte is kept; past it, the excerpt.
                let keep = if within { limit } else { DLQ_EXCERPT_BYTES };
                let room = keep.saturating_sub(kept.len()).min(chunk.len());
                kept.extend_from_slice(&chunk[..room]);
            }
        }
    };
    if declared_over.is_none() && ended && read <= limit as u64 {
        return Ok(EventBody::Whole(first.unwrap_or_else(|| kept.freeze())));
    }
    if let Some(first) = first {
        kept.extend_from_slice(&first);
    }
    let length = match declared_over {
        Some(n) => Length::Exact(n),
        None if ended => Length::Exact(read),
        None => Length::AtLeast(read),
    };
    kept.truncate(DLQ_EXCERPT_BYTES);
    Ok(EventBody::TooLarge {
        excerpt: kept.freeze(),
        length,
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    /// `bytes` as a body streamed in chunks of `chunk` bytes, with or without its Content-Length.
    async fn read(bytes: &[u8], chunk: usize, declared: bool, limit: usize, cap: usize) -> EventBody {
        let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
            .chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let mut headers = HeaderMap::new();
        if declared {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        }
        let body = Body::from_stream(futures::stream::iter(chunks));
        read_event(&headers, body, limit, cap).await.expect("readable")
    }

    fn event(len: usize) -> Vec<u8> {
        (0..len).map(|i| b'a' + (i % 26) as u8).collect()
    }

    #[tokio::test]
    async fn an_event_within_the_limit_is_read_whole_however_it_comes() {
        for len in [0, 1, 999, 1000] {
            for chunk in [1, 7, 4096] {
                for declared in [false, true] {
                    let bytes = event(len);
                    assert_eq!(
                        read(&bytes, chunk, declared, 1000, 10_000).await,
                        EventBody::Whole(Bytes::from(bytes.clone())),
                        "{len} bytes in chunks of {chunk}, declared: {declared}"
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn a_body_in_one_frame_is_kept_as_it_came() {
        let frame = Bytes::from(event(1000));
        let body = Body::from(frame.clone());
        let read = read_event(&HeaderMap::new(), body, 1000, 10_000)
            .await
            .expect("readable");
        let EventBody::Whole(whole) = read else {
            panic!("within the limit");
        };
        assert_eq!(whole.as_ptr(), frame.as_ptr(), "not copied");
    }

    #[tokio::test]
    async fn an_event_over_the_limit_keeps_its_first_bytes_and_its_length() {
        let limit = 100_000;
        for len in [limit + 1, DLQ_EXCERPT_BYTES * 3] {
            for chunk in [1000, 65_537, 1 << 20] {
                for declared in [false, true] {
                    let bytes = event(len);
                    let excerpt = Bytes::copy_from_slice(&bytes[..DLQ_EXCERPT_BYTES]);
                    assert_eq!(
                        read(&bytes, chunk, declared, limit, 1 << 20).await,
                        EventBody::TooLarge {
                            excerpt,
                            length: Length::Exact(len as u64)
                        },
                        "{len} bytes in chunks of {chunk}, declared: {declared}"
                    );
                }
            }
        }
        // Over the limit but shorter than an excerpt: kept whole, still too large.
        let bytes = event(300);
        assert_eq!(
            read(&bytes, 64, false, 200, 1000).await,
            EventBody::TooLarge {
                excerpt: Bytes::from(bytes),
                length: Length::Exact(300)
            }
        );
    }

    #[tokio::test]
    async fn a_streamed_event_is_counted_only_up_to_the_cap() {
        let bytes = event(DLQ_EXCERPT_BYTES * 4);
        let EventBody::TooLarge { excerpt, length } = read(&bytes, 10_000, false, 1000, 100_000).await else {
            panic!("over the limit");
        };
        assert_eq!(&excerpt[..], &bytes[..DLQ_EXCERPT_BYTES]);
        assert!(
            matches!(length, Length::AtLeast(n) if n > 100_000 && n < bytes.len() as u64),
            "{length:?}"
        );
    }
}
