"""The tiers' rules, in a pytest of their own: under --no-skips (make test-all) a skip fails the
run with its reason; a test of make test's tier over its time names itself unless its docstring
says why it is slow."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CONFTEST = """
import spotify_assets_tests.tiers as tiers

pytest_plugins = ["spotify_assets_tests.tiers"]
tiers.FAST_TIER_SECONDS = 0.2
"""
TESTS = '''
import time
import pytest

def test_quick():
    pass

def test_needs_a_server():
    pytest.skip("Azurite could not start: npm not found")

def test_long_and_silent():
    time.sleep(0.3)

def test_long_and_explained():
    """Slow because it waits."""
    time.sleep(0.3)

@pytest.mark.slow
def test_long_and_slow_tier():
    time.sleep(0.3)

@pytest.mark.xfail(reason="a known bug", strict=True)
def test_known_bug():
    assert False
'''
SKIPPED_MODULE = 'import pytest\npytest.importorskip("a_module_this_machine_lacks")\n'


def pytest_in(folder, *args: str, module: str = "test_sample.py") -> subprocess.CompletedProcess:
    (folder / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (folder / "test_sample.py").write_text(TESTS)
    (folder / "test_skipped_module.py").write_text(SKIPPED_MODULE)
    (folder / "pytest.ini").write_text("[pytest]\nmarkers =\n    slow: the slow tier\n")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rfs", *args, module],
        capture_output=True, text=True, check=False, cwd=folder,
    )  # fmt: skip


def test_a_skip_fails_make_test_all_with_its_reason_and_is_a_skip_in_make_test(tmp_path):
    strict = pytest_in(tmp_path, "--no-skips")
    assert strict.returncode == 1, strict.stdout
    assert "FAILED test_sample.py::test_needs_a_server" in strict.stdout
    assert (
        "\nskipped, which make test-all does not allow: Skipped: Azurite could not start: "
        "npm not found\n"
    ) in strict.stdout
    assert "1 failed, 4 passed, 1 xfailed" in strict.stdout  # an expected failure stays one

    lenient = pytest_in(tmp_path)
    assert lenient.returncode == 0, lenient.stdout
    assert "SKIPPED [1] test_sample.py:9: Azurite could not start: npm not found" in (
        lenient.stdout
    )
    assert "4 passed, 1 skipped, 1 xfailed" in lenient.stdout

    # A module skipped whole, at collection, fails too.
    whole = pytest_in(tmp_path, "--no-skips", module="test_skipped_module.py")
    assert whole.returncode == 2, whole.stdout  # pytest's exit for an error at collection
    assert (
        "\nskipped, which make test-all does not allow: Skipped: could not import "
        "'a_module_this_machine_lacks'"
    ) in whole.stdout
    assert pytest_in(tmp_path, module="test_skipped_module.py").returncode == 5  # no tests


def test_a_long_test_of_the_fast_tier_says_why_or_is_named(tmp_path):
    done = pytest_in(tmp_path)
    assert "= make test's tests over 0.2 s with no reason =" in done.stdout
    named = [
        line.split(" s ", 1)[1]
        for line in done.stdout.splitlines()
        if line.endswith("mark it slow")
    ]
    assert named == [
        "test_sample.py::test_long_and_silent: say why in its docstring, or mark it slow"
    ]
