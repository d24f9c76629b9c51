"""The two tiers' rules, a pytest plugin (conftest.py loads it): `--no-skips` (make test-all)
turns every skip into a failure that names its reason; a test of make test's tier that runs
longer than FAST_TIER_SECONDS is named at the end unless its docstring says why it is slow.
Kept free of the project's imports so that a pytest of its own can load it in a second."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-skips", action="store_true",
        help="a skipped test fails the run, with its reason (make test-all: a server that "
        "could not start, a missing browser or a suite left out is a failure, not a skip)",
    )  # fmt: skip


# A test of make test's tier that takes longer says why in its docstring ("Slow because ..."),
# or moves to the slow tier: the summary names those that do neither.
FAST_TIER_SECONDS = 60
_unexplained: list[str] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Under --no-skips, a skip becomes a failure that says what was skipped and why."""
    outcome = yield
    report = outcome.get_result()
    if (
        report.skipped
        and not hasattr(report, "wasxfail")  # an expected failure is not a skip
        and item.config.getoption("--no-skips")
    ):
        _fail_skip(report)
    doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
    if (
        report.when == "call"
        and report.duration > FAST_TIER_SECONDS
        and item.get_closest_marker("slow") is None
        and "slow because" not in doc.lower()
    ):
        report.user_properties.append(("unexplained_seconds", report.duration))


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """A module skipped whole (importorskip, allow_module_level) fails under --no-skips too."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and collector.config.getoption("--no-skips"):
        _fail_skip(report)


def _fail_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
    report.outcome = "failed"
    report.longrepr = f"skipped, which make test-all does not allow: {reason}"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collected where the summary is written (the controller, under pytest-xdist)."""
    for name, seconds in report.user_properties:
        if name == "unexplained_seconds":
            _unexplained.append(f"{seconds:.0f} s {report.nodeid}")


def pytest_terminal_summary(terminalreporter) -> None:
    if _unexplained:
        terminalreporter.section(f"make test's tests over {FAST_TIER_SECONDS} s with no reason")
        for line in _unexplained:
            terminalreporter.write_line(line + ": say why in its docstring, or mark it slow")
