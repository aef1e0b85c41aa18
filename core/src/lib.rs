//! Shared StreamLake pieces used by the ingest API, the consumer and the operator.
//!
//! Everything here is free of HTTP frameworks; I/O is limited to reading contract files and talking to
//! Kafka's admin API in [`kafka::topics`].

pub mod bounded_summary;
pub mod contract;
pub mod headers;
pub mod kafka;
pub mod names;
pub mod offsets;
pub mod rawzone;
