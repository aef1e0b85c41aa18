//! The local GCS emulator speaks the GCS JSON API: an object written over it is read back with its metadata.

use streamlake_testkit::{http_client, require_env, unique_name};

#[tokio::test]
async fn an_object_written_over_the_json_api_is_read_back() {
    let endpoint = require_env("STORAGE_EMULATOR_HOST");
    let bucket = require_env("STREAMLAKE_GCS_BUCKET");
    let name = format!("env-test/{}.txt", unique_name("object"));
    let body = "line one\nline two\n".repeat(1000);
    let http = http_client();

    let uploaded: serde_json::Value = http
        .post(format!("{endpoint}/upload/storage/v1/b/{bucket}/o"))
        .query(&[("uploadType", "media"), ("name", name.as_str())])
        .header("content-type", "text/plain")
        .body(body.clone())
        .send()
        .await
        .expect("upload request")
        .error_for_status()
        .expect("upload accepted")
        .json()
        .await
        .expect("upload answer is JSON");
    assert_eq!(uploaded["name"], name.as_str());
    assert_eq!(uploaded["size"], body.len().to_string().as_str());
    let generation = uploaded["generation"].as_str().expect("a generation").to_owned();

    let encoded = name.replace('/', "%2F");
    let read = http
        .get(format!("{endpoint}/storage/v1/b/{bucket}/o/{encoded}"))
        .query(&[("alt", "media")])
        .send()
        .await
        .expect("download request")
        .error_for_status()
        .expect("object exists")
        .text()
        .await
        .expect("body");
    assert_eq!(read, body);

    // A write conditioned on a generation that is not the current one is refused: preconditions are real.
    let conflict = http
        .post(format!("{endpoint}/upload/storage/v1/b/{bucket}/o"))
        .query(&[
            ("uploadType", "media"),
            ("name", name.as_str()),
            ("ifGenerationMatch", "1"),
        ])
        .body("overwrite")
        .send()
        .await
        .expect("conditional upload request");
    assert_eq!(
        conflict.status().as_u16(),
        412,
        "generation {generation} is current, 1 is not"
    );
}
