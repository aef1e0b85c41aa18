//! The raw zone the lake-reading controllers use (DqCheck), opened once at start: a local directory
//! (`file://`) or a GCS bucket (`gs://`) through core's store, with the consumer's GCS settings.

use clap::Args;
use streamlake_core::rawzone::store::GcsOptions;
use streamlake_core::rawzone::{RawZoneStore, StoreLocation};

/// How to reach GCS for a `gs://` raw zone (the same flags and defaults as the consumer's).
#[derive(Debug, Clone, Default, Args)]
pub struct GcsArgs {
    /// GCS endpoint override; defaults to STORAGE_EMULATOR_HOST when that is set.
    #[arg(long, env = "STREAMLAKE_GCS_ENDPOINT")]
    pub gcs_endpoint: Option<String>,
    /// Send no credentials (implied when the endpoint comes from STORAGE_EMULATOR_HOST).
    #[arg(long, env = "STREAMLAKE_GCS_ANONYMOUS")]
    pub gcs_anonymous: bool,
}

impl GcsArgs {
    /// The client settings, with STORAGE_EMULATOR_HOST from the environment.
    pub fn options(&self) -> GcsOptions {
        let emulator = std::env::var("STORAGE_EMULATOR_HOST")
            .ok()
            .filter(|h| !h.is_empty());
        self.options_with(emulator)
    }

    fn options_with(&self, emulator: Option<String>) -> GcsOptions {
        GcsOptions {
            anonymous: self.gcs_anonymous || (self.gcs_endpoint.is_none() && emulator.is_some()),
            endpoint: self.gcs_endpoint.clone().or(emulator),
            ..GcsOptions::default()
        }
    }
}

/// Opens the raw zone, or says why there is none (the controllers put that on their status).
pub async fn open(location: Option<&StoreLocation>, gcs: &GcsOptions) -> Result<RawZoneStore, String> {
    let location = location.ok_or("the operator has no raw zone: set --raw-zone or STREAMLAKE_RAW_ZONE")?;
    RawZoneStore::open(location, gcs)
        .await
        .map_err(|e| format!("cannot open the raw zone {location}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_emulator_host_is_the_anonymous_default_and_a_flag_overrides_it() {
        let emulator = Some("http://127.0.0.1:14443".to_owned());
        let from_env = GcsArgs::default().options_with(emulator.clone());
        assert_eq!(from_env.endpoint.as_deref(), Some("http://127.0.0.1:14443"));
        assert!(from_env.anonymous);
        let flagged = GcsArgs {
            gcs_endpoint: Some("https://storage.example".into()),
            gcs_anonymous: false,
        }
        .options_with(emulator);
        assert_eq!(flagged.endpoint.as_deref(), Some("https://storage.example"));
        assert!(
            !flagged.anonymous,
            "a named endpoint uses real credentials unless told"
        );
        let google = GcsArgs::default().options_with(None);
        assert_eq!((google.endpoint, google.anonymous), (None, false));
    }

    #[tokio::test]
    async fn no_location_says_how_to_set_one() {
        let err = open(None, &GcsOptions::default()).await.expect_err("no raw zone");
        assert!(err.contains("STREAMLAKE_RAW_ZONE"), "{err}");
    }
}
