"""Idempotency as a property (hypothesis): whatever the order, the re-runs and the redeliveries,
the result equals one clean ordered run.

- In `make test`, a few examples of each property at the level of the lake's own machinery:
  gold's SCD2 history following a change log that receives batches of versions in any order,
  some twice, against a rebuild from the same log.
- In `make test-all`, the whole graph too, on one explicit example: runs out of order and a
  re-run, against one clean ordered run. In `make properties` (HYPOTHESIS_PROFILE=properties),
  generated sequences of them as well, with source changes (the simulator's `advance`) between
  them. A run costs 30 to 60 s (a next day's more), so it is budgeted apart.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from dagster import DagsterInstance
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from spotify_assets_tests.conftest import START, make_settings
from spotify_assets_tests.test_gold_incremental import lake_at, run, sync, table

settings.register_profile(
    "default", max_examples=4, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
# The full budget; PROPERTY_EXAMPLES lowers it. No shrinking: a whole-graph example is minutes of
# runs, and a failure names its runs in the assertion already.
settings.register_profile(
    "properties", parent=settings.get_profile("default"),
    max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "25")),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)  # fmt: skip
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
WHOLE_GRAPH = os.environ.get("HYPOTHESIS_PROFILE") == "properties"

T = [datetime(2026, 1, 1 + i, 12) for i in range(6)]
# A version of dim_user: (user_id or NULL, updated_at) -> (name, subscription); "Gold" is
# quarantined by a rule, a NULL key too.
VERSION_KEYS = st.tuples(st.sampled_from([1, 2, 3, None]), st.sampled_from(T))
VERSION_VALUES = st.tuples(
    st.sampled_from(["Ann", "Bo"]), st.sampled_from(["Free", "Premium", "Gold"])
)


def quarantined(spark, lake: dict) -> list:
    """The quarantine's rows; none when nothing was ever quarantined (no table)."""
    from spotify_assets.lake import delta
    from spotify_assets_tests.test_gold_incremental import quarantine

    return quarantine(spark, lake) if delta.exists(lake["quarantine"]) else []


@given(
    data=st.data(), versions=st.dictionaries(VERSION_KEYS, VERSION_VALUES, min_size=1, max_size=7)
)
def test_gold_history_follows_batches_in_any_order_and_equals_a_rebuild(spark, data, versions):
    """Bronze keeps every version it is given once (by key and updated_at); silver's change log
    is all of them; gold follows the keys that changed after each batch. Batches come in any
    order (late versions), some twice: the history equals a rebuild from the same log.
    Slow because each of its 4 examples materialises gold's dim_user several times."""
    keys = sorted(versions, key=repr)
    batches = data.draw(
        st.lists(st.lists(st.sampled_from(keys), min_size=1, max_size=4), min_size=1, max_size=3)
    )
    root = Path(tempfile.mkdtemp(prefix="property-"))
    try:
        lake = lake_at(root)
        landed: dict = {}
        for batch in batches:
            for key in batch:  # a redelivered version is already there: nothing changes
                landed.setdefault(key, versions[key])
            events = [(k[0], *v[:1], "SE", v[1], k[1]) for k, v in landed.items()]
            sync(spark, lake, events)
            run(lake)
        followed = (table(spark, lake["table"]), quarantined(spark, lake))
        run(lake, full_refresh=True)
        assert followed == (table(spark, lake["table"]), quarantined(spark, lake))
    finally:
        shutil.rmtree(root, ignore_errors=True)


# The whole graph (make properties). A source of 3 seeded days, then up to 2 `advance`s; after
# each state, runs of random ranges in random order, the newest day among them (a version the
# source overwrites before any run saw it is gone by design: the source keeps current rows only).
SEEDED_DAYS = 3
RANGES = st.tuples(st.integers(0, SEEDED_DAYS + 1), st.integers(0, SEEDED_DAYS + 1))
_REFERENCE: dict[int, dict] = {}
_EXAMPLES: list[list[list[tuple[int, int]]]] = []


def gold_snapshot(spark, settings) -> dict:
    from benchmarks.pipeline import GOLD_TABLES, PROCESSING_COLUMNS
    from spotify_assets.catalog import Layer, table_path
    from spotify_assets.lake import delta

    out = {}
    for entity in GOLD_TABLES:
        df = delta.read(spark, table_path(settings.lakehouse_root, Layer.GOLD, entity))
        df = df.drop(*[c for c in df.columns if c in PROCESSING_COLUMNS])
        out[entity] = sorted(repr(tuple(r)) for r in df.collect())
    return out


def play(spark, root: Path, states: list[list[tuple[int, int]]]) -> dict:
    """Seed, then for each state its runs (day offsets, inclusive), `advance` between states."""
    from spotify_assets.materialize import materialize_range
    from spotify_assets.source import simulator
    from spotify_assets.source.resource import SourceDatabase

    settings = make_settings(root)
    engine = SourceDatabase(url=settings.source_db_url).engine
    simulator.seed(engine, seed_value=9, start=START, days=SEEDED_DAYS, streams_per_scale=60,
                   echo=lambda _: None)  # fmt: skip
    with DagsterInstance.ephemeral() as instance:
        for number, runs in enumerate(states):
            if number:
                simulator.advance(engine, echo=lambda _: None)
            for first, last in runs:
                result = materialize_range(
                    settings, START + timedelta(days=first), START + timedelta(days=last),
                    instance, say=lambda _: None,
                )  # fmt: skip
                assert result.success, (first, last)
    return gold_snapshot(spark, settings)


@st.composite
def run_plans(draw) -> list[list[tuple[int, int]]]:
    """After the seed and after each `advance` (up to 2), runs of random day ranges in random
    order, the newest day among them."""
    states = []
    for number in range(draw(st.integers(0, 2)) + 1):
        newest = SEEDED_DAYS - 1 + number
        runs = draw(st.lists(RANGES, max_size=2))
        runs = [(min(a, b, newest), min(max(a, b), newest)) for a, b in runs]
        at = draw(st.integers(0, len(runs)))
        runs.insert(at, (newest if number else 0, newest))  # the newest day, at least once
        states.append(runs)
    return states


@pytest.mark.slow  # whole-graph runs: make test-all tries the explicit example, make properties
@settings(phases=settings().phases if WHOLE_GRAPH else [Phase.explicit])  # its full budget too
# The newest days first, then an older range over one of them again: out of order and a re-run,
# 2 runs against the ordered run's one. (A next day after an advance: test_pipeline's scenario.)
@example(states=[[(1, 2), (0, 1)]])
@given(states=run_plans())
def test_any_order_of_runs_and_reruns_gives_the_gold_of_one_ordered_run(spark, states):
    advances = len(states) - 1
    if advances not in _REFERENCE:
        ordered = [[(0, SEEDED_DAYS - 1)], *([(SEEDED_DAYS - 1 + n, SEEDED_DAYS - 1 + n)]
                                             for n in range(1, advances + 1))]  # fmt: skip
        root = Path(tempfile.mkdtemp(prefix="property-reference-"))
        try:
            _REFERENCE[advances] = play(spark, root, ordered)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    root = Path(tempfile.mkdtemp(prefix="property-"))
    started = time.monotonic()
    try:
        assert play(spark, root, states) == _REFERENCE[advances], states
    finally:
        shutil.rmtree(root, ignore_errors=True)
    _EXAMPLES.append(states)
    runs = sum(len(r) for r in states)
    print(f"example {len(_EXAMPLES)}: {advances} advance(s), {runs} runs {states}: gold equals "
          f"the ordered run's ({time.monotonic() - started:.0f} s)", flush=True)  # fmt: skip
