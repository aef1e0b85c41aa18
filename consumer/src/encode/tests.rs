use std::sync::Arc;

use rdkafka::message::{Header, OwnedHeaders};
use serde_json::json;
use streamlake_core::contract::ContractRegistry;
use streamlake_core::names::DatasetName;
use streamlake_core::rawzone::columns::{ParquetColumns, SINK_COLUMNS};
use streamlake_core::rawzone::readback::{read_rows, row_positions};

use super::*;

fn contract_registry() -> Arc<ContractRegistry> {
    let v2 = json!({
        "x-streamlake-partition-key": "id",
        "type": "object",
        "required": ["id"],
        "properties": {
            "id": { "type": "string" },
            "qty": { "type": "integer" },
            "price": { "type": "number" },
            "paid": { "type": "boolean" },
            "tags": { "type": "array" }
        }
    });
    // In v1, qty was free text: such records are valid, but do not fit v2's integer column.
    let mut v1 = v2.clone();
    v1["properties"]["qty"] = json!({ "type": "string" });
    let mut registry = ContractRegistry::default();
    let dataset = DatasetName::new("items").expect("valid");
    registry
        .insert(Contract::from_schema(dataset.clone(), 1, v1).expect("v1"))
        .expect("insert");
    registry
        .insert(Contract::from_schema(dataset, 2, v2).expect("v2"))
        .expect("insert");
    Arc::new(registry)
}

fn setup(format: FileFormat) -> (Encoder, Classifier) {
    setup_with_limit(format, 1 << 20)
}

fn setup_with_limit(format: FileFormat, max_record_bytes: usize) -> (Encoder, Classifier) {
    let registry = contract_registry();
    let classifier = Classifier::new(
        DatasetName::new("items").expect("valid"),
        registry.clone(),
        max_record_bytes,
    )
    .expect("classifier");
    let contract = registry.latest("items").expect("contract").clone();
    (
        Encoder::new(format, &contract, "streamlake-consumer/test".into(), 1 << 20).expect("encoder"),
        classifier,
    )
}

fn record(offset: i64, payload: &str) -> SourceRecord {
    record_v(offset, payload, "2")
}

fn record_v(offset: i64, payload: &str, version: &str) -> SourceRecord {
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "event_id",
            value: Some("e"),
        })
        .insert(Header {
            key: "schema_version",
            value: Some(version),
        });
    SourceRecord {
        partition: 2,
        offset,
        timestamp: Some(1_735_862_400_000 + offset),
        key: Some(Bytes::from(format!("k{offset}"))),
        payload: Some(Bytes::copy_from_slice(payload.as_bytes())),
        headers: Some(headers.into()),
    }
}

fn sample() -> Vec<SourceRecord> {
    vec![
        record(10, r#"{"id":"a","qty":1,"price":2.5,"paid":true,"tags":["x"]}"#),
        record(11, "not json"),
        record_v(12, r#"{"id":"b","qty":"many","note":"extra field"}"#, "1"),
        record(13, r#"{"id":"c"}"#),
    ]
}

fn encode(format: FileFormat, records: &[SourceRecord]) -> EncodedRun {
    let (encoder, classifier) = setup(format);
    let refs: Vec<&SourceRecord> = records.iter().collect();
    encoder.encode_run(2, &refs, &classifier).expect("encode")
}

#[test]
fn every_format_round_trips_the_valid_records_and_rejects_the_poison() {
    for format in FileFormat::ALL {
        let run = encode(format, &sample());
        assert_eq!(run.rejected.len(), 1, "{format}");
        assert_eq!(
            (run.rejected[0].0, run.rejected[0].1.error_type),
            (1, "invalid_json")
        );
        let file = run.file.expect("a file");
        assert_eq!(
            (
                file.entry.first_offset,
                file.entry.last_offset,
                file.entry.record_count
            ),
            (10, 13, 3)
        );
        assert_eq!(
            file.entry.bytes as usize,
            file.data.as_ref().expect("in memory").len()
        );
        assert_eq!(file.entry.schema_versions, vec![1, 2]);
        let rows = read_rows(format, file.data.clone().expect("in memory")).expect("read back");
        assert_eq!(row_positions(&rows), vec![(2, 10), (2, 12), (2, 13)], "{format}");
        assert_eq!(rows[0]["_key"], json!("k10"));
        assert_eq!(rows[0]["_event_id"], json!("e"));
        assert_eq!(rows[0]["_schema_version"], json!(2));
        assert_eq!(rows[1]["_schema_version"], json!(1));
        assert_eq!(rows[0]["_timestamp"], json!("2025-01-03T00:00:00.010Z"));
        assert_eq!(rows[0]["id"], json!("a"));
        assert_eq!(rows[0]["qty"], json!(1));
    }
}

#[test]
fn every_parquet_codec_writes_its_pages_with_it_and_reads_back_the_same_rows() {
    use ::parquet::file::reader::{FileReader, SerializedFileReader};
    use clap::ValueEnum;

    let records = sample();
    let refs: Vec<&SourceRecord> = records.iter().collect();
    let (encoder, classifier) = setup(FileFormat::Parquet);
    let mut read = Vec::new();
    for &compression in ParquetCompression::value_variants() {
        let encoder = encoder.clone().with_parquet_compression(compression);
        let file = encoder
            .encode_run(2, &refs, &classifier)
            .expect("encode")
            .file
            .expect("a file");
        let reader =
            SerializedFileReader::new(file.data.clone().expect("in memory")).expect("a Parquet file");
        let codec = reader.metadata().row_group(0).column(0).compression();
        let expected = match compression {
            ParquetCompression::Snappy => "SNAPPY",
            ParquetCompression::Zstd => "ZSTD",
            ParquetCompression::Lz4 => "LZ4_RAW",
            ParquetCompression::None => "UNCOMPRESSED",
        };
        assert!(
            codec.to_string().starts_with(expected),
            "{compression:?}: {codec}"
        );
        read.push(read_rows(FileFormat::Parquet, file.data.expect("in memory")).expect("read back"));
    }
    assert_eq!(read.len(), 4);
    assert!(read.iter().all(|rows| rows == &read[0] && rows.len() == 3));
}

#[test]
fn offsets_and_timestamps_are_stored_as_deltas_and_event_ids_plain_without_a_dictionary() {
    use ::parquet::basic::Encoding;
    use ::parquet::file::reader::{FileReader, SerializedFileReader};

    let file = encode(FileFormat::Parquet, &sample()).file.expect("file");
    let reader = SerializedFileReader::new(file.data.expect("in memory")).expect("a Parquet file");
    let columns = reader.metadata().row_group(0).columns();
    for (name, encoding) in [
        ("_offset", Encoding::DELTA_BINARY_PACKED),
        ("_timestamp", Encoding::DELTA_BINARY_PACKED),
        ("_event_id", Encoding::PLAIN),
    ] {
        let column = (columns.iter())
            .find(|c| c.column_path().string() == name)
            .expect("a sink column");
        assert!(
            column.encodings().any(|e| e == encoding) && column.dictionary_page_offset().is_none(),
            "{name}: {:?}, dictionary at {:?}",
            column.encodings().collect::<Vec<_>>(),
            column.dictionary_page_offset()
        );
    }
}

#[test]
fn parquet_keeps_values_that_do_not_fit_their_column_in_extra() {
    let file = encode(FileFormat::Parquet, &sample()).file.expect("file");
    let rows = read_rows(FileFormat::Parquet, file.data.expect("in memory")).expect("read back");
    assert_eq!(rows[0]["price"], json!(2.5));
    assert_eq!(rows[0]["paid"], json!(true));
    assert_eq!(
        rows[0]["tags"],
        json!("[\"x\"]"),
        "arrays are stored as JSON text"
    );
    assert_eq!(rows[0]["_extra"], json!(null));
    assert_eq!(rows[1]["qty"], json!(null));
    let extra: serde_json::Value =
        serde_json::from_str(rows[1]["_extra"].as_str().expect("text")).expect("json");
    assert_eq!(extra, json!({"qty": "many", "note": "extra field"}));
}

#[test]
fn parquet_columns_are_read_from_the_event_text_as_a_parser_would() {
    // Escapes, an integral float (valid "integer" to the contract, not an Int64 value), the
    // last of a repeated extra field, and an integer in a Float64 column.
    let records = [record(
        20,
        r#"{"id":"\u0061b","qty":2.0,"price":3,"paid":false,"tags":[ 1, {"k":"v"} ],"n":1,"n":2}"#,
    )];
    let file = encode(FileFormat::Parquet, &records).file.expect("file");
    let rows = read_rows(FileFormat::Parquet, file.data.expect("in memory")).expect("read back");
    assert_eq!(rows[0]["id"], json!("ab"));
    assert_eq!(rows[0]["qty"], json!(null));
    assert_eq!(rows[0]["price"], json!(3.0));
    assert_eq!(rows[0]["paid"], json!(false));
    assert_eq!(
        rows[0]["tags"],
        json!(r#"[ 1, {"k":"v"} ]"#),
        "nested values keep their text"
    );
    let extra: serde_json::Value =
        serde_json::from_str(rows[0]["_extra"].as_str().expect("text")).expect("json");
    assert_eq!(extra, json!({"qty": 2.0, "n": 2}));
}

#[test]
fn parquet_rows_take_each_field_by_name_whatever_the_order_of_the_fields() {
    // The writer guesses each field's column from the row before: orders that change from row to row,
    // a field missing, an extra one in a column's place, and a repeated column field must not fool it.
    let records = [
        record(30, r#"{"id":"a","qty":1,"price":2.5}"#),
        record(31, r#"{"price":3.5,"qty":2,"id":"b"}"#),
        record(32, r#"{"id":"c","note":"x","price":4.5,"qty":3,"qty":4}"#),
        record(33, r#"{"id":"d","qty":5,"price":5.5}"#),
    ];
    let file = encode(FileFormat::Parquet, &records).file.expect("file");
    let rows = read_rows(FileFormat::Parquet, file.data.expect("in memory")).expect("read back");
    let fields: Vec<(serde_json::Value, serde_json::Value, serde_json::Value)> = rows
        .iter()
        .map(|r| (r["id"].clone(), r["qty"].clone(), r["price"].clone()))
        .collect();
    assert_eq!(
        fields,
        vec![
            (json!("a"), json!(1), json!(2.5)),
            (json!("b"), json!(2), json!(3.5)),
            (json!("c"), json!(4), json!(4.5)),
            (json!("d"), json!(5), json!(5.5)),
        ]
    );
    assert_eq!(rows[2]["_extra"], json!(r#"{"note":"x"}"#));
    assert_eq!(rows[3]["_extra"], json!(null));
}

#[test]
fn jsonl_lines_put_the_sink_columns_first() {
    let file = encode(FileFormat::Jsonl, &sample()).file.expect("file");
    let text = String::from_utf8(file.data.expect("in memory").to_vec()).expect("utf8");
    let first = text.lines().next().expect("a line");
    assert!(
        first.starts_with(
            r#"{"_partition":2,"_offset":10,"_timestamp":"2025-01-03T00:00:00.010Z","_key":"k10","#
        ),
        "{first}"
    );
    assert!(text.ends_with('\n'));
}

#[test]
fn the_same_run_gives_the_same_bytes_and_name() {
    for format in FileFormat::ALL {
        let a = encode(format, &sample()).file.expect("file");
        let b = encode(format, &sample()).file.expect("file");
        assert_eq!(
            a.data.as_ref().expect("in memory"),
            b.data.as_ref().expect("in memory"),
            "{format} must be deterministic"
        );
        assert_eq!(a.name, b.name);
        assert!(
            a.name
                .to_string()
                .starts_with("p00002-o00000000000000000010-o00000000000000000013-")
        );
        assert_eq!(
            a.entry.checksum,
            format!(
                "crc32c:{:08x}",
                crc32c::crc32c(a.data.as_ref().expect("in memory"))
            )
        );
        assert_eq!(
            &a.entry.checksum["crc32c:".len()..],
            a.name.digest,
            "the name carries the digest"
        );
    }
}

#[test]
fn a_run_of_only_poison_has_no_file() {
    let run = encode(FileFormat::Jsonl, &[record(5, "{"), record(6, "[]")]);
    assert!(run.file.is_none());
    assert_eq!(run.rejected.len(), 2);
}

#[test]
fn contracts_with_sink_column_names_are_refused() {
    let schema = json!({
        "x-streamlake-partition-key": "id",
        "type": "object",
        "required": ["id"],
        "properties": { "id": { "type": "string" }, "_offset": { "type": "integer" } }
    });
    let contract =
        Contract::from_schema(DatasetName::new("bad").expect("valid"), 1, schema).expect("contract");
    let refused = Encoder::new(FileFormat::Parquet, &contract, "test".into(), 1 << 20);
    assert!(matches!(refused, Err(EncodeError::Schema(_))), "{refused:?}");
    let jsonl = Encoder::new(FileFormat::Jsonl, &contract, "test".into(), 1 << 20);
    assert!(jsonl.is_ok(), "JSON lines have no columns to collide with");
}

#[test]
fn a_pretty_printed_event_lands_as_one_line_with_its_values() {
    let payload = "{\r\n  \"id\": \"a\\nb\",\n  \"tags\": [\n    \"x\"\n  ],\n  \"qty\": 3\n}\n";
    let run = encode(FileFormat::Jsonl, &[record(20, payload)]);
    let data = run.file.expect("a file").data.expect("in memory");
    let text = std::str::from_utf8(&data).expect("UTF-8");
    assert_eq!(text.lines().count(), 1, "{text:?}");
    let rows = read_rows(FileFormat::Jsonl, data.clone()).expect("read back");
    assert_eq!(rows[0]["id"], json!("a\nb"));
    assert_eq!(rows[0]["tags"], json!(["x"]));
    assert_eq!(rows[0]["qty"], json!(3));
}

#[test]
fn parquet_rows_are_the_same_from_the_checks_members_and_from_its_own_scan() {
    let registry = contract_registry();
    let contract = registry.latest("items").expect("contract").clone();
    let columns = ParquetColumns::from_contract(&contract).expect("columns");
    let event = ValidEvent {
        schema_version: 2,
        key: Some("k"),
        event_id: None,
        timestamp: 1_735_862_400_000,
    };
    let payloads = [
        r#"{"id":"a","qty":1,"price":2.5,"paid":true,"tags":["x", {"y":null}]}"#,
        r#" { "tags" : [] , "id" : "b\u00e9" , "extra" : {"n":1} } "#,
    ];
    let rows = |with_members: bool| {
        let mut writer =
            parquet::ParquetFileWriter::new(&columns, ParquetCompression::default(), "test", Vec::new())
                .expect("writer");
        for (offset, payload) in payloads.iter().enumerate() {
            let mut members = Vec::new();
            if with_members {
                assert!(contract.certainly_valid_members(payload.as_bytes(), &SINK_COLUMNS, &mut members));
            }
            let offset = i64::try_from(offset).expect("small");
            writer
                .push(2, offset, &event, payload.as_bytes(), &members)
                .expect("push");
        }
        let data = Bytes::from(writer.finish().expect("finish"));
        read_rows(FileFormat::Parquet, data).expect("read back")
    };
    let from_members = rows(true);
    assert_eq!(from_members, rows(false));
    assert_eq!(from_members[1]["id"], json!("bé"));
    assert_eq!(from_members[1]["_extra"], json!(r#"{"extra":{"n":1}}"#));
}

/// Records of ~`size` bytes, one of them `big` bytes: several spills, and with a `big` over 1 MiB a line
/// that overflows the buffer (it grows and moves) between two of them.
fn many_records(count: i64, size: usize, big: usize) -> Vec<SourceRecord> {
    (0..count)
        .map(|i| {
            let len = if i == count / 2 {
                big
            } else {
                size + (i as usize * 37) % 200
            };
            let text = "x".repeat(len);
            record(i, &format!(r#"{{"id":"{i}","tags":["{text}"]}}"#))
        })
        .collect()
}

#[test]
fn a_streamed_file_is_the_file_built_in_memory_and_leaves_no_temporary_file() {
    let root = std::env::temp_dir().join(format!("streamlake-streamed-{}", uuid::Uuid::new_v4().simple()));
    let store = LocalStore::new(root.clone());
    let mut expected_names = Vec::new();
    for format in [FileFormat::Jsonl, FileFormat::JsonlGzip, FileFormat::JsonlZstd] {
        for records in [
            sample(),
            many_records(4000, 1000, 900_000),
            many_records(3000, 1000, 3 << 20),
        ] {
            let (encoder, classifier) = setup_with_limit(format, 4 << 20);
            assert!(encoder.streams_to(&RawZoneStore::Local(store.clone())));
            let refs: Vec<&SourceRecord> = records.iter().collect();
            let in_memory = encoder.encode_run(2, &refs, &classifier).expect("encode");
            let streamed = encoder
                .encode_run_into(
                    2,
                    &refs,
                    &classifier,
                    FileSink::Local {
                        store: &store,
                        dir_key: "d",
                    },
                )
                .expect("stream");
            let (memory, stream) = (in_memory.file.expect("file"), streamed.file.expect("file"));
            assert!(stream.data.is_none(), "{format}: streamed, not held");
            assert_eq!(stream.name, memory.name, "{format}");
            assert_eq!(
                (
                    stream.entry.bytes,
                    &stream.entry.checksum,
                    stream.entry.record_count
                ),
                (
                    memory.entry.bytes,
                    &memory.entry.checksum,
                    memory.entry.record_count
                ),
                "{format}"
            );
            assert_eq!(streamed.rejected.len(), in_memory.rejected.len());
            let on_disk = std::fs::read(root.join("d").join(stream.name.to_string())).expect("in place");
            let data = memory.data.expect("in memory");
            assert!(
                on_disk == data[..],
                "{format}: the streamed file differs ({} bytes)",
                data.len()
            );
            expected_names.push(stream.name.to_string());
        }
    }
    let mut names: Vec<String> = std::fs::read_dir(root.join("d"))
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    expected_names.sort();
    assert_eq!(names, expected_names, "only the files, no temporary one");
    std::fs::remove_dir_all(root).expect("cleanup");
}

/// Encodes `records` into the directory `d` of a fresh local store; returns the run and the store's root.
fn encode_into_temp_store(format: FileFormat, records: &[SourceRecord]) -> (EncodedRun, std::path::PathBuf) {
    let root = std::env::temp_dir().join(format!("streamlake-streamed-{}", uuid::Uuid::new_v4().simple()));
    let store = LocalStore::new(root.clone());
    let (encoder, classifier) = setup(format);
    let refs: Vec<&SourceRecord> = records.iter().collect();
    let sink = FileSink::Local {
        store: &store,
        dir_key: "d",
    };
    let run = encoder
        .encode_run_into(2, &refs, &classifier, sink)
        .expect("encode");
    (run, root)
}

/// How many entries the directory `d` of a store has (none if it was never made).
fn entries_in_d(root: &std::path::Path) -> usize {
    std::fs::read_dir(root.join("d")).map_or(0, Iterator::count)
}

#[test]
fn a_streamed_run_of_only_poison_leaves_nothing() {
    let (run, root) = encode_into_temp_store(FileFormat::Jsonl, &[record(5, "{"), record(6, "[]")]);
    assert!(run.file.is_none());
    assert_eq!(entries_in_d(&root), 0);
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn parquet_is_built_in_memory_even_for_a_local_store() {
    let (encoder, _) = setup(FileFormat::Parquet);
    assert!(!encoder.streams_to(&RawZoneStore::Local(LocalStore::new("/nonexistent".into()))));
    let (run, root) = encode_into_temp_store(FileFormat::Parquet, &sample());
    assert!(run.file.expect("file").data.is_some());
    assert_eq!(entries_in_d(&root), 0);
    let _ = std::fs::remove_dir_all(root);
}
