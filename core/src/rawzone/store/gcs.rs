//! The `gs://bucket/prefix` backend, through the official `google-cloud-storage` crate.
//!
//! Data files are created with `ifGenerationMatch=0` (names carry a digest of their bytes, so an existing
//! name already holds them); `_metadata.json` is replaced with `ifGenerationMatch=<generation read>`.
//! Data files at or above the resumable threshold go up as a resumable upload, one chunk at a time.
//! For the emulator, point the endpoint at it and use anonymous credentials. The CRC32C is computed
//! up front and sent with the object's metadata (GCS verifies it); the crate's alternative, a trailing
//! checksum part, is stored as object data by the emulator.
//! Deletes go over the JSON API (see [`super::gcs_json`]): the crate offers them only over gRPC.

use bytes::Bytes;
use google_cloud_gax::retry_policy::RetryPolicyExt;
use google_cloud_storage::client::Storage;
use google_cloud_storage::retry_policy::RetryableErrors;

use super::gcs_json::JsonApi;
use super::{ObjectVersion, StoreError, Versioned};

/// GCS requires resumable-upload chunks to be multiples of 256 KiB.
pub const UPLOAD_CHUNK_QUANTUM: usize = 256 * 1024;

/// How to reach GCS.
#[derive(Debug, Clone)]
pub struct GcsOptions {
    /// Endpoint override, e.g. the emulator's `http://127.0.0.1:14443`; `None` is Google's endpoint.
    pub endpoint: Option<String>,
    /// Send no credentials (the emulator); otherwise Application Default Credentials.
    pub anonymous: bool,
    /// Objects at least this large use a resumable upload.
    pub resumable_threshold: usize,
    /// Chunk size of resumable uploads (rounded up to a multiple of 256 KiB).
    pub upload_chunk: usize,
    /// Attempts per request inside the client before the error reaches the caller's own backoff.
    pub attempts: u32,
}

impl Default for GcsOptions {
    fn default() -> Self {
        Self {
            endpoint: None,
            anonymous: false,
            resumable_threshold: 16 * 1024 * 1024,
            upload_chunk: 16 * 1024 * 1024,
            attempts: 3,
        }
    }
}

#[derive(Debug, Clone)]
pub struct GcsStore {
    client: Storage,
    resumable_threshold: usize,
    json: JsonApi,
    bucket: String,
    /// `projects/_/buckets/<bucket>`, the form the API wants.
    bucket_path: String,
    prefix: String,
}

impl GcsStore {
    pub async fn connect(bucket: &str, prefix: &str, options: &GcsOptions) -> Result<Self, StoreError> {
        // The storage crate is built without its default TLS provider; ring is the workspace's.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let chunk = options.upload_chunk.max(1).div_ceil(UPLOAD_CHUNK_QUANTUM) * UPLOAD_CHUNK_QUANTUM;
        let mut builder = Storage::builder()
            .with_retry_policy(RetryableErrors.with_attempt_limit(options.attempts.max(1)))
            .with_resumable_upload_threshold(options.resumable_threshold)
            .with_resumable_upload_buffer_size(chunk);
        if let Some(endpoint) = &options.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        // One set of credentials for both clients, built as the storage crate builds its default.
        let credentials = if options.anonymous {
            google_cloud_auth::credentials::anonymous::Builder::new().build()
        } else {
            google_cloud_auth::credentials::Builder::default()
                .build()
                .map_err(|e| StoreError::GcsClient(e.to_string()))?
        };
        let client = builder
            .with_credentials(credentials.clone())
            .build()
            .await
            .map_err(|e| StoreError::GcsClient(e.to_string()))?;
        let json = JsonApi::new(options.endpoint.as_deref(), credentials, options.attempts)
            .map_err(|e| StoreError::GcsClient(e.to_string()))?;
        Ok(Self {
            client,
            resumable_threshold: options.resumable_threshold,
            json,
            bucket: bucket.to_owned(),
            bucket_path: format!("projects/_/buckets/{bucket}"),
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The object name of a key under the prefix.
    pub fn object_name(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn error(
        &self,
        operation: &'static str,
        object: &str,
        source: google_cloud_storage::Error,
    ) -> StoreError {
        if source.http_status_code() == Some(412) {
            return StoreError::PreconditionFailed {
                key: object.to_owned(),
            };
        }
        StoreError::Gcs {
            operation,
            bucket: self.bucket.clone(),
            object: object.to_owned(),
            source,
        }
    }

    pub async fn put_immutable(&self, key: &str, data: Bytes, content_type: &str) -> Result<(), StoreError> {
        let object = self.object_name(key);
        let large = data.len() >= self.resumable_threshold;
        let request = self
            .client
            .write_object(&self.bucket_path, &object, data.clone())
            .with_known_crc32c(crc32c::crc32c(&data))
            .set_if_generation_match(0)
            .set_content_type(content_type);
        // Large files go up chunk by chunk (a failed chunk is resent, not the file); small ones in one request.
        let written = if large {
            request.send_buffered().await
        } else {
            request.send_unbuffered().await
        };
        match written.map_err(|e| self.error("write", &object, e)) {
            Ok(_) | Err(StoreError::PreconditionFailed { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let object = self.object_name(key);
        let mut response = match self.client.read_object(&self.bucket_path, &object).send().await {
            Ok(response) => response,
            Err(e) if e.http_status_code() == Some(404) => return Ok(None),
            Err(e) => return Err(self.error("read", &object, e)),
        };
        let generation = response.object().generation;
        let mut data = Vec::new();
        while let Some(chunk) = response.next().await {
            data.extend_from_slice(&chunk.map_err(|e| self.error("read", &object, e))?);
        }
        Ok(Some(Versioned {
            data: Bytes::from(data),
            version: ObjectVersion(generation.to_string()),
        }))
    }

    pub async fn put_if(
        &self,
        key: &str,
        data: Bytes,
        expected: Option<&ObjectVersion>,
    ) -> Result<ObjectVersion, StoreError> {
        let object = self.object_name(key);
        let generation = match expected {
            None => 0,
            // A version we did not hand out cannot match any generation.
            Some(v) => {
                v.0.parse::<i64>()
                    .map_err(|_| StoreError::PreconditionFailed { key: object.clone() })?
            }
        };
        let written = self
            .client
            .write_object(&self.bucket_path, &object, data.clone())
            .with_known_crc32c(crc32c::crc32c(&data))
            .set_if_generation_match(generation)
            .set_content_type("application/json")
            .send_unbuffered()
            .await
            .map_err(|e| self.error("write", &object, e))?;
        Ok(ObjectVersion(written.generation.to_string()))
    }

    /// Removes an object; one that does not exist is no error (as on `file://`).
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let object = self.object_name(key);
        self.json
            .delete_object(&self.bucket, &object)
            .await
            .map_err(|failure| StoreError::GcsJson {
                operation: "delete",
                bucket: self.bucket.clone(),
                object,
                failure: Box::new(failure),
            })
    }
}

/// Outages, timeouts, throttling and server errors are worth another try; 4xx answers are not.
pub fn is_retryable(error: &google_cloud_storage::Error) -> bool {
    match error.http_status_code() {
        Some(code) => is_retryable_status(code),
        None => !(error.is_serialization() || error.is_deserialization() || error.is_binding()),
    }
}

/// 412 too: a precondition lost to another writer can win after a fresh read.
pub fn is_retryable_status(code: u16) -> bool {
    matches!(code, 408 | 412 | 429 | 500..=599)
}
