"""
### StreamLake backfill

Re-ingests a bounded range of a dataset's raw topic into the same raw-zone partitions by creating a
**Backfill** resource. Set exactly one range: `start_date`/`end_date` (UTC days, inclusive),
`start_timestamp`/`end_timestamp`, or `start_offset`/`end_offset` with `partitions`. `mode: Isolated`
(default) runs a bounded consumer Job beside the live consumers. See airflow/README.md.
"""

from datetime import timedelta

from streamlake_airflow.dags import streamlake_dag
from streamlake_airflow.kinds import BACKFILL

dag = streamlake_dag(
    BACKFILL,
    dag_id="streamlake_backfill",
    description="Backfill a date, time or offset range of a dataset (Backfill resource)",
    doc_md=__doc__,
    wait_timeout=timedelta(hours=12),
)
