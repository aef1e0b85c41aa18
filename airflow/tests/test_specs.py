"""Params → spec for each kind: valid input makes exactly the spec the CRD expects, bad input fails with
every problem named."""

import pytest
from airflow.sdk import ParamsDict
from airflow.sdk.exceptions import ParamValidationError

from streamlake_airflow import specs
from streamlake_airflow.kinds import ALL
from streamlake_airflow.params import ParamError


def defaults(kind_params) -> dict:
    """The values a run gets for params it does not set (what the trigger form pre-fills)."""
    return {name: param.value for name, param in kind_params().items() if param.has_value}


def problems(builder, params) -> list[str]:
    with pytest.raises(ParamError) as e:
        builder(params)
    return e.value.problems


# --- Replay --------------------------------------------------------------------------------------------


def replay(**conf):
    return specs.replay_spec(defaults(specs.replay_params) | conf)


def test_replay_from_position():
    assert replay(dataset="orders", position="earliest") == {
        "dataset": "orders",
        "dryRun": False,
        "from": {"position": "earliest"},
    }


def test_replay_timestamps_are_normalised_to_utc():
    spec = replay(
        dataset="orders", start_timestamp="2026-01-15T01:00:00+01:00", end_timestamp="2026-01-16T00:00:00Z"
    )
    assert spec["from"] == {"timestamp": "2026-01-15T00:00:00Z"}
    assert spec["to"] == {"timestamp": "2026-01-16T00:00:00Z"}


def test_replay_offsets_apply_to_each_listed_partition():
    spec = replay(
        dataset="orders",
        start_offset=10,
        end_offset=20,
        partitions=[2, 0],
        topic="custom.topic",
        dry_run=True,
    )
    assert spec["from"] == {"offsets": [{"partition": 0, "offset": 10}, {"partition": 2, "offset": 10}]}
    assert spec["to"] == {"offsets": [{"partition": 0, "offset": 20}, {"partition": 2, "offset": 20}]}
    assert spec["topic"] == "custom.topic"
    assert spec["dryRun"] is True


def test_replay_shift_and_timeout():
    spec = replay(dataset="orders", shift_by=-100, group_empty_timeout="90s")
    assert spec["from"] == {"shiftBy": -100}
    assert spec["groupEmptyTimeout"] == "90s"


def test_replay_names_its_group_and_deployment_when_told():
    spec = replay(
        dataset="orders",
        position="earliest",
        consumer_group="legacy-orders-sink",
        deployment="orders-consumer",
    )
    assert (spec["consumerGroup"], spec["deployment"]) == ("legacy-orders-sink", "orders-consumer")
    assert "consumerGroup" not in replay(dataset="orders", position="earliest")


def test_replay_needs_exactly_one_start():
    assert any(
        "set exactly one start" in p and "got none" in p
        for p in problems(specs.replay_spec, {"dataset": "orders"})
    )
    found = problems(specs.replay_spec, {"dataset": "orders", "position": "earliest", "shift_by": 5})
    assert any("got position and shift_by" in p for p in found)


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        ({"dataset": "Orders", "position": "earliest"}, "dataset must be lowercase letters"),
        ({"position": "earliest"}, "dataset is required"),
        ({"dataset": "orders", "position": "middle"}, "position must be one of earliest, latest"),
        ({"dataset": "orders", "start_offset": 5}, "need partitions"),
        (
            {"dataset": "orders", "start_offset": 5, "end_offset": 5, "partitions": [0]},
            "end_offset must be greater",
        ),
        ({"dataset": "orders", "start_offset": -1, "partitions": [0]}, "start_offset must be at least 0"),
        (
            {"dataset": "orders", "start_offset": "5", "partitions": [0]},
            "start_offset must be a whole number",
        ),
        (
            {"dataset": "orders", "start_offset": True, "partitions": [0]},
            "start_offset must be a whole number",
        ),
        ({"dataset": "orders", "position": "earliest", "partitions": [0]}, "partitions only applies"),
        ({"dataset": "orders", "start_offset": 1, "partitions": [0, 0]}, "lists a partition twice"),
        ({"dataset": "orders", "start_offset": 1, "partitions": []}, "non-empty list"),
        ({"dataset": "orders", "start_timestamp": "2026-01-15T00:00:00"}, "needs a time zone"),
        ({"dataset": "orders", "start_timestamp": "yesterday"}, "RFC 3339"),
        (
            {
                "dataset": "orders",
                "start_timestamp": "2026-01-15T00:00:00Z",
                "end_timestamp": "2026-01-14T00:00:00Z",
            },
            "end_timestamp must be after",
        ),
        (
            {
                "dataset": "orders",
                "position": "earliest",
                "end_timestamp": "2026-01-14T00:00:00Z",
                "end_offset": 4,
                "partitions": [0],
            },
            "at most one end",
        ),
        ({"dataset": "orders", "shift_by": 0}, "shift_by must not be 0"),
        (
            {"dataset": "orders", "position": "earliest", "group_empty_timeout": "5 minutes"},
            "group_empty_timeout must be a duration",
        ),
        ({"dataset": "orders", "position": "latest", "topic": "bad topic!"}, "topic must be letters"),
        (
            {"dataset": "orders", "position": "latest", "deployment": "Orders_Consumer"},
            "deployment must be a Kubernetes object name",
        ),
        ({"dataset": "orders", "position": "latest", "consumer_group": "g" * 256}, "1 to 255 characters"),
    ],
)
def test_replay_rejects(conf, expected):
    found = problems(specs.replay_spec, conf)
    assert any(expected in p for p in found), found


def test_every_problem_is_reported_at_once():
    found = problems(specs.replay_spec, {"dataset": "BAD", "start_timestamp": "nope", "shift_by": 0})
    assert len(found) >= 3, found


def test_empty_strings_from_the_form_count_as_unset():
    assert replay(dataset="orders", position="latest", topic="", start_timestamp="")["from"] == {
        "position": "latest"
    }


# --- Backfill ------------------------------------------------------------------------------------------


def backfill(**conf):
    return specs.backfill_spec(defaults(specs.backfill_params) | conf)


def test_backfill_date_range():
    assert backfill(dataset="orders", start_date="2026-01-15", end_date="2026-01-16") == {
        "dataset": "orders",
        "mode": "Isolated",
        "startDate": "2026-01-15",
        "endDate": "2026-01-16",
    }


def test_backfill_time_and_offset_ranges():
    spec = backfill(
        dataset="orders",
        start_timestamp="2026-01-15T00:00:00Z",
        end_timestamp="2026-01-15T06:00:00Z",
        mode="Replay",
    )
    assert spec == {
        "dataset": "orders",
        "mode": "Replay",
        "startTime": "2026-01-15T00:00:00Z",
        "endTime": "2026-01-15T06:00:00Z",
    }
    spec = backfill(dataset="orders", start_offset=0, end_offset=3, partitions=[1, 0])
    assert spec["offsets"] == [{"partition": 0, "start": 0, "end": 3}, {"partition": 1, "start": 0, "end": 3}]


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        ({"dataset": "orders"}, "set exactly one range"),
        ({"dataset": "orders", "start_date": "2026-01-15"}, "start_date and end_date go together"),
        (
            {"dataset": "orders", "start_date": "2026-01-16", "end_date": "2026-01-15"},
            "end_date must not be before",
        ),
        ({"dataset": "orders", "start_date": "2026-02-30", "end_date": "2026-03-01"}, "not a real date"),
        ({"dataset": "orders", "start_date": "15/01/2026", "end_date": "2026-03-01"}, "YYYY-MM-DD"),
        (
            {
                "dataset": "orders",
                "start_date": "2026-01-15",
                "end_date": "2026-01-16",
                "start_offset": 0,
                "end_offset": 1,
                "partitions": [0],
            },
            "got start_date/end_date and start_offset/end_offset",
        ),
        ({"dataset": "orders", "start_offset": 0, "end_offset": 3}, "need partitions"),
        (
            {"dataset": "orders", "start_offset": 3, "end_offset": 3, "partitions": [0]},
            "end_offset must be greater",
        ),
        (
            {"dataset": "orders", "start_timestamp": "2026-01-15T00:00:00Z"},
            "start_timestamp and end_timestamp go together",
        ),
        (
            {"dataset": "orders", "start_date": "2026-01-15", "end_date": "2026-01-15", "mode": "Streaming"},
            "mode must be one of",
        ),
    ],
)
def test_backfill_rejects(conf, expected):
    found = problems(specs.backfill_spec, conf)
    assert any(expected in p for p in found), found


# --- DlqInspection -------------------------------------------------------------------------------------


def dlq(**conf):
    return specs.dlq_inspection_spec(defaults(specs.dlq_inspection_params) | conf)


def test_dlq_last_records_of_a_dataset():
    assert dlq(dataset="orders", last_records=50) == {
        "dataset": "orders",
        "lastRecords": 50,
        "maxRecords": 10000,
        "sampleSize": 5,
    }


def test_dlq_time_window_of_a_topic_with_redrive():
    spec = dlq(
        topic="streamlake.orders.dlq",
        start_timestamp="2026-01-15T00:00:00Z",
        end_timestamp="2026-01-15T12:00:00Z",
        redrive=True,
        redrive_error_types=["schema_violation"],
    )
    assert spec["topic"] == "streamlake.orders.dlq" and "dataset" not in spec
    assert spec["since"] == "2026-01-15T00:00:00Z" and spec["until"] == "2026-01-15T12:00:00Z"
    assert spec["redrive"] == {"errorTypes": ["schema_violation"]}


def test_dlq_redrive_by_stage_with_a_loop_guard():
    spec = dlq(
        dataset="orders",
        last_records=10,
        redrive=True,
        redrive_error_stages=["consumer"],
        redrive_max_attempts=5,
    )
    assert spec["redrive"] == {"errorStages": ["consumer"], "maxAttempts": 5}
    assert dlq(dataset="orders", last_records=10, redrive=True)["redrive"] == {}


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        ({"last_records": 5}, "set exactly one source"),
        ({"dataset": "orders", "topic": "x.dlq", "last_records": 5}, "got dataset and topic"),
        ({"dataset": "orders"}, "set exactly one window"),
        (
            {"dataset": "orders", "last_records": 5, "start_timestamp": "2026-01-15T00:00:00Z"},
            "got start_timestamp and last_records",
        ),
        (
            {"dataset": "orders", "last_records": 5, "end_timestamp": "2026-01-15T00:00:00Z"},
            "end_timestamp needs start_timestamp",
        ),
        ({"dataset": "orders", "last_records": 0}, "last_records must be at least 1"),
        ({"dataset": "orders", "last_records": 5, "max_records": 2_000_000}, "max_records must be at most"),
        ({"dataset": "orders", "last_records": 5, "redrive_error_types": ["x"]}, "only applies with redrive"),
        ({"dataset": "orders", "last_records": 5, "redrive_max_attempts": 2}, "only applies with redrive"),
        (
            {"dataset": "orders", "last_records": 5, "redrive": True, "redrive_error_stages": ["sink"]},
            "takes api and consumer, got ['sink']",
        ),
        (
            {"dataset": "orders", "last_records": 5, "redrive": True, "redrive_error_stages": ["api", "api"]},
            "lists a stage twice",
        ),
        (
            {"dataset": "orders", "last_records": 5, "redrive": True, "redrive_max_attempts": 11},
            "redrive_max_attempts must be at most 10",
        ),
    ],
)
def test_dlq_rejects(conf, expected):
    found = problems(specs.dlq_inspection_spec, conf)
    assert any(expected in p for p in found), found


# --- DqCheck -------------------------------------------------------------------------------------------


def dq(**conf):
    return specs.dq_check_spec(defaults(specs.dq_check_params) | conf)


def test_dq_default_checks_for_one_day():
    assert dq(dataset="orders", date="2026-01-15") == {
        "dataset": "orders",
        "date": "2026-01-15",
        "checks": {
            "filesExist": True,
            "metadataConsistent": True,
            "noEmptyPartitions": True,
            "offsetContinuity": True,
            "minRowCount": 1,
        },
    }


def test_dq_range_with_optional_checks():
    spec = dq(
        dataset="orders",
        start_date="2026-01-15",
        end_date="2026-01-16",
        files_exist=False,
        metadata_consistent=False,
        no_empty_partitions=False,
        offset_continuity=False,
        min_row_count=None,
        freshness_max_age="2h",
        contract_sample_size=10,
    )
    assert spec == {
        "dataset": "orders",
        "startDate": "2026-01-15",
        "endDate": "2026-01-16",
        "checks": {"freshness": {"maxAge": "2h"}, "contractSample": {"size": 10}},
    }


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        ({"dataset": "orders"}, "set exactly one day"),
        (
            {"dataset": "orders", "date": "2026-01-15", "start_date": "2026-01-15", "end_date": "2026-01-16"},
            "got date and start_date/end_date",
        ),
        (
            {
                "dataset": "orders",
                "date": "2026-01-15",
                "files_exist": False,
                "metadata_consistent": False,
                "no_empty_partitions": False,
                "offset_continuity": False,
                "min_row_count": None,
            },
            "select at least one check",
        ),
        (
            {"dataset": "orders", "date": "2026-01-15", "files_exist": "yes"},
            "files_exist must be true or false",
        ),
        (
            {"dataset": "orders", "date": "2026-01-15", "freshness_max_age": "2 hours"},
            "freshness_max_age must be a duration",
        ),
    ],
)
def test_dq_rejects(conf, expected):
    found = problems(specs.dq_check_spec, conf)
    assert any(expected in p for p in found), found


# --- The declared Params agree with the builders -------------------------------------------------------


@pytest.mark.parametrize("kind", ALL, ids=lambda k: k.kind)
def test_typed_params_refuse_bad_values_when_a_run_is_triggered(kind):
    """The JSON schema of each Param is checked by Airflow before any task runs."""
    params = ParamsDict(kind.params())
    with pytest.raises(ParamValidationError):
        params["dataset"] = "Not Valid!"
    if "topic" in params:
        with pytest.raises(ParamValidationError):
            params["topic"] = 42


@pytest.mark.parametrize("kind", ALL, ids=lambda k: k.kind)
def test_defaults_alone_never_make_a_resource(kind):
    """A run triggered with no conf fails validation instead of acting on some default dataset."""
    with pytest.raises(ParamError):
        kind.build_spec(defaults(kind.params))


def test_offset_params_are_integers_at_least_zero():
    params = ParamsDict(specs.replay_params())
    with pytest.raises(ParamValidationError):
        params["start_offset"] = -1
    with pytest.raises(ParamValidationError):
        params["start_offset"] = "10"
    params["start_offset"] = 10
    assert params["start_offset"] == 10
