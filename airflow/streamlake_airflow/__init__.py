"""StreamLake's Airflow plugin package: the shared operator, sensor, trigger, params and DAG factory that
the four DAGs in airflow/dags/ are built from."""
