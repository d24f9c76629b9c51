MERGE WITH SCHEMA EVOLUTION INTO delta.`/lake/bronze/dim_user` AS t
USING incoming_versions AS s
ON t.`updated_at` IS NOT NULL
  AND t.`updated_at` >= :window_start
  AND t.`updated_at` < :window_end
  AND t.`user_id` <=> s.`user_id`
  AND t.`updated_at` <=> s.`updated_at`
WHEN NOT MATCHED THEN INSERT *
