//! The OpenAPI 3.1 description, generated from the loaded contracts so every dataset's request body is
//! its real JSON Schema. schemathesis checks the running API against it.

use serde_json::{Map, Value, json};
use streamlake_core::contract::ContractRegistry;

use crate::event::{MAX_IDEMPOTENCY_KEY_LEN, MAX_SOURCE_LEN};
use crate::state::IngestSettings;

pub fn document(contracts: &ContractRegistry, settings: &IngestSettings) -> Value {
    let mut paths = Map::new();
    let mut schemas = common_schemas();
    for contract in contracts.latest_contracts() {
        let dataset = contract.dataset().as_str();
        let name = format!("{dataset}_v{}", contract.version());
        let mut schema = contract.schema().clone();
        if let Some(obj) = schema.as_object_mut() {
            // The contract's own identifiers would re-base references inside the OpenAPI document.
            obj.remove("$schema");
            obj.remove("$id");
        }
        schemas.insert(name.clone(), schema);
        let event_ref = json!({ "$ref": format!("#/components/schemas/{name}") });
        let pin = schema_version_parameter(contracts.versions(dataset));
        paths.insert(
            format!("/ingest/{dataset}"),
            single_path(dataset, &event_ref, &pin),
        );
        paths.insert(
            format!("/ingest/{dataset}/batch"),
            batch_path(dataset, &event_ref, &pin, settings),
        );
    }
    paths.insert(
        "/healthz".into(),
        ops_path(
            "Liveness: the process serves HTTP and its Kafka producer has not failed for good.",
            status_ok(),
        ),
    );
    paths.insert(
        "/readyz".into(),
        ops_path(
            "Readiness: the producer works, Kafka metadata is reachable, no shutdown is under way.",
            status_ok(),
        ),
    );
    paths.insert(
        "/metrics".into(),
        json!({ "get": {
            "operationId": "metrics",
            "summary": "Prometheus metrics (OpenMetrics text).",
            "responses": { "200": { "description": "Metrics.", "content": {
                "application/openmetrics-text": { "schema": { "type": "string" } } } } }
        }}),
    );
    paths.insert(
        "/openapi.json".into(),
        json!({ "get": {
            "operationId": "openapi",
            "summary": "This document.",
            "responses": { "200": { "description": "The OpenAPI description.", "content": {
                "application/json": { "schema": { "type": "object" } } } } }
        }}),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "StreamLake ingest API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Validates events against their dataset's contract and writes them to Kafka \
                (`streamlake.<dataset>.raw`, acks=all). A 2xx answer is sent only after Kafka acknowledged the \
                record. Rejected events are written to `streamlake.<dataset>.dlq` with error headers."
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "parameters": parameters(),
            "headers": { "Retry-After": {
                "description": "Seconds to wait before retrying.",
                "schema": { "type": "integer", "minimum": 0 } } },
            "responses": responses(),
        }
    })
}

fn single_path(dataset: &str, event_ref: &Value, pin: &Value) -> Value {
    json!({ "post": {
        "operationId": format!("ingest_{dataset}"),
        "summary": format!("Ingest one {dataset} event."),
        "parameters": [
            { "$ref": "#/components/parameters/IdempotencyKey" },
            { "$ref": "#/components/parameters/Source" },
            pin
        ],
        "requestBody": { "required": true, "content": { "application/json": { "schema": event_ref } } },
        "responses": {
            "200": { "description": "Acknowledged by Kafka.", "content": { "application/json": {
                "schema": { "$ref": "#/components/schemas/Accepted" } } } },
            "400": { "$ref": "#/components/responses/BadRequest" },
            "413": { "$ref": "#/components/responses/TooLarge" },
            "422": { "$ref": "#/components/responses/Unprocessable" },
            "502": { "$ref": "#/components/responses/KafkaRejected" },
            "503": { "$ref": "#/components/responses/Unavailable" }
        }
    }})
}

fn batch_path(dataset: &str, event_ref: &Value, pin: &Value, settings: &IngestSettings) -> Value {
    let event_ref = event_ref.get("$ref").and_then(Value::as_str).unwrap_or_default();
    json!({ "post": {
        "operationId": format!("ingest_{dataset}_batch"),
        "summary": format!("Ingest a batch of {dataset} events, answered per record."),
        "description": "A JSON array, or NDJSON (one event per line; blank lines are skipped). Each record is \
            accepted, rejected (and dead-lettered) or failed on its own; `index` is its position in the batch.",
        "parameters": [
            { "$ref": "#/components/parameters/IdempotencyKey" },
            { "$ref": "#/components/parameters/Source" },
            pin
        ],
        "requestBody": { "required": true, "content": {
            // Items are any JSON: each is checked against the contract on its own and answered per record.
            "application/json": { "schema": {
                // The record limit answers 413 (too_many_records), so it is said here rather than as maxItems.
                "type": "array", "minItems": 1,
                "description": format!("At most {} records.", settings.max_batch_records),
                "items": { "description": format!("An event, validated against {event_ref} record by record.") } } },
            "application/x-ndjson": { "schema": { "type": "string" } }
        } },
        "responses": {
            "200": { "description": "Per-record results.", "content": { "application/json": {
                "schema": { "$ref": "#/components/schemas/BatchAnswer" } } } },
            "400": { "$ref": "#/components/responses/BadRequest" },
            "413": { "$ref": "#/components/responses/TooLarge" },
            "503": {
                "description": "Nothing was accepted and a retry may succeed: Kafka unavailable, queue full, \
                    overloaded or timed out. Per-record results when the batch was read.",
                "headers": { "Retry-After": { "$ref": "#/components/headers/Retry-After" } },
                "content": { "application/json": { "schema": { "anyOf": [
                    { "$ref": "#/components/schemas/Error" },
                    { "$ref": "#/components/schemas/BatchAnswer" }
                ] } } }
            }
        }
    }})
}

fn status_ok() -> Value {
    json!({ "type": "object", "required": ["status"], "properties": { "status": { "type": "string" } } })
}

fn ops_path(summary: &str, ok_schema: Value) -> Value {
    let responses = json!({
        "200": { "description": "OK.", "content": { "application/json": { "schema": ok_schema } } },
        "503": { "description": "Not live or not ready; the error says why.", "content": {
            "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
    });
    json!({ "get": { "summary": summary, "responses": responses } })
}

fn parameters() -> Value {
    json!({
        "IdempotencyKey": {
            "name": "Idempotency-Key", "in": "header", "required": false,
            "description": "Makes the event id deterministic (UUIDv5 of dataset and key, and the record's index \
                in a batch), so a retried request carries the same event_id.",
            "schema": { "type": "string", "pattern": format!("^[!-~]{{1,{MAX_IDEMPOTENCY_KEY_LEN}}}$") }
        },
        "Source": {
            "name": "X-StreamLake-Source", "in": "header", "required": false,
            "description": "The producing system, stamped in the `source` record header.",
            "schema": { "type": "string", "pattern": format!("^[!-~]{{1,{MAX_SOURCE_LEN}}}$") }
        }
    })
}

/// `X-StreamLake-Schema-Version`, with the versions the dataset has.
fn schema_version_parameter(versions: impl Iterator<Item = u32>) -> Value {
    let versions: Vec<String> = versions.map(|v| v.to_string()).collect();
    json!({
        "name": "X-StreamLake-Schema-Version", "in": "header", "required": false,
        "description": "Check the events against this version of the dataset's contract instead of the newest \
            (the request body documented here), and stamp it in their `schema_version` header: for producers \
            that still send an older version after a new one was published. Another version answers 400 \
            (`unknown_schema_version`, or `invalid_header` if it is not a version number).",
        "schema": { "type": "string", "enum": versions }
    })
}

fn error_response(description: &str, retry_after: bool) -> Value {
    let mut response = json!({ "description": description, "content": { "application/json": {
        "schema": { "$ref": "#/components/schemas/Error" } } } });
    if retry_after {
        response["headers"] = json!({ "Retry-After": { "$ref": "#/components/headers/Retry-After" } });
    }
    response
}

fn responses() -> Value {
    json!({
        "BadRequest": error_response("Malformed request: body not JSON (the event is dead-lettered), empty \
            batch, an invalid header, or a contract version the dataset does not have.", false),
        "TooLarge": error_response("Body larger than the limit, or too many records in a batch. A single event \
            over the limit is dead-lettered as its first 64 KiB (`error.dlq`).", false),
        "Unprocessable": error_response("The event violates its contract; every violation is listed and the \
            event is dead-lettered.", false),
        "KafkaRejected": error_response("Kafka refused the record for good (e.g. authorization).", false),
        "Unavailable": error_response("Not acknowledged, retry later: Kafka unavailable, producer queue full, \
            overloaded or timed out.", true),
    })
}

fn common_schemas() -> Map<String, Value> {
    let delivered = json!({ "type": "object", "required": ["topic", "partition", "offset"], "properties": {
        "topic": { "type": "string" }, "partition": { "type": "integer" }, "offset": { "type": "integer" } } });
    let violation = json!({ "type": "object", "required": ["pointer", "keyword", "message"], "properties": {
        "pointer": { "type": "string", "description": "JSON pointer into the event." },
        "keyword": { "type": "string" }, "message": { "type": "string" } } });
    let record_error = json!({ "type": "object", "required": ["code", "message"], "properties": {
        "code": { "type": "string" }, "message": { "type": "string" },
        "violations": { "type": "array", "items": { "$ref": "#/components/schemas/Violation" } } } });
    let uuid = json!({ "type": "string", "format": "uuid" });
    let record_result = json!({ "oneOf": [
        { "type": "object", "required": ["status", "index", "event_id", "partition", "offset"], "properties": {
            "status": { "const": "accepted" }, "index": { "type": "integer" }, "event_id": uuid,
            "partition": { "type": "integer" }, "offset": { "type": "integer" } } },
        { "type": "object", "required": ["status", "index", "event_id", "error", "dlq"], "properties": {
            "status": { "const": "rejected" }, "index": { "type": "integer" }, "event_id": uuid,
            "error": { "$ref": "#/components/schemas/RecordError" },
            "dlq": { "anyOf": [{ "$ref": "#/components/schemas/Delivered" }, { "type": "null" }] } } },
        { "type": "object", "required": ["status", "index", "event_id", "error", "retryable"], "properties": {
            "status": { "const": "failed" }, "index": { "type": "integer" }, "event_id": uuid,
            "error": { "$ref": "#/components/schemas/RecordError" }, "retryable": { "type": "boolean" } } }
    ] });
    let count = json!({ "type": "integer", "minimum": 0 });
    let schemas = json!({
        "Delivered": delivered,
        "Violation": violation,
        "RecordError": record_error,
        "RecordResult": record_result,
        "Accepted": { "type": "object",
            "required": ["event_id", "dataset", "schema_version", "topic", "partition", "offset"], "properties": {
            "event_id": uuid, "dataset": { "type": "string" }, "schema_version": { "type": "integer" },
            "topic": { "type": "string" }, "partition": { "type": "integer" }, "offset": { "type": "integer" } } },
        "BatchAnswer": { "type": "object",
            "required": ["dataset", "schema_version", "topic", "accepted", "rejected", "failed", "results"],
            "properties": {
            "dataset": { "type": "string" }, "schema_version": { "type": "integer" }, "topic": { "type": "string" },
            "accepted": count, "rejected": count, "failed": count,
            "results": { "type": "array", "items": { "$ref": "#/components/schemas/RecordResult" } } } },
        "Error": { "type": "object", "required": ["error"], "properties": { "error": {
            "type": "object", "required": ["code", "message", "retryable"], "properties": {
            "code": { "type": "string", "description": "Stable snake_case code." },
            "message": { "type": "string" }, "retryable": { "type": "boolean" },
            "violations": { "type": "array", "items": { "$ref": "#/components/schemas/Violation" } },
            "dlq": { "$ref": "#/components/schemas/Delivered" } } } } }
    });
    match schemas {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
