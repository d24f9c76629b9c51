WITH
usr AS (
  SELECT
    `user_name`,
    `country`,
    `subscription_type`,
    `user_id` AS `_key`,
    CASE
      WHEN ROW_NUMBER() OVER (PARTITION BY `user_id` ORDER BY `updated_at`) = 1 THEN NULL
      ELSE `updated_at`
    END AS `_valid_from`,
    LEAD(`updated_at`) OVER (PARTITION BY `user_id` ORDER BY `updated_at`) AS `_valid_to`
  FROM silver_dim_user_versions
),
trk AS (
  SELECT
    `track_name`,
    `album_name`,
    `duration_sec`,
    `duration_flag`,
    `artist_id`,
    `track_id` AS `_key`,
    CASE
      WHEN ROW_NUMBER() OVER (PARTITION BY `track_id` ORDER BY `updated_at`) = 1 THEN NULL
      ELSE `updated_at`
    END AS `_valid_from`,
    LEAD(`updated_at`) OVER (PARTITION BY `track_id` ORDER BY `updated_at`) AS `_valid_to`
  FROM silver_dim_track_versions
),
art AS (
  SELECT
    `artist_name`,
    `genre`,
    `country`,
    `artist_id` AS `_key`,
    CASE
      WHEN ROW_NUMBER() OVER (PARTITION BY `artist_id` ORDER BY `updated_at`) = 1 THEN NULL
      ELSE `updated_at`
    END AS `_valid_from`,
    LEAD(`updated_at`) OVER (PARTITION BY `artist_id` ORDER BY `updated_at`) AS `_valid_to`
  FROM silver_dim_artist_versions
)
SELECT
  f.`stream_id`,
  f.`user_id`,
  f.`track_id`,
  f.`date_key`,
  f.`listen_duration`,
  f.`device_type`,
  f.`stream_timestamp`,
  usr.`user_name` AS `user_name`,
  usr.`country` AS `user_country`,
  usr.`subscription_type` AS `subscription_type`,
  trk.`track_name` AS `track_name`,
  trk.`album_name` AS `album_name`,
  trk.`duration_sec` AS `duration_sec`,
  trk.`duration_flag` AS `duration_flag`,
  trk.`artist_id` AS `artist_id`,
  art.`artist_name` AS `artist_name`,
  art.`genre` AS `genre`,
  art.`country` AS `artist_country`
FROM silver_fact_stream AS f
LEFT JOIN usr
  ON usr.`_key` = f.`user_id`
  AND (usr.`_valid_from` IS NULL OR f.`stream_timestamp` >= usr.`_valid_from`)
  AND (usr.`_valid_to` IS NULL OR f.`stream_timestamp` < usr.`_valid_to`)
LEFT JOIN trk
  ON trk.`_key` = f.`track_id`
  AND (trk.`_valid_from` IS NULL OR f.`stream_timestamp` >= trk.`_valid_from`)
  AND (trk.`_valid_to` IS NULL OR f.`stream_timestamp` < trk.`_valid_to`)
LEFT JOIN art
  ON art.`_key` = trk.`artist_id`
  AND (art.`_valid_from` IS NULL OR f.`stream_timestamp` >= art.`_valid_from`)
  AND (art.`_valid_to` IS NULL OR f.`stream_timestamp` < art.`_valid_to`)
