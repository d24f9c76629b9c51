"""The GitHub Actions workflow: valid against GitHub's schema, tests on pull requests, deploys
main with secrets it names and never holds."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

WORKFLOW = Path(__file__).resolve().parent.parent / ".github" / "workflows" / "ci.yml"
CHECK = str(Path(sys.executable).parent / "check-jsonschema")


def validate(path: Path) -> subprocess.CompletedProcess:
    """check-jsonschema with its bundled copy of GitHub's workflow schema (no network)."""
    return subprocess.run(
        [CHECK, "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_the_workflow_is_valid_and_a_broken_one_is_not(tmp_path):
    done = validate(WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = yaml.safe_load(WORKFLOW.read_text())
    del broken["jobs"]["test"]["runs-on"]
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(broken))
    done = validate(tmp_path / "broken.yml")
    assert done.returncode == 1 and "runs-on" in done.stdout


def test_pull_requests_run_the_tests_and_main_deploys_the_bundle_with_named_secrets():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert "pull_request" in triggers and triggers["push"]["branches"] == ["main"]
    test, deploy = workflow["jobs"]["test"], workflow["jobs"]["deploy"]
    assert [s["run"] for s in test["steps"] if "run" in s][-1] == "bash .ci/run"
    assert deploy["needs"] == "test"
    assert deploy["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    steps = [s for s in deploy["steps"] if "run" in s]
    assert "dg check defs" in steps[0]["run"]  # the code location is checked before deploying
    assert [s["run"] for s in steps[1:]] == [
        "databricks bundle validate --target prod",
        "databricks bundle deploy --target prod",
    ]
    # Credentials come from the repository's secrets, by name, and only the bundle steps get
    # them; no action is taken from a moving branch.
    secrets = {
        name: "${{ secrets." + name + " }}"
        for name in ("DATABRICKS_HOST", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET")
    }
    # The bundle's variables without a default come from the environment's variables.
    bundle = yaml.safe_load((WORKFLOW.parent.parent.parent / "databricks.yml").read_text())
    required = [n for n, v in bundle["variables"].items() if "default" not in v]
    bundle_vars = {
        f"BUNDLE_VAR_{name}": "${{ vars." + name.upper() + " }}" for name in required
    }  # fmt: skip
    assert [s.get("env") for s in steps] == [None, *[{**secrets, **bundle_vars}] * 2]
    assert set(required) == {
        "lakehouse_root", "notification_email", "azure_tenant_id", "azure_client_id"
    }  # fmt: skip
    assert "env" not in deploy
    uses = [s["uses"] for job in workflow["jobs"].values() for s in job["steps"] if "uses" in s]
    assert all(re.search(r"@v\d+(\.\d+)*$", u) for u in uses), uses
    text = WORKFLOW.read_text()
    assert not re.search(r"dapi[0-9a-f]{8,}|AccountKey=|password\s*[:=]", text, re.I)
