use chrono::TimeZone;

use super::*;
use crate::rawzone::layout::DataFileName;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 2, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn empty() -> DatePartitionMetadata {
    let dataset = DatasetName::new("orders").expect("valid");
    DatePartitionMetadata::new(dataset, "2025-01-02".parse().expect("date"), now())
}

fn file(partition: i32, first: i64, last: i64) -> FileEntry {
    let checksum = format!(
        "crc32c:{:08x}",
        (partition as i64) * 1_000_000 + first * 1000 + last
    );
    FileEntry {
        path: DataFileName::new(partition, first, last, &checksum, FileFormat::Jsonl).to_string(),
        partition,
        first_offset: first,
        last_offset: last,
        record_count: (last - first + 1) as u64,
        bytes: 100,
        checksum,
        format: FileFormat::Jsonl,
        schema_versions: vec![1],
        min_timestamp: now(),
        max_timestamp: now(),
        writer_version: "test/0".into(),
        written_at: now(),
    }
}

fn dlq(partition: i32, offset: i64) -> DlqEntry {
    DlqEntry {
        partition,
        offset,
        timestamp: now(),
        error_type: "invalid_json".into(),
    }
}

fn landing(files: Vec<FileEntry>, dlq: Vec<DlqEntry>) -> Landing {
    Landing { files, dlq }
}

#[test]
fn coverage_follows_listed_ranges_and_dlq_entries() {
    let mut meta = empty();
    meta.apply(
        &landing(vec![file(0, 10, 19), file(1, 0, 4)], vec![dlq(0, 25)]),
        now(),
    )
    .expect("apply");
    assert!(meta.covers(0, 10) && meta.covers(0, 19) && meta.covers(0, 25));
    assert!(!meta.covers(0, 9) && !meta.covers(0, 20) && !meta.covers(0, 24));
    assert!(meta.covers(1, 4) && !meta.covers(1, 5) && !meta.covers(2, 0));
    assert_eq!(meta.revision, 1);
    assert!(meta.problems().is_empty(), "{:?}", meta.problems());
}

#[test]
fn overlapping_file_is_refused_and_nothing_changes() {
    let mut meta = empty();
    meta.apply(&landing(vec![file(0, 10, 19)], vec![]), now())
        .expect("apply");
    let before = meta.clone();
    let err = meta
        .apply(&landing(vec![file(0, 30, 40), file(0, 15, 25)], vec![]), now())
        .expect_err("overlap");
    assert!(
        matches!(err, MergeConflict::FileOverlap { first_offset: 15, .. }),
        "{err}"
    );
    assert_eq!(meta, before, "a refused landing must not change the metadata");
    // Another partition with the same offsets is no conflict.
    meta.apply(&landing(vec![file(1, 15, 25)], vec![]), now())
        .expect("other partition");
}

#[test]
fn files_within_one_landing_may_not_overlap_each_other() {
    let err = empty()
        .apply(&landing(vec![file(0, 0, 9), file(0, 9, 12)], vec![]), now())
        .expect_err("overlap");
    assert!(matches!(err, MergeConflict::FileOverlap { .. }));
}

#[test]
fn relisting_the_same_file_is_idempotent() {
    let mut meta = empty();
    let f = file(0, 0, 9);
    meta.apply(&landing(vec![f.clone()], vec![dlq(0, 10)]), now())
        .expect("first");
    meta.apply(&landing(vec![f], vec![dlq(0, 10)]), now())
        .expect("second");
    assert_eq!(meta.files.len(), 1);
    assert_eq!(meta.dlq.len(), 1);
    assert_eq!(meta.landed_count(0), 11);
}

#[test]
fn dlq_entry_inside_a_listed_file_is_refused() {
    let mut meta = empty();
    meta.apply(&landing(vec![file(0, 0, 9)], vec![]), now())
        .expect("apply");
    let err = meta
        .apply(&landing(vec![], vec![dlq(0, 5)]), now())
        .expect_err("covered");
    assert_eq!(
        err,
        MergeConflict::DlqAlreadyCovered {
            partition: 0,
            offset: 5
        }
    );
}

#[test]
fn a_new_file_may_span_dlq_offsets_of_its_own_landing() {
    let mut f = file(0, 0, 9);
    f.record_count = 9;
    let mut meta = empty();
    meta.apply(&landing(vec![f], vec![dlq(0, 4)]), now())
        .expect("apply");
    assert_eq!(meta.landed_count(0), 10);
}

#[test]
fn inconsistent_entries_are_refused() {
    let mut too_many = file(0, 0, 4);
    too_many.record_count = 6;
    let mut backwards = file(0, 0, 4);
    backwards.last_offset = -1;
    for bad in [too_many, backwards] {
        let err = empty()
            .apply(&landing(vec![bad], vec![]), now())
            .expect_err("invalid");
        assert!(matches!(err, MergeConflict::InvalidEntry { .. }));
    }
}

#[test]
fn plan_skips_landed_records_and_cuts_around_listed_files_and_dlq_offsets() {
    let mut meta = empty();
    meta.apply(
        &landing(vec![file(0, 10, 19), file(0, 30, 39)], vec![dlq(0, 42)]),
        now(),
    )
    .expect("apply");
    // A re-read of 5..=45: 5..9 new, 10..19 landed, 20..29 new, 30..39 landed, 40..45 new except 42.
    let offsets: Vec<i64> = (5..=45).collect();
    let plan = meta.plan(0, &offsets);
    let runs: Vec<Vec<i64>> = plan
        .runs
        .iter()
        .map(|run| run.iter().map(|i| offsets[*i]).collect())
        .collect();
    assert_eq!(
        runs,
        vec![
            (5..=9).collect::<Vec<_>>(),
            (20..=29).collect(),
            vec![40, 41],
            vec![43, 44, 45]
        ]
    );
    assert_eq!(plan.already_landed, 10 + 10 + 1);
}

#[test]
fn plan_of_fully_landed_records_is_empty() {
    let mut meta = empty();
    meta.apply(&landing(vec![file(0, 0, 99)], vec![]), now())
        .expect("apply");
    let offsets: Vec<i64> = (0..100).collect();
    let plan = meta.plan(0, &offsets);
    assert!(plan.runs.is_empty());
    assert_eq!(plan.already_landed, 100);
}

#[test]
fn plan_keeps_a_partition_of_offset_gaps_in_one_run() {
    // Gaps (transaction markers, another date's records) do not cut a run; only listed entries do.
    let offsets = [3, 7, 8, 20];
    let plan = empty().plan(0, &offsets);
    assert_eq!(plan.runs, vec![vec![0, 1, 2, 3]]);
}

/// What `plan` must return, record by record: skip what `covers` says is landed, cut a run where the
/// number of listed file starts and DLQ offsets below the record changes.
fn plan_by_lookups(meta: &DatePartitionMetadata, partition: i32, offsets: &[i64]) -> LandingPlan {
    let mut fences: Vec<i64> = meta
        .partition_files(partition)
        .iter()
        .map(|f| f.first_offset)
        .collect();
    fences.extend(
        meta.dlq
            .iter()
            .filter(|d| d.partition == partition)
            .map(|d| d.offset),
    );
    let mut plan = LandingPlan::default();
    let mut current: Vec<usize> = Vec::new();
    let mut fence = None;
    for (i, &offset) in offsets.iter().enumerate() {
        if meta.covers(partition, offset) {
            plan.already_landed += 1;
            continue;
        }
        let below = fences.iter().filter(|f| **f < offset).count();
        if fence.is_some_and(|f| f != below) && !current.is_empty() {
            plan.runs.push(std::mem::take(&mut current));
        }
        fence = Some(below);
        current.push(i);
    }
    if !current.is_empty() {
        plan.runs.push(current);
    }
    plan
}

#[test]
fn plan_agrees_with_a_lookup_per_record_on_random_metadata() {
    // xorshift: reproducible without a dependency.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = |below: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % below
    };
    for _ in 0..500 {
        let mut meta = empty();
        let mut files = Vec::new();
        let mut sent = Vec::new();
        for partition in 0..3 {
            let mut offset = next(5) as i64;
            while offset < 80 {
                match next(3) {
                    0 => {
                        let last = offset + next(10) as i64;
                        files.push(file(partition, offset, last));
                        offset = last + 1;
                    }
                    1 => {
                        sent.push(dlq(partition, offset));
                        offset += 1;
                    }
                    _ => offset += 1 + next(6) as i64,
                }
            }
        }
        meta.apply(&landing(files, sent), now())
            .expect("disjoint entries");
        for partition in 0..3 {
            let mut offsets: Vec<i64> = (0..90).filter(|_| next(4) != 0).collect();
            offsets.truncate(next(90) as usize + 1);
            let plan = meta.plan(partition, &offsets);
            let expected = plan_by_lookups(&meta, partition, &offsets);
            assert_eq!(
                plan.runs, expected.runs,
                "partition {partition}, offsets {offsets:?}"
            );
            assert_eq!(plan.already_landed, expected.already_landed);
        }
    }
}

#[test]
fn planned_files_can_always_be_listed() {
    // Whatever was listed before, landing the plan's runs never conflicts: exhaustive on small ranges.
    for first in 0..6 {
        for last in first..6 {
            for dlq_at in [None, Some(2), Some(17)] {
                let mut meta = empty();
                let seeded = file(0, first * 3, last * 3 + 1);
                let dlq_seed: Vec<DlqEntry> = dlq_at
                    .filter(|o| !(seeded.first_offset..=seeded.last_offset).contains(o))
                    .map(|o| dlq(0, o))
                    .into_iter()
                    .collect();
                meta.apply(&landing(vec![seeded], dlq_seed), now()).expect("seed");
                let offsets: Vec<i64> = (0..20).collect();
                let plan = meta.plan(0, &offsets);
                let files: Vec<FileEntry> = plan
                    .runs
                    .iter()
                    .map(|run| {
                        let (a, b) = (offsets[run[0]], offsets[*run.last().expect("non-empty")]);
                        let mut f = file(0, a, b);
                        f.record_count = run.len() as u64;
                        f
                    })
                    .collect();
                meta.apply(&landing(files, vec![]), now())
                    .expect("plan must be listable");
                assert!(meta.problems().is_empty(), "{:?}", meta.problems());
                assert_eq!(meta.landed_count(0), 20, "every offset of 0..20 exactly once");
            }
        }
    }
}

#[test]
fn a_file_spanning_a_listed_dlq_offset_is_refused() {
    let mut meta = empty();
    meta.apply(&landing(vec![], vec![dlq(0, 5)]), now())
        .expect("apply");
    let err = meta
        .apply(&landing(vec![file(0, 0, 9)], vec![]), now())
        .expect_err("spans");
    assert!(
        matches!(err, MergeConflict::FileSpansDlq { offset: 5, .. }),
        "{err}"
    );
}

#[test]
fn reapplying_a_landing_with_dlq_entries_inside_its_file_is_idempotent() {
    let mut f = file(0, 0, 9);
    f.record_count = 9;
    let both = landing(vec![f], vec![dlq(0, 4)]);
    let mut meta = empty();
    meta.apply(&both, now()).expect("first");
    meta.apply(&both, now())
        .expect("a retried commit of the same landing must succeed");
    assert_eq!(meta.landed_count(0), 10);
}

#[test]
fn metadata_round_trips_through_json() {
    let mut meta = empty();
    meta.apply(&landing(vec![file(2, 0, 3)], vec![dlq(2, 4)]), now())
        .expect("apply");
    let json = serde_json::to_string_pretty(&meta).expect("serialize");
    assert!(json.contains("\"ingestion_date\": \"2025-01-02\""), "{json}");
    assert!(json.contains("\"format\": \"jsonl\""), "{json}");
    let back: DatePartitionMetadata = serde_json::from_str(&json).expect("parse");
    assert_eq!(back, meta);
}

#[test]
fn problems_reports_overlaps_written_by_someone_else() {
    let mut meta = empty();
    meta.files = vec![file(0, 0, 10), file(0, 5, 12)];
    let problems = meta.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("overlap"));
}

#[test]
fn the_checksum_is_the_big_endian_crc32c_and_listings_of_earlier_writers_still_check() {
    // The CRC-32C check value of "123456789" (RFC 3720, B.4).
    assert_eq!(file_checksum(b"123456789"), "crc32c:e3069283");
    assert_eq!(
        checksum_as_listed("crc32c:00000000", b"123456789"),
        "crc32c:e3069283"
    );
    let sha_abc = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    assert_eq!(checksum_as_listed(sha_abc, b"abc"), sha_abc);
    assert_ne!(checksum_as_listed(sha_abc, b"abd"), sha_abc);
    assert_eq!(checksum_as_listed("md5:00", b"abc"), file_checksum(b"abc"));
}

#[test]
fn a_checksum_over_pieces_is_the_checksum_of_the_whole() {
    for cuts in [vec![], vec![0], vec![1, 4], vec![3, 3, 9], vec![9]] {
        let mut checksum = FileChecksum::default();
        let mut from = 0;
        for cut in cuts.iter().copied().chain([9]) {
            checksum.update(&b"123456789"[from..cut]);
            from = cut;
        }
        assert_eq!(checksum.finish(), "crc32c:e3069283", "cut at {cuts:?}");
    }
    assert_eq!(FileChecksum::default().finish(), file_checksum(b""));
}
