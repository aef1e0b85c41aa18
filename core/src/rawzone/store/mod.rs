//! Where the raw zone is kept: a local directory (`file://`, the default) or a GCS bucket (`gs://`).
//!
//! The two operations the exactly-once design rests on:
//! - [`RawZoneStore::put_immutable`]: write a data file whose name is derived from its bytes; a name that
//!   exists already holds the same bytes, so it is left as it is.
//! - [`RawZoneStore::put_if`]: replace an object only if it still is the version that was read
//!   (a generation precondition on GCS, a locked compare-and-swap locally): the `_metadata.json` update.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use bytes::Bytes;

#[cfg(feature = "gcs")]
pub mod gcs;
#[cfg(feature = "gcs")]
pub mod gcs_json;
pub mod local;

#[cfg(feature = "gcs")]
pub use gcs::{GcsOptions, GcsStore};
pub use local::LocalStore;

/// An opaque version of an object: the GCS generation, or a content digest for local files.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectVersion(pub String);

impl fmt::Display for ObjectVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An object's bytes with the version they were read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub data: Bytes,
    pub version: ObjectVersion,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "{0:?} is not a raw-zone location: use file:///path, a plain directory path, or gs://bucket/prefix"
    )]
    BadLocation(String),
    #[error("gs:// raw zones need the consumer built with GCS support (feature `gcs`)")]
    GcsUnsupported,
    #[error("{key} changed since it was read (precondition failed)")]
    PreconditionFailed { key: String },
    #[error("local raw zone, {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[cfg(feature = "gcs")]
    #[error("GCS {operation} gs://{bucket}/{object}: {source}")]
    Gcs {
        operation: &'static str,
        bucket: String,
        object: String,
        #[source]
        source: google_cloud_storage::Error,
    },
    #[cfg(feature = "gcs")]
    #[error("GCS {operation} gs://{bucket}/{object}: {failure}")]
    GcsJson {
        operation: &'static str,
        bucket: String,
        object: String,
        #[source]
        failure: Box<gcs_json::JsonFailure>,
    },
    #[cfg(feature = "gcs")]
    #[error("creating the GCS client: {0}")]
    GcsClient(String),
    #[error("background storage task failed: {0}")]
    Task(String),
}

impl StoreError {
    /// Whether trying again later can succeed: outages, timeouts and throttling, not bad requests.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::BadLocation(_) | Self::GcsUnsupported => false,
            Self::PreconditionFailed { .. } => true,
            Self::Io { source, .. } => !matches!(
                source.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidFilename
            ),
            #[cfg(feature = "gcs")]
            Self::Gcs { source, .. } => gcs::is_retryable(source),
            #[cfg(feature = "gcs")]
            Self::GcsJson { failure, .. } => failure.is_retryable(),
            #[cfg(feature = "gcs")]
            Self::GcsClient(_) => true,
            Self::Task(_) => true,
        }
    }

    /// A short stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BadLocation(_) => "bad_location",
            Self::GcsUnsupported => "gcs_unsupported",
            Self::PreconditionFailed { .. } => "precondition_failed",
            Self::Io { .. } => "io",
            #[cfg(feature = "gcs")]
            Self::Gcs { .. } | Self::GcsJson { .. } => "gcs",
            #[cfg(feature = "gcs")]
            Self::GcsClient(_) => "gcs_client",
            Self::Task(_) => "task",
        }
    }
}

/// A parsed raw-zone URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    Local { root: PathBuf },
    Gcs { bucket: String, prefix: String },
}

impl FromStr for StoreLocation {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || StoreError::BadLocation(s.to_owned());
        if let Some(rest) = s.strip_prefix("gs://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let bucket_ok = (3..=222).contains(&bucket.len())
                && bucket
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
            if !bucket_ok {
                return Err(bad());
            }
            return Ok(Self::Gcs {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            });
        }
        let path = match s.strip_prefix("file://") {
            Some(path) => path,
            None if s.contains("://") => return Err(bad()),
            None => s,
        };
        if path.is_empty() {
            return Err(bad());
        }
        Ok(Self::Local {
            root: PathBuf::from(path),
        })
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local { root } => write!(f, "file://{}", root.display()),
            Self::Gcs { bucket, prefix } if prefix.is_empty() => write!(f, "gs://{bucket}"),
            Self::Gcs { bucket, prefix } => write!(f, "gs://{bucket}/{prefix}"),
        }
    }
}

/// A raw-zone store. Keys are `/`-separated paths relative to the location (see [`super::layout`]).
#[derive(Debug, Clone)]
pub enum RawZoneStore {
    Local(LocalStore),
    /// Boxed: the client is large and the local variant small.
    #[cfg(feature = "gcs")]
    Gcs(Box<GcsStore>),
}

impl RawZoneStore {
    /// Opens a location. `gcs` configures the client for `gs://` locations (endpoint, credentials).
    #[cfg(feature = "gcs")]
    pub async fn open(location: &StoreLocation, gcs: &GcsOptions) -> Result<Self, StoreError> {
        match location {
            StoreLocation::Local { root } => Ok(Self::Local(LocalStore::new(root.clone()))),
            StoreLocation::Gcs { bucket, prefix } => {
                Ok(Self::Gcs(Box::new(GcsStore::connect(bucket, prefix, gcs).await?)))
            }
        }
    }

    #[cfg(not(feature = "gcs"))]
    pub async fn open(location: &StoreLocation) -> Result<Self, StoreError> {
        match location {
            StoreLocation::Local { root } => Ok(Self::Local(LocalStore::new(root.clone()))),
            StoreLocation::Gcs { .. } => Err(StoreError::GcsUnsupported),
        }
    }

    /// Writes a data file named after its bytes. If the name exists, it already holds these bytes.
    #[cfg_attr(not(feature = "gcs"), allow(unused_variables))]
    pub async fn put_immutable(&self, key: &str, data: Bytes, content_type: &str) -> Result<(), StoreError> {
        match self {
            Self::Local(s) => s.put(key, data).await,
            #[cfg(feature = "gcs")]
            Self::Gcs(s) => s.put_immutable(key, data, content_type).await,
        }
    }

    /// The `file://` store, whose data files can also be streamed ([`LocalStore::create_streamed`]).
    pub fn as_local(&self) -> Option<&LocalStore> {
        match self {
            Self::Local(s) => Some(s),
            #[cfg(feature = "gcs")]
            Self::Gcs(_) => None,
        }
    }

    /// The object's bytes and version, or `None` if it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        match self {
            Self::Local(s) => s.get(key).await,
            #[cfg(feature = "gcs")]
            Self::Gcs(s) => s.get(key).await,
        }
    }

    /// Writes `data` only if the object is still at `expected` (`None`: only if it does not exist yet).
    /// Fails with [`StoreError::PreconditionFailed`] otherwise, changing nothing.
    pub async fn put_if(
        &self,
        key: &str,
        data: Bytes,
        expected: Option<&ObjectVersion>,
    ) -> Result<ObjectVersion, StoreError> {
        match self {
            Self::Local(s) => s.put_if(key, data, expected).await,
            #[cfg(feature = "gcs")]
            Self::Gcs(s) => s.put_if(key, data, expected).await,
        }
    }

    /// Removes an object; a missing object is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Self::Local(s) => s.delete(key).await,
            #[cfg(feature = "gcs")]
            Self::Gcs(s) => s.delete(key).await,
        }
    }

    pub fn location(&self) -> StoreLocation {
        match self {
            Self::Local(s) => StoreLocation::Local {
                root: s.root().to_owned(),
            },
            #[cfg(feature = "gcs")]
            Self::Gcs(s) => StoreLocation::Gcs {
                bucket: s.bucket().to_owned(),
                prefix: s.prefix().to_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_local_and_gcs_locations() {
        assert_eq!(
            "file:///var/lake".parse::<StoreLocation>().expect("file"),
            StoreLocation::Local {
                root: "/var/lake".into()
            }
        );
        assert_eq!(
            "./lake".parse::<StoreLocation>().expect("path"),
            StoreLocation::Local {
                root: "./lake".into()
            }
        );
        assert_eq!(
            "gs://my-bucket/some/prefix/"
                .parse::<StoreLocation>()
                .expect("gs"),
            StoreLocation::Gcs {
                bucket: "my-bucket".into(),
                prefix: "some/prefix".into()
            }
        );
        assert_eq!(
            "gs://my-bucket".parse::<StoreLocation>().expect("gs"),
            StoreLocation::Gcs {
                bucket: "my-bucket".into(),
                prefix: String::new()
            }
        );
    }

    #[test]
    fn rejects_unknown_schemes_and_bad_buckets() {
        for bad in [
            "s3://bucket/x",
            "gs://",
            "gs://UPPER/x",
            "gs://a/x",
            "file://",
            "",
        ] {
            assert!(bad.parse::<StoreLocation>().is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn locations_display_as_urls() {
        for url in ["gs://my-bucket/p", "gs://my-bucket", "file:///var/lake"] {
            assert_eq!(url.parse::<StoreLocation>().expect("parse").to_string(), url);
        }
    }
}
