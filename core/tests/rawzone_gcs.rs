//! The `gs://` raw-zone store against the GCS emulator: delete removes an object, and deleting a missing
//! one is not an error (the same contract as the `file://` backend).

use bytes::Bytes;
use streamlake_core::rawzone::store::{GcsOptions, RawZoneStore, StoreLocation};
use streamlake_testkit::{require_env, unique_name};

async fn open_store(prefix: &str) -> RawZoneStore {
    let bucket = std::env::var("STREAMLAKE_GCS_BUCKET").unwrap_or_else(|_| "streamlake-dev".into());
    let location: StoreLocation = format!("gs://{bucket}/core-tests/{prefix}")
        .parse()
        .expect("raw zone location");
    let options = GcsOptions {
        endpoint: Some(require_env("STORAGE_EMULATOR_HOST")),
        anonymous: true,
        ..Default::default()
    };
    RawZoneStore::open(&location, &options)
        .await
        .expect("open the raw zone")
}

#[tokio::test]
async fn delete_removes_an_object_and_a_missing_one_is_no_error() {
    let store = open_store(&unique_name("delete")).await;
    let key = "raw/dataset=orders/ingestion_date=2026-11-22/p00000-o0-o9 with space+plus.jsonl";
    let other = "raw/dataset=orders/ingestion_date=2026-11-22/kept.jsonl";
    for k in [key, other] {
        store
            .put_immutable(k, Bytes::from_static(b"{\"a\":1}\n"), "application/x-ndjson")
            .await
            .expect("put");
    }
    assert!(
        store.get(key).await.expect("get").is_some(),
        "the object was written"
    );

    store.delete(key).await.expect("delete an existing object");
    assert!(
        store.get(key).await.expect("get").is_none(),
        "a deleted object is gone"
    );
    assert!(
        store.get(other).await.expect("get").is_some(),
        "delete removes only the named object"
    );

    store
        .delete(key)
        .await
        .expect("deleting an object that no longer exists is not an error");
    store
        .delete("raw/never-written.jsonl")
        .await
        .expect("deleting an object that never existed is not an error");
    store.delete(other).await.expect("cleanup");
}

#[tokio::test]
async fn a_delete_that_cannot_reach_gcs_is_an_error() {
    // A port nothing listens on: the delete must report the failure, not pretend it succeeded.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let options = GcsOptions {
        endpoint: Some(format!("http://{closed}")),
        anonymous: true,
        attempts: 1,
        ..Default::default()
    };
    let location: StoreLocation = "gs://streamlake-dev/x".parse().expect("raw zone location");
    let store = RawZoneStore::open(&location, &options).await.expect("open");
    let err = store
        .delete("raw/some-file.jsonl")
        .await
        .expect_err("an unreachable GCS must fail the delete");
    assert!(err.is_retryable(), "an outage is worth another try: {err}");
}
