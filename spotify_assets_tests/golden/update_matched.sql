MERGE INTO delta.`/lake/gold/new_release_tracks` AS t
USING matched_updates AS s
ON t.`track_id` = s.`track_id` AND t.`seen_on` = s.`seen_on`
WHEN MATCHED THEN UPDATE SET t.`first_seen` = s.`first_seen`
