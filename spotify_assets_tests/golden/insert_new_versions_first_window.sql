MERGE INTO delta.`/lake/bronze/fact_stream` AS t
USING incoming_versions AS s
ON t.`stream_timestamp` IS NOT NULL
  AND t.`stream_timestamp` < :window_end
  AND t.`stream_id` <=> s.`stream_id`
  AND t.`stream_timestamp` <=> s.`stream_timestamp`
WHEN NOT MATCHED THEN INSERT *
