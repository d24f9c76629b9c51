MERGE INTO delta.`/lake/gold/dim_user` AS t
USING changed_history AS s
ON t.`user_sk` = s.`user_sk`
WHEN MATCHED AND s.`_remove` THEN DELETE
WHEN MATCHED AND NOT (
  t.`user_sk` <=> s.`user_sk` AND
  t.`user_id` <=> s.`user_id` AND
  t.`subscription_type` <=> s.`subscription_type` AND
  t.`__START_AT` <=> s.`__START_AT` AND
  t.`__END_AT` <=> s.`__END_AT` AND
  t.`is_current` <=> s.`is_current`
) THEN UPDATE SET
  `user_sk` = s.`user_sk`,
  `user_id` = s.`user_id`,
  `subscription_type` = s.`subscription_type`,
  `__START_AT` = s.`__START_AT`,
  `__END_AT` = s.`__END_AT`,
  `is_current` = s.`is_current`
WHEN NOT MATCHED AND NOT s.`_remove` THEN INSERT (
  `user_sk`,
  `user_id`,
  `subscription_type`,
  `__START_AT`,
  `__END_AT`,
  `is_current`
) VALUES (
  s.`user_sk`,
  s.`user_id`,
  s.`subscription_type`,
  s.`__START_AT`,
  s.`__END_AT`,
  s.`is_current`
)
