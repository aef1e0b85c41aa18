"""Shared test setup: Airflow must be the one dev/airflow/setup prepared, never a stray ~/airflow."""

import os

import pytest

pytest_plugins = ["e2e_env"]


def pytest_configure(config: pytest.Config) -> None:
    # The waits poll every second in tests (15 s in production); DAG files read this when parsed.
    os.environ["STREAMLAKE_AIRFLOW_POLL_SECONDS"] = "1"
    if not os.environ.get("AIRFLOW_HOME"):
        raise pytest.UsageError(
            "AIRFLOW_HOME is not set: run dev/airflow/setup and `source .streamlake/airflow/env` "
            "(or use dev/test.d/airflow, which does both)"
        )
