"""The Spotify Web API branch: the day's new releases, raw, conformed, and published.

- bronze/spotify_new_releases: every raw answer of the day's fetch, unmodified, in one JSON
  document per day (<lake>/bronze/spotify_new_releases/<day>.json, written atomically). A day
  already fetched is kept on re-runs (re-runs are idempotent: the API's answers change by the
  hour); `refetch: true` fetches it again. The API answers with the current releases only, so
  days older than RECENT_DAYS are not fetched after the fact (unless `fetch_older_days`).
- silver/spotify_albums, spotify_tracks, spotify_artists: the day's rows flattened from the raw
  document and conformed to their contracts (fields Spotify removes are NULL, fields it adds
  go to _rescued_data); each day's window replaced atomically.
- gold/new_release_tracks: each track seen that day with its album, artists, the artists'
  genres, release date and first-seen date; gold/spotify_artist_history: artist attributes over
  time (SCD Type 2 over the days they were seen).

Without credentials (the embedded default) the bronze asset logs why and materialises nothing,
and the rest of the branch is skipped: a run of it succeeds.
"""

from datetime import UTC, date, datetime, timedelta
from typing import NoReturn

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    Config,
    Failure,
    MaterializeResult,
    PartitionsDefinition,
    asset,
    build_schedule_from_partitioned_job,
    define_asset_job,
    multi_asset,
)
from pydantic import Field
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from spotify_assets.catalog import Layer, table_path
from spotify_assets.defs.jobs import schedule_status
from spotify_assets.defs.policies import pool_for, retry_transient
from spotify_assets.lake import delta, storage
from spotify_assets.lake.documents import read_json, write_json_atomically
from spotify_assets.lake.metadata import table_metadata
from spotify_assets.resources import Lakehouse, SparkResource, SpotifyApi
from spotify_assets.spotify import flatten
from spotify_assets.spotify.releases import fetch_new_releases
from spotify_assets.transforms import gold, schema_history
from spotify_assets.transforms.conform import IGNORED_VALUES, SOURCE_FILE, conform
from spotify_assets.transforms.contracts import CONTRACTS, RESCUED

GROUP = "spotify"
RAW = AssetKey([Layer.BRONZE.value, "spotify_new_releases"])
SILVER_TABLES = ("spotify_albums", "spotify_tracks", "spotify_artists")
NEW_RELEASE_TRACKS = AssetKey([Layer.GOLD.value, "new_release_tracks"])
ARTIST_HISTORY = AssetKey([Layer.GOLD.value, "spotify_artist_history"])
SPOTIFY_JOB = "spotify_job"
ARTIST_SCD2 = gold.Scd2("spotify_artist_history", "artist_id", "seen_on", track=("artist_name", "genres"))  # fmt: skip  # noqa: E501


def raw_path(lakehouse_root: str, day: date) -> str:
    return storage.join(table_path(lakehouse_root, Layer.BRONZE, RAW.path[-1]), f"{day}.json")


RECENT_DAYS = 2  # a day this recent may still be fetched: the API answers with current releases
CURRENT_ONLY = "the API answers with the current new releases only"


def run_days(context: AssetExecutionContext) -> list[date]:
    """The days of the run's partition or partition range."""
    window = context.partition_time_window
    first, end = window.start.date(), window.end.date()
    return [first + timedelta(days=n) for n in range((end - first).days)]


def run_window(days: list[date]) -> delta.Window:
    return delta.Window("seen_on", days[0], days[-1] + timedelta(days=1))


class FetchConfig(Config):
    refetch: bool = Field(
        default=False, description="Fetch a day again even if its raw answers are kept."
    )
    fetch_older_days: bool = Field(
        default=False,
        description=(
            "The API answers with the current new releases only, so a day older than "
            f"{RECENT_DAYS} days is not fetched (it is skipped with a message) unless this is "
            "set: then today's answers are recorded as that day's (demos, tests)."
        ),
    )


def plan_days(
    days: list[date], lakehouse_root: str, config: FetchConfig
) -> tuple[list[date], list[str], list[str]]:
    """The run's days split into: to fetch, kept (answers fetched before), and skipped (too old
    to fetch after the fact, with no answers); the last two as ISO dates, as the metadata shows
    them. An old day's answers are kept even under `refetch`: fetching it again would record
    today's releases as that day's."""
    recent = datetime.now(UTC).date() - timedelta(days=RECENT_DAYS)
    to_fetch, kept, skipped = [], [], []
    for day in days:
        too_old = day < recent and not config.fetch_older_days
        if storage.exists(raw_path(lakehouse_root, day)) and (too_old or not config.refetch):
            kept.append(day.isoformat())
        elif too_old:
            skipped.append(day.isoformat())
        else:
            to_fetch.append(day)
    return to_fetch, kept, skipped


def spans(days: list[date]) -> str:
    """Days as runs of consecutive days: '2026-01-01 .. 2026-01-28, 2026-02-03'."""
    runs: list[list[date]] = []
    for day in sorted(days):
        if runs and day - runs[-1][-1] == timedelta(days=1):
            runs[-1].append(day)
        else:
            runs.append([day])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]} .. {r[-1]}" for r in runs)


def refuse_partial_range(days: list[date], missing: list[str], why: str) -> NoReturn:
    """A run over a range marks every day of it materialised: a range some of whose days this
    asset cannot produce is refused before any work, naming the days it can, rather than
    reported as materialised (a later backfill of the missing days would skip them)."""
    cannot = [d for d in days if d.isoformat() in missing]
    can = [d for d in days if d.isoformat() not in missing]
    raise Failure(
        description=(
            f"cannot produce {spans(cannot)}: {why}. A run over {spans(days)} would mark every "
            f"day of it materialised; run only the days it can produce ({spans(can)}), or one "
            "day at a time."
        ),
        allow_retries=False,
    )


def build_raw_asset(partitions: PartitionsDefinition) -> AssetsDefinition:
    @asset(
        key=RAW,
        group_name=GROUP,
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.single_run(),
        output_required=False,
        kinds={"json"},
        description=(
            "The day's raw Spotify Web API answers (new releases, their albums, tracks and "
            "artists), unmodified, one JSON document per day."
        ),
        pool=pool_for(RAW),
    )
    @retry_transient
    def _raw(
        context: AssetExecutionContext,
        config: FetchConfig,
        spotify: SpotifyApi,
        lakehouse: Lakehouse,
    ):
        days = run_days(context)
        if not spotify.configured:
            context.log.warning(
                "Spotify is not configured (set SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET): "
                f"the Spotify assets are skipped for {', '.join(map(str, days))}"
            )
            return
        to_fetch, kept, skipped = plan_days(days, lakehouse.root, config)
        if skipped and (to_fetch or kept):
            refuse_partial_range(
                days,
                skipped,
                f"{CURRENT_ONLY} (set fetch_older_days to record today's answers as those days')",
            )
        client = spotify.client()
        fetched, modes = [], set()
        albums = artists = 0
        for day in to_fetch:
            releases = fetch_new_releases(client, spotify.max_albums)
            write_json_atomically(
                raw_path(lakehouse.root, day),
                {
                    "day": day.isoformat(),
                    "fetched_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                    "mode": releases.mode,
                    "responses": releases.responses,
                },
            )
            fetched.append(day.isoformat())
            modes.add(releases.mode)
            albums, artists = albums + len(releases.albums), artists + len(releases.artists)
        if kept:
            again = " (too old to fetch again)" if config.refetch else ""
            context.log.info(f"kept the answers fetched before for {kept}{again}")
        if skipped:  # then nothing else: every day of the run was skipped
            context.log.warning(
                f"not fetched: {skipped}; {CURRENT_ONLY} "
                "(set fetch_older_days to record them as those days')"
            )
            return
        yield MaterializeResult(
            metadata={
                "days_fetched": fetched,
                "days_kept": kept,
                "days_skipped": skipped,
                "mode": ", ".join(sorted(modes)),
                "fell_back_to_development_mode": client.fell_back,
                "albums": albums,
                "artists": artists,
                "requests": dict(sorted(client.stats.items())),
                "seconds_waited_for_rate_limits": client.waited_seconds,
            }
        )

    return _raw


def _frame(session: SparkSession, rows: list[dict], source: str, fetched_at: str) -> DataFrame:
    """Flat string rows as a DataFrame (every column a string; the contract types them), with
    the raw file and the fetch time as bronze's lineage columns."""
    names = list(dict.fromkeys(name for row in rows for name in row))
    schema = StructType([StructField(n, StringType()) for n in names])
    data = [tuple(row.get(n) for n in names) for row in rows]
    return session.createDataFrame(data, schema).select(
        "*",
        F.lit(source).alias(SOURCE_FILE),
        F.to_timestamp(F.lit(fetched_at)).alias("_ingested_at"),
    )


def build_silver_assets(partitions: PartitionsDefinition) -> AssetsDefinition:
    specs = [
        AssetSpec(
            AssetKey([Layer.SILVER.value, t]),
            deps=[RAW],
            group_name=GROUP,
            skippable=True,  # no raw answers for the run's days: nothing to conform
            kinds={"spark", "delta"},
            description=f"`{t}` rows of each day, conformed to their contract.",
        )
        for t in SILVER_TABLES
    ]

    @multi_asset(
        name="silver_spotify",
        specs=specs,
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.single_run(),
        pool=pool_for("silver/spotify"),
    )
    @retry_transient
    def _silver(context: AssetExecutionContext, spark: SparkResource, lakehouse: Lakehouse):
        days = run_days(context)
        missing = [d.isoformat() for d in days if not storage.exists(raw_path(lakehouse.root, d))]
        if len(missing) == len(days):
            context.log.warning("no raw Spotify answers for these days: nothing to conform")
            return
        if missing:
            refuse_partial_range(
                days, missing, f"no raw answers in {RAW.to_user_string()} for those days"
            )
        session = spark.session(context.log)
        history_paths = {t: schema_history.history_path(lakehouse.root, t) for t in SILVER_TABLES}
        histories = {t: schema_history.load(p, t) for t, p in history_paths.items()}
        for day in days:
            source = raw_path(lakehouse.root, day)
            document = read_json(source)
            tables = flatten.rows(document, day.isoformat())
            window = run_window([day])
            for table in SILVER_TABLES:
                frame = conform(
                    _frame(session, tables[table], str(source), document["fetched_at"]),
                    CONTRACTS[table],
                    histories[table],
                    lakehouse.name(Layer.SILVER, table),
                ).frame
                path = lakehouse.path(Layer.SILVER, table)
                delta.replace_window(frame.drop(IGNORED_VALUES), path, window)
                # After each write: the history says what the table holds.
                schema_history.save(history_paths[table], histories[table])
        for table in SILVER_TABLES:
            path = lakehouse.path(Layer.SILVER, table)
            written = delta.read(session, path).where(run_window(days).predicate())
            totals = written.agg(F.count(F.lit(1)), F.count(RESCUED)).first()
            assert totals is not None
            yield MaterializeResult(
                asset_key=AssetKey([Layer.SILVER.value, table]),
                metadata=table_metadata(
                    written.schema,
                    int(totals[0]),
                    path,
                    lakehouse.name(Layer.SILVER, table),
                    days=[d.isoformat() for d in days],
                    rows_with_rescued_data=int(totals[1]),
                ),
            )

    return _silver


def build_new_release_tracks(partitions: PartitionsDefinition) -> AssetsDefinition:
    @asset(
        key=NEW_RELEASE_TRACKS,
        group_name=GROUP,
        partitions_def=partitions,
        deps=[AssetKey([Layer.SILVER.value, t]) for t in SILVER_TABLES],
        backfill_policy=BackfillPolicy.single_run(),
        kinds={"spark", "delta"},
        description=(
            "Each new-release track seen on a day: album, artists, their genres, release date "
            "and the first day it was seen."
        ),
        pool=pool_for(NEW_RELEASE_TRACKS),
    )
    @retry_transient
    def _tracks(
        context: AssetExecutionContext, spark: SparkResource, lakehouse: Lakehouse
    ) -> MaterializeResult:
        session = spark.session(context.log)
        window = run_window(run_days(context))
        read = {t: delta.read(session, lakehouse.path(Layer.SILVER, t)) for t in SILVER_TABLES}
        tracks = read["spotify_tracks"]
        first_seen = tracks.groupBy("track_id").agg(F.min("seen_on").alias("first_seen"))
        artists = read["spotify_artists"].where(window.predicate())
        genres = (
            tracks.where(window.predicate())
            .select(
                "track_id",
                F.col("seen_on").alias("t_seen"),
                F.explode(F.from_json("artist_ids", "array<string>")).alias("a"),
            )
            .join(
                artists,
                (F.col("a") == F.col("artist_id")) & (F.col("t_seen") == F.col("seen_on")),
                "left",
            )
            .select(
                "track_id",
                F.col("t_seen").alias("seen_on"),
                F.explode_outer(F.from_json("genres", "array<string>")).alias("g"),
            )
            .groupBy("track_id", "seen_on")
            .agg(F.array_sort(F.collect_set("g")).alias("genres"))
        )
        albums = read["spotify_albums"].where(window.predicate())
        published = (
            tracks.where(window.predicate())
            .join(  # the album as seen the same day: one row per (album, day)
                albums.select("album_id", "seen_on", "album_name", "album_type", "release_date"),
                ["album_id", "seen_on"],
                "left",
            )
            .join(genres, ["track_id", "seen_on"], "left")
            .join(first_seen, "track_id")
            .select(
                "track_id",
                "track_name",
                "album_id",
                "album_name",
                "album_type",
                F.from_json("artist_ids", "array<string>").alias("artist_ids"),
                F.from_json("artist_names", "array<string>").alias("artist_names"),
                F.coalesce("genres", F.array().cast("array<string>")).alias("genres"),
                "release_date",
                "duration_ms",
                "explicit",
                "first_seen",
                "seen_on",
            )
        )
        path = lakehouse.path(Layer.GOLD, "new_release_tracks")
        delta.replace_window(published, path, window)
        # Days after the window keep their rows, but an earlier day backfilled (or fetched
        # again) after them moves their tracks' first-seen dates.
        stale = (
            delta.read(session, path)
            .where(F.col("seen_on") >= F.lit(window.end))
            .join(first_seen.withColumnRenamed("first_seen", "recomputed"), "track_id")
            .where(~F.col("first_seen").eqNullSafe(F.col("recomputed")))
            .select("track_id", "seen_on", F.col("recomputed").alias("first_seen"))
            .dropDuplicates(["track_id", "seen_on"])
        )
        moved = delta.update_matched(session, stale, path, ["track_id", "seen_on"], ["first_seen"])
        written = delta.read(session, path).where(window.predicate())
        rows = written.count()
        new_today = written.where(F.col("first_seen") == F.col("seen_on")).count()
        return MaterializeResult(
            metadata=table_metadata(
                written.schema,
                rows,
                path,
                lakehouse.name(Layer.GOLD, "new_release_tracks"),
                first_seen_in_these_days=new_today,
                first_seen_moved_on_later_days=moved,
            )
        )

    return _tracks


def build_artist_history() -> AssetsDefinition:
    @asset(
        key=ARTIST_HISTORY,
        group_name=GROUP,
        deps=[AssetKey([Layer.SILVER.value, "spotify_artists"])],
        backfill_policy=BackfillPolicy.single_run(),  # see silver_<entity>
        kinds={"spark", "delta"},
        description=(
            "Artist name and genres over time (SCD Type 2 over the days each artist was seen)."
        ),
        pool=pool_for(ARTIST_HISTORY),
    )
    @retry_transient
    def _history(
        context: AssetExecutionContext, spark: SparkResource, lakehouse: Lakehouse
    ) -> MaterializeResult:
        session = spark.session(context.log)
        seen = delta.read(session, lakehouse.path(Layer.SILVER, "spotify_artists")).select(
            "artist_id", "artist_name", "genres", "seen_on"
        )
        table = lakehouse.name(Layer.GOLD, "spotify_artist_history")
        history = gold.build_scd2(ARTIST_SCD2, seen, "artist_sk", table)
        path = lakehouse.path(Layer.GOLD, "spotify_artist_history")
        delta.overwrite(history, path)
        written = delta.read(session, path)
        return MaterializeResult(
            metadata=table_metadata(written.schema, written.count(), path, table)
        )

    return _history


def build_spotify_assets(partitions: PartitionsDefinition) -> list[AssetsDefinition]:
    return [
        build_raw_asset(partitions),
        build_silver_assets(partitions),
        build_new_release_tracks(partitions),
        build_artist_history(),
    ]


def build_spotify_job():
    return define_asset_job(
        SPOTIFY_JOB,
        selection=[
            RAW,
            *(AssetKey([Layer.SILVER.value, t]) for t in SILVER_TABLES),
            NEW_RELEASE_TRACKS,
            ARTIST_HISTORY,
        ],
        description="The day's Spotify new releases: raw answers, silver tables, gold tables.",
    )


def build_spotify_schedule(job, hour: int, running: bool = True):
    """Each day, the day that ended (new releases are fetched as they are that morning)."""
    return build_schedule_from_partitioned_job(
        job,
        name="daily_spotify_schedule",
        hour_of_day=hour,
        default_status=schedule_status(running),
    )
