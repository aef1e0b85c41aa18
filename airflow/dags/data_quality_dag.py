"""
### StreamLake data quality

Checks one day (`date`) or a range (`start_date`/`end_date`) of a dataset's raw zone by creating a
**DqCheck** resource: files exist, row count, `_metadata.json` consistency, no empty partitions, offset
continuity, and optionally freshness and a contract sample. The task fails with the check's message when
any check fails. See airflow/README.md.
"""

from datetime import timedelta

from streamlake_airflow.dags import streamlake_dag
from streamlake_airflow.kinds import DQ_CHECK

dag = streamlake_dag(
    DQ_CHECK,
    dag_id="streamlake_data_quality",
    description="Check a day or range of a dataset's raw zone (DqCheck resource)",
    doc_md=__doc__,
    wait_timeout=timedelta(hours=1),
)
