"""A deterministic simulator of the original project's source database.

`seed` creates the five source tables and the ingestion metadata, then fills them from `--seed` at
`--scale` (1 = 500 users, 500 artists, 500 tracks, 1,000 streams) over `--days` from `--start`.
`advance` moves the source forward one day at a time the way a product changes: new streams, users
changing subscription or country, artists changing genre, tracks edited, new users, artists and
tracks, each with `updated_at` bumped. Every day draws from its own generator seeded by
`(seed, day)`, so `advance --days 2` equals two `advance --days 1`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, Table, bindparam, func, inspect, select, update

from spotify_assets.catalog import SOURCE_TABLES
from spotify_assets.progress import Progress
from spotify_assets.source.schema import DATA_TABLES, build_metadata

FIRST_NAMES = [
    "Aoife", "José", "Zoë", "Mikael", "Siobhán", "Renée", "Łukasz", "Chloé", "Hiroshi", "Amélie",
    "Noah", "Olivia", "Liam", "Emma", "Mateo", "Sofía", "Björn", "Ingrid", "Dmitri", "Anaïs",
    "Kwame", "Priya", "Arjun", "Fatima", "Yusuf", "Mei", "Oluwaseun", "Søren", "Ángel", "Grace",
]  # fmt: skip
LAST_NAMES = [
    "O'Brien", "D'Angelo", "Müller", "García", "Nguyen", "Smith", "Kowalski", "Okafor", "Dubois",
    "Rossi", "Fernández", "Johansson", "Patel", "Khan", "Kim", "Silva", "Novák", "Ó Súilleabháin",
    "MacDonald", "Schröder", "Løvland", "Çelik", "Yılmaz", "Takahashi", "Haddad", "O'Neill",  # noqa: RUF001
]  # fmt: skip
COUNTRIES = [
    "United States", "United Kingdom", "India", "Brazil", "Germany", "France",
    "Lao People's Democratic Republic", "Côte d'Ivoire", "Curaçao", "Korea, Republic of",
    "Türkiye", "México", "Japan", "Nigeria", "Canada", "Australia", "Réunion", "Spain", "Sweden",
    "Ireland",
]  # fmt: skip
SUBSCRIPTIONS = ["Free", "Premium", "Family"]
SUBSCRIPTIONS_LATER = [*SUBSCRIPTIONS, "Student"]  # the extended copy of the tutorial adds Student
GENRES = ["Pop", "Rock", "Hip-Hop", "Jazz", "Electronic", "Classical"]
GENRES_LATER = [*GENRES, "Bollywood", "K-Pop", "Reggaeton", "Afrobeats"]
DEVICES = ["Mobile", "Desktop", "Smart Speaker"]
ARTIST_WORDS = [
    "Midnight", "Owls", "Neon", "Señorita", "Echo", "Harbour", "Velvet", "Ñandú", "Saturn's",
    "Rivers", "Kaleidoscope", "Fjörd", "Lanterns", "Cobalt", "Mañana", "Static", "Wolves", "Jade",
]  # fmt: skip
TRACK_WORDS = [
    "Don't", "Stop", "Café", "del", "Mar", "Heartbeat", "Summer", "Rain", "Über", "Alles", "Love",
    "Night", "Drive", "Golden", "Hour", "Ça", "Va", "Dreams", "Electric", "Blue", "Fire", "Home",
]  # fmt: skip
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

BASE_ROWS = {"DimUser": 500, "DimArtist": 500, "DimTrack": 500, "FactStream": 1000}
INSERT_CHUNK = 20_000
PROGRESS_THRESHOLD = 50_000


class SimulatorError(RuntimeError):
    pass


@dataclass
class SimulatorState:
    seed: int
    scale: int
    start: date
    days: int
    end: date  # exclusive: the next day `advance` generates
    streams_per_day: int

    def to_rows(self) -> list[dict[str, str]]:
        raw = asdict(self)
        return [{"name": k, "value": str(v)} for k, v in raw.items()]

    @classmethod
    def from_rows(cls, rows: Iterable[Any]) -> SimulatorState:
        raw = {r.name: r.value for r in rows}
        return cls(
            seed=int(raw["seed"]),
            scale=int(raw["scale"]),
            start=date.fromisoformat(raw["start"]),
            days=int(raw["days"]),
            end=date.fromisoformat(raw["end"]),
            streams_per_day=int(raw["streams_per_day"]),
        )


def _rng(seed: int, *parts: object) -> random.Random:
    return random.Random(":".join(str(p) for p in (seed, *parts)))


def _person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def _artist_name(rng: random.Random) -> str:
    style = rng.random()
    if style < 0.4:
        return f"The {rng.choice(ARTIST_WORDS)} {rng.choice(ARTIST_WORDS)}"
    if style < 0.7:
        return _person(rng)
    return f"DJ {rng.choice(ARTIST_WORDS)}"


def _title(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(TRACK_WORDS) for _ in range(words))


def _moment(rng: random.Random, day: date) -> datetime:
    return datetime.combine(day, time()) + timedelta(seconds=rng.randrange(86_400))


def date_row(day: date) -> dict[str, Any]:
    return {
        "date_key": int(day.strftime("%Y%m%d")),
        "date": day,
        "day": day.day,
        "month": day.month,
        "year": day.year,
        "weekday": WEEKDAYS[day.weekday()],
    }


def _user(rng: random.Random, user_id: int, updated_at: datetime) -> dict[str, Any]:
    start = updated_at.date() - timedelta(days=rng.randrange(1, 1_100))
    if rng.random() < 0.02:  # quirk of the real data: start_date later than updated_at
        start = updated_at.date() + timedelta(days=rng.randrange(1, 30))
    ended = rng.random() < 0.1
    return {
        "user_id": user_id,
        "user_name": _person(rng),
        "country": rng.choice(COUNTRIES),
        "subscription_type": rng.choice(SUBSCRIPTIONS),
        "start_date": start,
        "end_date": start + timedelta(days=rng.randrange(30, 700)) if ended else None,
        "updated_at": updated_at,
    }


def _artist(rng: random.Random, artist_id: int, updated_at: datetime, genres: list[str]):
    return {
        "artist_id": artist_id,
        "artist_name": _artist_name(rng),
        "genre": rng.choice(genres),
        "country": rng.choice(COUNTRIES),
        "updated_at": updated_at,
    }


def _track(rng: random.Random, track_id: int, n_artists: int, updated_at: datetime):
    return {
        "track_id": track_id,
        "track_name": _title(rng, rng.randint(1, 3)),
        "artist_id": rng.randint(1, n_artists),
        "album_name": _title(rng, rng.randint(1, 2)),
        "duration_sec": rng.randint(94, 360),
        "release_date": updated_at.date() - timedelta(days=rng.randrange(0, 1_800)),
        "updated_at": updated_at,
    }


def _streams(
    rng: random.Random, day: date, count: int, first_id: int, n_users: int, n_tracks: int
) -> list[dict[str, Any]]:
    moments = sorted(_moment(rng, day) for _ in range(count))
    rows = []
    for offset, ts in enumerate(moments):
        key_day = ts.date()
        if rng.random() < 0.03:  # quirk: date_key does not always agree with stream_timestamp
            key_day += timedelta(days=rng.choice((-1, 1)))
        rows.append(
            {
                "stream_id": first_id + offset,
                "user_id": rng.randint(1, n_users),
                "track_id": rng.randint(1, n_tracks),
                "date_key": int(key_day.strftime("%Y%m%d")),
                "listen_duration": rng.randint(15, 230),
                "device_type": rng.choice(DEVICES),
                "stream_timestamp": ts,
            }
        )
    return rows


def _write_chunk(conn, table: Table, chunk: list[dict[str, Any]]) -> None:
    """INSERT a chunk; on PostgreSQL, COPY FROM STDIN (tens of times faster at scale)."""
    if conn.dialect.name != "postgresql":
        conn.execute(table.insert(), chunk)
        return
    prep = conn.dialect.identifier_preparer
    columns = [c.name for c in table.columns]
    sql = (
        f"COPY {prep.format_table(table)} ({', '.join(prep.quote(c) for c in columns)}) FROM STDIN"
    )
    cursor = conn.connection.dbapi_connection.cursor()
    with cursor.copy(sql) as copy:
        for row in chunk:
            copy.write_row(tuple(row[c] for c in columns))


def _insert(conn, table: Table, rows: Iterator[dict[str, Any]] | list[dict[str, Any]], total: int):
    progress = Progress(table.name, total, enabled=total >= PROGRESS_THRESHOLD)
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= INSERT_CHUNK:
            _write_chunk(conn, table, chunk)
            progress.advance(len(chunk))
            chunk = []
    if chunk:
        _write_chunk(conn, table, chunk)
        progress.advance(len(chunk))
    if total >= PROGRESS_THRESHOLD:
        progress.close()


def read_state(engine: Engine, schema: str | None = None) -> SimulatorState | None:
    md = build_metadata(schema)
    if not inspect(engine).has_table("simulator_state", schema=schema):
        return None
    with engine.connect() as conn:
        rows = conn.execute(select(md.tables[_qualified(md, "simulator_state")])).fetchall()
    return SimulatorState.from_rows(rows) if rows else None


def _qualified(md, name: str) -> str:
    return f"{md.schema}.{name}" if md.schema else name


def seed(
    engine: Engine,
    *,
    schema: str | None = None,
    seed_value: int = 42,
    scale: int = 1,
    start: date,
    days: int = 30,
    reset: bool = False,
    streams_per_scale: int = BASE_ROWS["FactStream"],
    echo: Callable[[str], None] = print,
) -> SimulatorState:
    """Create and fill the source. Re-seeding with the same arguments is a no-op.
    `streams_per_scale` sets how many streams each 500 users make (the benchmarks' volume)."""
    if scale < 1 or days < 1 or streams_per_scale < 1:
        raise SimulatorError("--scale, --days and --streams-per-scale must be at least 1")
    total_streams = streams_per_scale * scale
    wanted = SimulatorState(
        seed=seed_value,
        scale=scale,
        start=start,
        days=days,
        end=start + timedelta(days=days),
        streams_per_day=max(1, total_streams // days),
    )
    md = build_metadata(schema)
    existing = read_state(engine, schema)
    if existing is not None and not reset:
        same = (existing.seed, existing.scale, existing.start, existing.days) == (
            seed_value,
            scale,
            start,
            days,
        ) and existing.streams_per_day == wanted.streams_per_day
        if same:
            echo(f"Source already seeded (seed={seed_value}, scale={scale}): nothing to do.")
            return existing
        raise SimulatorError(
            f"the source is already seeded with seed={existing.seed}, scale={existing.scale}, "
            f"start={existing.start}, days={existing.days}; pass --reset to drop and re-create it"
        )
    md.drop_all(engine)
    md.create_all(engine)
    n_users = BASE_ROWS["DimUser"] * scale
    n_artists = BASE_ROWS["DimArtist"] * scale
    n_tracks = BASE_ROWS["DimTrack"] * scale
    span = days * 86_400

    def when(rng: random.Random) -> datetime:
        return datetime.combine(start, time()) + timedelta(seconds=rng.randrange(span))

    t = {name: md.tables[_qualified(md, name)] for name in (*DATA_TABLES, "ingestion_config")}
    with engine.begin() as conn:
        rng = _rng(seed_value, "users")
        _insert(
            conn, t["DimUser"], (_user(rng, i, when(rng)) for i in range(1, n_users + 1)), n_users
        )
        rng = _rng(seed_value, "artists")
        artists = (_artist(rng, i, when(rng), GENRES) for i in range(1, n_artists + 1))
        _insert(conn, t["DimArtist"], artists, n_artists)
        rng = _rng(seed_value, "tracks")
        tracks = (_track(rng, i, n_artists, when(rng)) for i in range(1, n_tracks + 1))
        _insert(conn, t["DimTrack"], tracks, n_tracks)
        _insert(conn, t["DimDate"], [date_row(start + timedelta(d)) for d in range(days)], days)

        def all_streams() -> Iterator[dict[str, Any]]:
            next_id = 1
            for d in range(days):
                count = total_streams // days + (1 if d < total_streams % days else 0)
                day = start + timedelta(days=d)
                yield from _streams(_rng(seed_value, "streams", day), day, count, next_id,
                                    n_users, n_tracks)  # fmt: skip
                next_id += count

        _insert(conn, t["FactStream"], all_streams(), total_streams)
        conn.execute(
            t["ingestion_config"].insert(),
            [
                {
                    "source_schema": schema,
                    "source_table": st.name,
                    "primary_key": st.key,
                    "watermark_column": st.watermark,
                    "enabled": True,
                    "partition_start": start,
                    "options": json.dumps({}),
                }
                for st in SOURCE_TABLES
            ],
        )
        conn.execute(md.tables[_qualified(md, "simulator_state")].insert(), wanted.to_rows())
    echo(
        f"Seeded {n_users:,} users, {n_artists:,} artists, {n_tracks:,} tracks, {days} dates and "
        f"{total_streams:,} streams from {start} over {days} days (seed={seed_value})."
    )
    return wanted


def _max_id(conn, table: Table, column: str) -> int:
    return int(conn.execute(select(func.max(table.c[column]))).scalar() or 0)


def _pick(rng: random.Random, upper: int, k: int) -> list[int]:
    return sorted(rng.sample(range(1, upper + 1), min(k, upper)))


def _change(conn, table: Table, key: str, column: str, ids: list[int], choose, rng, day) -> int:
    """Give each chosen row a new value of `column` (never its current one) and bump updated_at."""
    if not ids:
        return 0
    query = select(table.c[key], table.c[column]).where(table.c[key].in_(ids))
    current = {row[0]: row[1] for row in conn.execute(query)}
    params = []
    for row_id in ids:
        new = choose(rng, current[row_id])
        params.append({"b_key": row_id, "b_value": new, "b_ts": _moment(rng, day)})
    stmt = (
        update(table)
        .where(table.c[key] == bindparam("b_key"))
        .values({column: bindparam("b_value"), "updated_at": bindparam("b_ts")})
    )
    conn.execute(stmt, params)
    return len(params)


def _other(options: list[Any]):
    def choose(rng: random.Random, current: Any) -> Any:
        return rng.choice([o for o in options if o != current])

    return choose


def _edit_track(rng: random.Random, current: Any) -> Any:
    return f"{current} (Remastered)" if not str(current).endswith("(Remastered)") else current[:-14]


def advance(
    engine: Engine,
    *,
    schema: str | None = None,
    days: int = 1,
    echo: Callable[[str], None] = print,
) -> dict[str, int]:
    """Move the source forward `days` days; returns how many changes of each kind were made."""
    state = read_state(engine, schema)
    if state is None:
        raise SimulatorError("the source has not been seeded: run `spotify-lakehouse seed` first")
    md = build_metadata(schema)
    t = {name: md.tables[_qualified(md, name)] for name in DATA_TABLES}
    totals: dict[str, int] = {}
    for _ in range(days):
        day = state.end
        rng = _rng(state.seed, "advance", day)
        with engine.begin() as conn:
            n_users = _max_id(conn, t["DimUser"], "user_id")
            n_artists = _max_id(conn, t["DimArtist"], "artist_id")
            n_tracks = _max_id(conn, t["DimTrack"], "track_id")
            counts = {
                "subscription_changes": _change(
                    conn, t["DimUser"], "user_id", "subscription_type",
                    _pick(rng, n_users, max(1, n_users // 100)), _other(SUBSCRIPTIONS_LATER),
                    rng, day),
                "country_changes": _change(
                    conn, t["DimUser"], "user_id", "country",
                    _pick(rng, n_users, max(1, n_users // 200)), _other(COUNTRIES), rng, day),
                "genre_changes": _change(
                    conn, t["DimArtist"], "artist_id", "genre",
                    _pick(rng, n_artists, max(1, n_artists // 100)), _other(GENRES_LATER),
                    rng, day),
                "track_edits": _change(
                    conn, t["DimTrack"], "track_id", "album_name",
                    _pick(rng, n_tracks, max(1, n_tracks // 100)), _edit_track, rng, day),
            }  # fmt: skip
            new_users = max(1, n_users // 200)
            conn.execute(
                t["DimUser"].insert(),
                [_user(rng, n_users + i, _moment(rng, day)) for i in range(1, new_users + 1)],
            )
            new_artists = max(1, n_artists // 200)
            conn.execute(
                t["DimArtist"].insert(),
                [
                    _artist(rng, n_artists + i, _moment(rng, day), GENRES_LATER)
                    for i in range(1, new_artists + 1)
                ],
            )
            n_artists += new_artists
            new_tracks = max(1, n_tracks // 200)
            conn.execute(
                t["DimTrack"].insert(),
                [
                    _track(rng, n_tracks + i, n_artists, _moment(rng, day))
                    for i in range(1, new_tracks + 1)
                ],
            )
            conn.execute(t["DimDate"].insert(), [date_row(day)])
            first_id = _max_id(conn, t["FactStream"], "stream_id") + 1
            streams = _streams(
                _rng(state.seed, "streams", day), day, state.streams_per_day, first_id,
                n_users + new_users, n_tracks + new_tracks,
            )  # fmt: skip
            conn.execute(t["FactStream"].insert(), streams)
            counts.update(
                new_users=new_users,
                new_artists=new_artists,
                new_tracks=new_tracks,
                new_streams=len(streams),
                new_dates=1,
            )
            state.end = day + timedelta(days=1)
            conn.execute(
                update(md.tables[_qualified(md, "simulator_state")])
                .where(md.tables[_qualified(md, "simulator_state")].c.name == "end")
                .values(value=state.end.isoformat())
            )
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + v
        echo(f"{day}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    return totals
