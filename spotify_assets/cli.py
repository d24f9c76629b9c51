"""`spotify-lakehouse`: seed and advance the source, fetch Delta's jars, materialise, summarise."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, timedelta

from spotify_assets.catalog import Layer
from spotify_assets.settings import ConfigError, Settings, load_settings


def _engine(settings: Settings):
    from spotify_assets.source.resource import SourceDatabase

    return SourceDatabase(url=settings.source_db_url).engine


def cmd_seed(args: argparse.Namespace, settings: Settings) -> int:
    from spotify_assets.source import simulator

    start = args.start or settings.start_date
    if start < settings.start_date:
        raise ConfigError(
            f"--start {start} is before the first partition LAKEHOUSE_START_DATE="
            f"{settings.start_date}: rows before it could never be ingested"
        )
    simulator.seed(
        _engine(settings),
        seed_value=args.seed,
        scale=args.scale,
        start=start,
        days=args.days,
        reset=args.reset,
        streams_per_scale=args.streams_per_scale,
    )
    return 0


def cmd_advance(args: argparse.Namespace, settings: Settings) -> int:
    from spotify_assets.source import simulator

    simulator.advance(_engine(settings), days=args.days)
    return 0


def cmd_fetch_jars(args: argparse.Namespace, settings: Settings) -> int:
    from spotify_assets.spark import delta_jars

    paths = delta_jars.fetch(settings.delta_jars_dir, settings.maven_repository_url)
    print("Delta Lake jars ready: " + ", ".join(str(p) for p in paths))
    return 0


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        table, sep, column = value.partition("=")
        if not sep or not table or not column:
            raise ConfigError(f"{flag} takes TABLE=COLUMN, got {value!r}")
        pairs[table] = column
    return pairs


def cmd_register_tables(args: argparse.Namespace, settings: Settings) -> int:
    from spotify_assets.ingestion.register import register

    register(
        _engine(settings),
        args.schema,
        args.table or None,
        _pairs(args.key, "--key"),
        _pairs(args.watermark, "--watermark"),
        args.partition_start or settings.start_date,
    )
    print("Reload the code location (or restart `make dev`) to see the new bronze assets.")
    return 0


def cmd_repair_watermarks(args: argparse.Namespace, settings: Settings) -> int:
    from spotify_assets.definitions import ingestion_catalog
    from spotify_assets.ingestion import watermarks

    catalog = ingestion_catalog(settings)
    source = catalog.by_entity.get(args.table)
    if source is None:
        raise ConfigError(
            f"no bronze table {args.table!r}; known: {', '.join(sorted(catalog.by_entity))}"
        )
    path = watermarks.document_path(settings.lakehouse_root, source)
    kept = watermarks.repair(path, source, None)
    print(
        f"Wrote a fresh watermark document {path}"
        + (f"; the old one is kept as {kept}" if kept else "")
    )
    print("The source-change sensor now re-verifies every window (re-extraction is idempotent).")
    return 0


def cmd_accept_columns(args: argparse.Namespace, settings: Settings) -> int:
    from spotify_assets.resources import lakehouse_for
    from spotify_assets.transforms import schema_history
    from spotify_assets.transforms.contracts import CONTRACTS

    contract = CONTRACTS.get(args.table)
    if contract is None:
        raise ConfigError(f"no silver table {args.table!r}; known: {', '.join(sorted(CONTRACTS))}")
    try:
        history = schema_history.accept(settings.lakehouse_root, contract, args.columns)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    path = schema_history.history_path(settings.lakehouse_root, contract.entity)
    table = lakehouse_for(settings).name(Layer.SILVER, contract.entity)
    print(
        f"{table} accepts {', '.join(args.columns)} (recorded in {path}); "
        f"its schema beyond the contract: {', '.join(history.extra_names()) or 'none'}. "
        "Re-materialise the table to load them."
    )
    return 0


def seeded_range(settings: Settings) -> tuple[date, date]:
    """First and last day that the simulator has generated."""
    from spotify_assets.source import simulator

    state = simulator.read_state(_engine(settings))
    if state is None:
        raise ConfigError("the source has not been seeded: run `spotify-lakehouse seed` first")
    return state.start, state.end - timedelta(days=1)


def cmd_materialize(args: argparse.Namespace, settings: Settings) -> int:
    from spotify_assets.materialize import group_selection, last_complete_day, materialize_range

    first: date | None = None
    last: date | None = None
    if getattr(args, "latest", False):
        first = last = last_complete_day()
    elif not (args.start and args.end):
        first, last = seeded_range(settings)
    start, end = args.start or first, args.end or last
    assert start is not None and end is not None
    full_refresh = getattr(args, "full_refresh", False)  # `demo` has no such option
    group = getattr(args, "group", None)
    selection = group_selection(settings, group) if group else None
    result = materialize_range(settings, start, end, selection=selection, full_refresh=full_refresh)
    return 0 if result.success else 1


def cmd_remote_step(args: argparse.Namespace, settings: Settings) -> int:
    from spotify_assets.databricks_jobs import remote_step

    return remote_step.main()


def cmd_dagster_home(args: argparse.Namespace, settings: Settings) -> int:
    from spotify_assets.instance import write_dagster_home

    if args.if_missing and (settings.dagster_home / "dagster.yaml").is_file():
        return 0
    storage = write_dagster_home(settings.dagster_home, force=args.force)
    where = "PostgreSQL (DAGSTER_POSTGRES_URL)" if storage == "postgres" else "SQLite files"
    print(f"Dagster instance {settings.dagster_home}: storage in {where}")
    return 0


def cmd_connect_server(args: argparse.Namespace, settings: Settings) -> int:
    import os

    from spotify_assets.spark.connect_server import command, server_env
    from spotify_assets.spark.session import SparkOptions, check_java

    check_java()
    argv = command(SparkOptions.from_settings(settings), args.port, args.host)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: binding {args.host}: a Spark Connect server has no authentication, and "
            "anyone who reaches the port can run code as this user",
            file=sys.stderr,
        )
    print(f"Spark Connect server with Delta Lake on sc://{args.host}:{args.port} (Ctrl-C stops it)")
    print(f"Use it with: SPARK_ENGINE=connect SPARK_CONNECT_URL=sc://{args.host}:{args.port}")
    os.execve(argv[0], argv, server_env())
    return 0  # not reached


def cmd_summary(args: argparse.Namespace, settings: Settings) -> int:
    from spotify_assets.reconcile import format_counts, layer_counts
    from spotify_assets.resources import source_for_this_process, spark_for_this_process

    spark = spark_for_this_process(settings)
    source = source_for_this_process(settings)
    rows = layer_counts(spark, source, settings.lakehouse_root)
    print(format_counts(rows))
    print()
    print(f"Lake:   {settings.lakehouse_root}  (Delta tables at <layer>/<table>)")
    print(f"Source: {source.display_url}")
    print(f"Dagster instance: {settings.dagster_home}")
    print("UI:     run `make dev`, then open http://127.0.0.1:3000")
    return 0 if all(r.reconciles for r in rows) else 1


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    started = time.monotonic()
    for step in (cmd_seed, cmd_materialize, cmd_summary):
        code = step(args, settings)
        if code:
            return code
    print(f"\nDemo finished in {time.monotonic() - started:.0f} s.")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spotify-lakehouse", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def seed_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
        sp.add_argument(
            "--scale", type=int, default=1, help="1 = 500 users/artists/tracks, 1,000 streams"
        )
        sp.add_argument(
            "--start", type=date.fromisoformat, help="first day (default LAKEHOUSE_START_DATE)"
        )
        sp.add_argument("--days", type=int, default=30, help="days of history (default 30)")
        sp.add_argument("--reset", action="store_true", help="drop and re-create the source tables")
        sp.add_argument(
            "--streams-per-scale",
            type=int,
            default=1000,
            help="streams per 500 users (default 1000; the benchmarks' volume knob)",
        )

    def range_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--start", type=date.fromisoformat, help="first partition (default: seeded range)"
        )
        sp.add_argument("--end", type=date.fromisoformat, help="last partition, inclusive")

    sp = sub.add_parser("seed", help="create and fill the source tables")
    seed_args(sp)
    sp.set_defaults(func=cmd_seed)
    sp = sub.add_parser("advance", help="move the source forward in time")
    sp.add_argument("--days", type=int, default=1)
    sp.set_defaults(func=cmd_advance)
    sp = sub.add_parser("fetch-jars", help="download Delta Lake's jars into DELTA_JARS_DIR")
    sp.set_defaults(func=cmd_fetch_jars)
    sp = sub.add_parser("materialize", help="materialise every asset over a date range, one run")
    range_args(sp)
    sp.add_argument(
        "--full-refresh",
        action="store_true",
        help="recompute every step, the gold histories from scratch",
    )
    sp.add_argument(
        "--group", choices=[layer.value for layer in Layer], help="only this layer's assets"
    )
    sp.add_argument("--latest", action="store_true", help="the day that ended (UTC), as scheduled")
    sp.set_defaults(func=cmd_materialize)
    sp = sub.add_parser(
        "register-tables", help="write ingestion_config rows for an existing database's tables"
    )
    sp.add_argument("--schema", help="source schema (default: the connection's)")
    sp.add_argument("--table", action="append", default=[], help="table to register (repeat)")
    sp.add_argument("--key", action="append", default=[], metavar="TABLE=COLUMN")
    sp.add_argument("--watermark", action="append", default=[], metavar="TABLE=COLUMN")
    sp.add_argument("--partition-start", type=date.fromisoformat, help="first window")
    sp.set_defaults(func=cmd_register_tables)
    sp = sub.add_parser("repair-watermarks", help="replace a corrupt watermark document")
    sp.add_argument("--table", required=True, help="bronze table, e.g. dim_user")
    sp.set_defaults(func=cmd_repair_watermarks)
    sp = sub.add_parser(
        "accept-columns", help="let a silver table take new bronze columns into its schema"
    )
    sp.add_argument("table", help="silver table, e.g. fact_stream")
    sp.add_argument("columns", nargs="+", help="column names as bronze has them")
    sp.set_defaults(func=cmd_accept_columns)
    sp = sub.add_parser("dagster-home", help="write DAGSTER_HOME/dagster.yaml (storage by env)")
    sp.add_argument("--if-missing", action="store_true", help="only if there is none (make)")
    sp.add_argument("--force", action="store_true", help="switch PostgreSQL storage to SQLite")
    sp.set_defaults(func=cmd_dagster_home)
    sp = sub.add_parser("connect-server", help="run a Spark Connect server with Delta Lake")
    sp.add_argument("--port", type=int, default=15002)
    sp.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    sp.set_defaults(func=cmd_connect_server)
    sp = sub.add_parser("remote-step", help="on a Databricks cluster: the step Dagster submitted")
    sp.add_argument("--dagster-pipes-context", help=argparse.SUPPRESS)  # Pipes reads them
    sp.add_argument("--dagster-pipes-messages", help=argparse.SUPPRESS)
    sp.set_defaults(func=cmd_remote_step)
    sp = sub.add_parser("summary", help="rows per table per layer, reconciled with the source")
    sp.set_defaults(func=cmd_summary)
    sp = sub.add_parser("demo", help="seed, materialise the seeded range, summarise")
    seed_args(sp)
    sp.add_argument("--end", type=date.fromisoformat, help=argparse.SUPPRESS)
    sp.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args, load_settings())
    except Exception as exc:  # a clear one-line error, not a traceback, for known failures
        from spotify_assets.ingestion.register import RegistrationError
        from spotify_assets.source.resource import SourceTableMissing, SourceUnavailable
        from spotify_assets.source.simulator import SimulatorError
        from spotify_assets.spark.delta_jars import DeltaJarsMissing
        from spotify_assets.spark.session import JavaMissing

        known = (ConfigError, SimulatorError, DeltaJarsMissing, JavaMissing, RegistrationError,
                 SourceUnavailable, SourceTableMissing)  # fmt: skip
        if isinstance(exc, known):
            print(f"spotify-lakehouse: error: {exc}", file=sys.stderr)
            return 2
        raise


def entry() -> None:
    """The console script. It exits with the status itself: a Databricks python_wheel_task
    calls the entry point and ignores what it returns, so a failed run must raise."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
