"""
### StreamLake replay

Re-reads a dataset's raw topic from a chosen position by creating a **Replay** resource; the operator
scales the consumers down, resets the consumer group's offsets while it has no members, scales them back
up and follows the re-read. Set exactly one start: `position`, `start_timestamp`, `start_offset` (with
`partitions`) or `shift_by`; optionally one end: `end_timestamp` or `end_offset`. `dry_run` only computes
the offset plan. See airflow/README.md.
"""

from datetime import timedelta

from streamlake_airflow.dags import streamlake_dag
from streamlake_airflow.kinds import REPLAY

dag = streamlake_dag(
    REPLAY,
    dag_id="streamlake_replay",
    description="Replay a dataset's raw topic from an offset or time (Replay resource)",
    doc_md=__doc__,
    wait_timeout=timedelta(hours=12),
)
