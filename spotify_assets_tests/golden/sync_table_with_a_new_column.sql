MERGE WITH SCHEMA EVOLUTION INTO delta.`/lake/silver/dim_user_versions` AS t
USING synced_rows AS s
ON t.`user_id` <=> s.`user_id` AND t.`updated_at` <=> s.`updated_at`
WHEN MATCHED AND (NOT (
  t.`user_name` <=> s.`user_name` AND
  t.`country` <=> s.`country` AND
  t.`subscription_type` <=> s.`subscription_type` AND
  t.`_ingested_at` <=> s.`_ingested_at`
) OR s.`popularity` IS NOT NULL) THEN UPDATE SET *
WHEN NOT MATCHED THEN INSERT *
WHEN NOT MATCHED BY SOURCE THEN DELETE
