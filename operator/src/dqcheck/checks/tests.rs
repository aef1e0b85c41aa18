use super::*;

fn file(partition: i32, first: i64, last: i64) -> FileObservation {
    FileObservation {
        path: format!("p{partition}-{first}-{last}.jsonl"),
        partition,
        first_offset: first,
        last_offset: last,
        record_count: u64::try_from(last - first + 1).expect("positive"),
        listed_bytes: 100,
        listed_checksum: "crc32c:000000aa".into(),
        found: Some((100, "crc32c:000000aa".into())),
        max_timestamp_ms: 1_000_000,
    }
}

fn healthy() -> Observation {
    Observation {
        days: vec![DayObservation {
            date: "2026-11-01".into(),
            metadata: MetadataState::Present,
            files: vec![file(0, 0, 9), file(0, 10, 19), file(1, 0, 19)],
            dlq: vec![(1, 20)],
            expected: BTreeMap::from([(0, (0, 20)), (1, (0, 21))]),
        }],
        group: "streamlake-orders-sink".into(),
        committed: BTreeMap::from([(0, 20), (1, 21)]),
        sample: Some(SampleObservation {
            checked: 10,
            ..Default::default()
        }),
        now_ms: 1_060_000,
    }
}

fn all_checks() -> DqChecks {
    serde_json::from_value(serde_json::json!({
        "filesExist": true, "minRowCount": 40, "metadataConsistent": true, "noEmptyPartitions": true,
        "offsetContinuity": true, "contractSample": {"size": 10}, "freshness": {"maxAge": "2m"}
    }))
    .expect("checks")
}

fn failed(results: &[CheckResult]) -> Vec<&str> {
    results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.name.as_str())
        .collect()
}

fn observed<'a>(results: &'a [CheckResult], name: &str) -> &'a str {
    &results
        .iter()
        .find(|r| r.name == name)
        .expect("check ran")
        .observed
}

#[test]
fn a_healthy_day_passes_every_check() {
    let results = evaluate(&all_checks(), Some(120_000), &healthy());
    assert_eq!(results.len(), 7);
    assert!(failed(&results).is_empty(), "{results:?}");
    assert_eq!(observed(&results, MIN_ROW_COUNT), "40 rows");
    assert_eq!(
        observed(&results, OFFSET_CONTINUITY),
        "41 offsets landed once each"
    );
}

#[test]
fn a_missing_file_is_a_gap_and_an_inconsistency() {
    let mut o = healthy();
    o.days[0].files[1].found = None;
    let results = evaluate(&all_checks(), Some(120_000), &o);
    assert_eq!(
        failed(&results),
        [FILES_EXIST, MIN_ROW_COUNT, METADATA_CONSISTENT, OFFSET_CONTINUITY]
    );
    assert_eq!(
        observed(&results, OFFSET_CONTINUITY),
        "2026-11-01: gap at partition 0 offsets 10..=19"
    );
}

#[test]
fn a_partition_whose_records_all_went_to_the_dlq_is_not_empty() {
    let mut o = healthy();
    o.days[0].expected.insert(2, (0, 2));
    o.days[0].dlq.push((2, 0));
    let results = evaluate(&all_checks(), Some(120_000), &o);
    assert!(
        failed(&results).contains(&NO_EMPTY_PARTITIONS),
        "one of two records unaccounted for"
    );
    assert_eq!(
        observed(&results, NO_EMPTY_PARTITIONS),
        "2026-11-01: Kafka partition 2 has 2 records but no file (1 of them in the DLQ)"
    );
    o.days[0].dlq.push((2, 1));
    let results = evaluate(&all_checks(), Some(120_000), &o);
    assert!(!failed(&results).contains(&NO_EMPTY_PARTITIONS), "{results:?}");
}

#[test]
fn a_missing_metadata_file_fails_by_name() {
    let mut o = healthy();
    o.days[0].metadata = MetadataState::Missing;
    o.days[0].files.clear();
    o.days[0].dlq.clear();
    let results = evaluate(&all_checks(), Some(120_000), &o);
    assert!(failed(&results).contains(&METADATA_CONSISTENT));
    assert_eq!(
        observed(&results, METADATA_CONSISTENT),
        "2026-11-01: _metadata.json is missing"
    );
}

#[test]
fn an_empty_day_fails_every_check() {
    let o = Observation {
        days: vec![DayObservation {
            date: "2026-10-01".into(),
            metadata: MetadataState::Missing,
            files: vec![],
            dlq: vec![],
            expected: BTreeMap::from([(0, (5, 5))]),
        }],
        sample: Some(SampleObservation::default()),
        ..healthy()
    };
    let results = evaluate(&all_checks(), Some(120_000), &o);
    assert_eq!(failed(&results).len(), 7, "{results:?}");
}

#[test]
fn overlaps_and_stale_checksums_are_named() {
    let mut o = healthy();
    o.days[0].files.push(file(0, 5, 12));
    o.days[0].files[0].found = Some((100, "crc32c:000000bb".into()));
    let results = evaluate(&all_checks(), Some(120_000), &o);
    assert!(observed(&results, OFFSET_CONTINUITY).contains("overlap at partition 0 offsets 5..=9"));
    assert!(observed(&results, METADATA_CONSISTENT).contains("has checksum crc32c:000000bb"));
}

#[test]
fn a_dlq_entry_inside_a_file_of_its_own_landing_is_no_overlap() {
    // A bounded re-read (a Backfill) lands one file across a poison pill: the file holds every record of its
    // range but the DLQ entry, so each offset is still landed exactly once.
    let mut o = healthy();
    o.days[0].files[2] = FileObservation {
        record_count: 20,
        ..file(1, 0, 20)
    };
    let results = evaluate(&all_checks(), Some(120_000), &o);
    assert!(failed(&results).is_empty(), "{results:?}");
    assert_eq!(
        observed(&results, OFFSET_CONTINUITY),
        "41 offsets landed once each"
    );
}

#[test]
fn old_data_is_not_fresh_and_no_committed_offsets_is_loud() {
    let mut o = healthy();
    o.now_ms = 10_000_000;
    o.committed.clear();
    let results = evaluate(&all_checks(), Some(120_000), &o);
    assert_eq!(failed(&results), [OFFSET_CONTINUITY, FRESHNESS]);
    assert!(observed(&results, OFFSET_CONTINUITY).contains("no committed offsets"));
}
