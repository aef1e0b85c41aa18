"""
### StreamLake DLQ inspection

Summarises a window of a dead-letter topic by creating a **DlqInspection** resource: counts by
`error.type` and `error.stage`, top messages, samples, and a JSON report in the lake. Name the DLQ by
`dataset` or `topic`; choose the window by `start_timestamp` (with an optional `end_timestamp`) or
`last_records`. `redrive: true` re-produces the selected records to the raw topic. See airflow/README.md.
"""

from datetime import timedelta

from streamlake_airflow.dags import streamlake_dag
from streamlake_airflow.kinds import DLQ_INSPECTION

dag = streamlake_dag(
    DLQ_INSPECTION,
    dag_id="streamlake_dlq_inspection",
    description="Summarise (and optionally redrive) a dataset's DLQ (DlqInspection resource)",
    doc_md=__doc__,
    wait_timeout=timedelta(hours=1),
)
