//! The GCS JSON API requests that the `google-cloud-storage` crate only offers over gRPC.
//!
//! The crate deletes objects through its `StorageControl` client, which speaks gRPC only; the emulator
//! (fake-gcs-server) does not serve that call, so delete goes over `DELETE /storage/v1/b/{bucket}/o/{object}`
//! with the same endpoint and credentials as the rest of the store, on the emulator and on GCS alike.

use std::fmt::Write as _;
use std::time::Duration;

use google_cloud_auth::credentials::{CacheableResource, Credentials};
use google_cloud_auth::errors::CredentialsError;

/// Google's endpoint, the one the storage crate uses when no override is set.
const DEFAULT_ENDPOINT: &str = "https://storage.googleapis.com";
/// A delete is small: a server that has not answered by then is not going to.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Why a JSON API request failed.
#[derive(Debug, thiserror::Error)]
pub enum JsonFailure {
    #[error("no credentials: {0}")]
    Credentials(#[source] CredentialsError),
    #[error("the credentials answered `not modified` to a request for fresh headers")]
    CredentialsNotModified,
    #[error("no answer: {0}")]
    Transport(#[source] reqwest::Error),
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
}

impl JsonFailure {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Credentials(e) => e.is_transient(),
            Self::CredentialsNotModified => false,
            Self::Transport(e) => !e.is_builder(),
            Self::Status { status, .. } => super::gcs::is_retryable_status(*status),
        }
    }
}

#[derive(Debug, Clone)]
pub struct JsonApi {
    http: reqwest::Client,
    credentials: Credentials,
    endpoint: String,
    attempts: u32,
}

impl JsonApi {
    /// Needs a rustls crypto provider installed (the store installs ring before this).
    pub fn new(
        endpoint: Option<&str>,
        credentials: Credentials,
        attempts: u32,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build()?;
        Ok(Self {
            http,
            credentials,
            endpoint: endpoint
                .unwrap_or(DEFAULT_ENDPOINT)
                .trim_end_matches('/')
                .to_owned(),
            attempts: attempts.max(1),
        })
    }

    /// Deletes the live version of an object; one that does not exist is no error, as on `file://`.
    /// Retries what is worth retrying: a delete is idempotent.
    pub async fn delete_object(&self, bucket: &str, object: &str) -> Result<(), JsonFailure> {
        let url = format!(
            "{}/storage/v1/b/{}/o/{}",
            self.endpoint,
            encode_path_segment(bucket),
            encode_path_segment(object)
        );
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            match self.try_delete(&url).await {
                Err(e) if e.is_retryable() && attempt < self.attempts => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    async fn try_delete(&self, url: &str) -> Result<(), JsonFailure> {
        let headers = match self.credentials.headers(Default::default()).await {
            Ok(CacheableResource::New { data, .. }) => data,
            Ok(CacheableResource::NotModified) => return Err(JsonFailure::CredentialsNotModified),
            Err(e) => return Err(JsonFailure::Credentials(e)),
        };
        let response = self
            .http
            .delete(url)
            .headers(headers)
            .send()
            .await
            .map_err(JsonFailure::Transport)?;
        let status = response.status();
        if status.is_success() || status == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(JsonFailure::Status {
            status: status.as_u16(),
            body: body.chars().take(500).collect(),
        })
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters: object names may hold `/`, spaces, `+`.
fn encode_path_segment(name: &str) -> String {
    let mut encoded = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(encoded, "%{b:02X}");
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_encoded_as_one_path_segment() {
        assert_eq!(
            encode_path_segment("raw/dataset=orders/a b+c~d.jsonl"),
            "raw%2Fdataset%3Dorders%2Fa%20b%2Bc~d.jsonl"
        );
        assert_eq!(encode_path_segment("é"), "%C3%A9");
    }
}
