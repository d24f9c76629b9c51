"""The databricks engine: each Dagster step runs as a Databricks job through Dagster Pipes.

`task` builds what is submitted (and what databricks.yml must agree with), `submit` is the Dagster
side (the steps that submit, wait, cancel and report), `remote_step` the cluster side (the same
asset functions, run on the cluster's Spark).
"""
