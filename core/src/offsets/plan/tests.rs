use std::collections::BTreeMap;

use super::*;

/// Three partitions: p0 holds [10, 100) with 60 committed, p1 holds [0, 50) with nothing committed,
/// p2 is empty at offset 7 with 7 committed.
fn topic() -> Vec<PartitionOffsets> {
    vec![
        PartitionOffsets {
            partition: 0,
            low: 10,
            high: 100,
            committed: Some(60),
        },
        PartitionOffsets {
            partition: 1,
            low: 0,
            high: 50,
            committed: None,
        },
        PartitionOffsets {
            partition: 2,
            low: 7,
            high: 7,
            committed: Some(7),
        },
    ]
}

fn plan(from: StartPosition, to: EndPosition) -> OffsetResetPlan {
    OffsetResetPlan::compute(&topic(), &from, &to).expect("plan")
}

/// (partition, new, end, clamped) of each partition.
fn rows(plan: &OffsetResetPlan) -> Vec<(i32, i64, i64, bool)> {
    plan.partitions
        .iter()
        .map(|p| (p.partition, p.new_offset, p.end_offset, p.clamped))
        .collect()
}

fn map<V: Copy>(entries: &[(i32, V)]) -> BTreeMap<i32, V> {
    entries.iter().copied().collect()
}

#[test]
fn earliest_rewinds_every_partition_to_its_low_watermark_and_ends_at_the_log_end() {
    let p = plan(StartPosition::Earliest, EndPosition::LogEnd);
    assert_eq!(
        rows(&p),
        [(0, 10, 100, false), (1, 0, 50, false), (2, 7, 7, false)]
    );
    assert_eq!(
        p.partitions[0].committed,
        Some(60),
        "the old committed offset is kept in the plan"
    );
    assert_eq!(p.partitions[1].committed, None);
    assert_eq!(p.new_offsets(), map(&[(0, 10), (1, 0), (2, 7)]));
}

#[test]
fn latest_skips_to_the_end_so_there_is_nothing_to_replay() {
    let p = plan(StartPosition::Latest, EndPosition::LogEnd);
    assert_eq!(
        rows(&p),
        [(0, 100, 100, false), (1, 50, 50, false), (2, 7, 7, false)]
    );
    assert!(p.progress(&BTreeMap::new()).is_complete());
}

#[test]
fn timestamp_uses_the_lookup_and_the_log_end_where_no_record_is_that_recent() {
    let lookup = map(&[(0, Some(40)), (1, None), (2, None)]);
    let p = plan(StartPosition::Timestamp(lookup), EndPosition::LogEnd);
    assert_eq!(
        rows(&p),
        [(0, 40, 100, false), (1, 50, 50, false), (2, 7, 7, false)]
    );
}

#[test]
fn a_timestamp_lookup_missing_a_partition_is_an_error_not_a_guess() {
    let err = OffsetResetPlan::compute(
        &topic(),
        &StartPosition::Timestamp(map(&[(0, Some(1)), (1, Some(1))])),
        &EndPosition::LogEnd,
    )
    .expect_err("p2 missing");
    assert_eq!(err, PlanError::MissingTimestampOffset { partition: 2 });
}

#[test]
fn explicit_offsets_are_clamped_to_the_watermarks_and_unlisted_partitions_keep_their_position() {
    let p = plan(
        StartPosition::Offsets(map(&[(0, 5), (1, 20)])),
        EndPosition::LogEnd,
    );
    // p0: 5 is below the low watermark 10; p2 is not listed and keeps its committed 7.
    assert_eq!(
        rows(&p),
        [(0, 10, 100, true), (1, 20, 50, false), (2, 7, 7, false)]
    );
    let beyond = plan(StartPosition::Offsets(map(&[(0, 1_000)])), EndPosition::LogEnd);
    assert_eq!(rows(&beyond)[0], (0, 100, 100, true));
    // p1 has no committed offset: its position is the earliest offset.
    assert_eq!(rows(&beyond)[1], (1, 0, 50, false));
}

#[test]
fn offsets_for_a_partition_the_topic_lacks_are_refused() {
    let err = OffsetResetPlan::compute(
        &topic(),
        &StartPosition::Offsets(map(&[(9, 0)])),
        &EndPosition::LogEnd,
    )
    .expect_err("p9");
    assert_eq!(
        err,
        PlanError::UnknownPartition {
            which: "from.offsets",
            partition: 9,
            count: 3
        }
    );
    let err = OffsetResetPlan::compute(
        &topic(),
        &StartPosition::Earliest,
        &EndPosition::Offsets(map(&[(3, 1)])),
    )
    .expect_err("p3");
    assert!(matches!(
        err,
        PlanError::UnknownPartition {
            which: "to.offsets",
            partition: 3,
            ..
        }
    ));
    assert_eq!(
        OffsetResetPlan::compute(&[], &StartPosition::Earliest, &EndPosition::LogEnd),
        Err(PlanError::NoPartitions)
    );
}

#[test]
fn shift_moves_from_the_committed_offset_and_clamps() {
    let back = plan(StartPosition::ShiftBy(-30), EndPosition::LogEnd);
    // p0: 60 - 30; p1: no commit, so from the earliest 0, clamped at 0; p2: 7 - 30 clamped to 7.
    assert_eq!(
        rows(&back),
        [(0, 30, 100, false), (1, 0, 50, true), (2, 7, 7, true)]
    );
    let forward = plan(StartPosition::ShiftBy(25), EndPosition::LogEnd);
    assert_eq!(rows(&forward)[0], (0, 85, 100, false));
    let huge = plan(StartPosition::ShiftBy(i64::MIN), EndPosition::LogEnd);
    assert_eq!(rows(&huge)[0], (0, 10, 100, true), "no overflow");
}

#[test]
fn end_offsets_are_clamped_between_the_new_offset_and_the_log_end() {
    let to = EndPosition::Offsets(map(&[(0, 20), (1, 500)]));
    let p = plan(StartPosition::Offsets(map(&[(0, 30), (1, 10)])), to);
    // p0 ends before it starts → nothing to do there; p1's end is past the log end; p2 unlisted → log end.
    assert_eq!(rows(&p), [(0, 30, 30, true), (1, 10, 50, true), (2, 7, 7, false)]);
    let by_time = plan(
        StartPosition::Earliest,
        EndPosition::Timestamp(map(&[(0, Some(70)), (1, None), (2, None)])),
    );
    assert_eq!(
        rows(&by_time),
        [(0, 10, 70, false), (1, 0, 50, false), (2, 7, 7, false)]
    );
}

#[test]
fn progress_counts_committed_records_between_start_and_end() {
    let p = plan(StartPosition::Earliest, EndPosition::LogEnd); // 90 + 50 + 0 records
    let none = p.progress(&BTreeMap::new());
    assert_eq!((none.replayed, none.total, none.partitions_done), (0, 140, 1));
    assert_eq!(none.percent(), 0);
    let half = p.progress(&map(&[(0, 55), (1, 25)]));
    assert_eq!((half.replayed, half.total), (70, 140));
    assert_eq!(half.percent(), 50);
    assert!(!half.is_complete());
    // The live consumer keeps going past the end: that counts as done, not as more than 100%.
    let done = p.progress(&map(&[(0, 120), (1, 50), (2, 7)]));
    assert_eq!((done.replayed, done.total), (140, 140));
    assert!(done.is_complete());
    assert_eq!(done.percent(), 100);
}

#[test]
fn progress_never_shows_100_percent_before_completion_and_ignores_rewinds() {
    let p = plan(StartPosition::Earliest, EndPosition::LogEnd);
    let almost = p.progress(&map(&[(0, 100), (1, 49)]));
    assert_eq!(almost.percent(), 99);
    let rewound = p.progress(&map(&[(0, 3), (1, 0)]));
    assert_eq!(
        rewound.replayed, 0,
        "a committed offset below the start counts as nothing re-read"
    );
}
