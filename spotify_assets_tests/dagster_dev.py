"""`dagster dev` (webserver, daemon and code server) on loopback for the UI test.

It runs the repository's workspace.yaml from the repository root, exactly as `make dev` does, in
an environment the caller gives (a throw-away DAGSTER_HOME, source and lake); DAGSTER_HOME gets
the repository's dagster.yaml the way `spotify-lakehouse dagster-home` writes it. The block gets
the base URL once the code location has loaded; afterwards the whole process group is stopped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import requests

from spotify_assets.instance import write_dagster_home
from spotify_assets_tests.servers import ServerFailed, free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
DAGSTER = ROOT / ".venv" / "bin" / "dagster"
LOCATION = "spotify_lakehouse"  # workspace.yaml's location_name
LOG_TAIL_LINES = 40

LOCATIONS_QUERY = """
{ workspaceOrError { __typename
    ... on Workspace { locationEntries { name loadStatus
        locationOrLoadError { __typename ... on PythonError { message } } } }
    ... on PythonError { message } } }
"""


class DagsterDevFailed(ServerFailed):
    pass


class GraphQLError(RuntimeError):
    pass


def graphql(url: str, query: str, variables: Mapping[str, Any] | None = None) -> dict:
    """POST a query to the webserver's /graphql; its `data`, or GraphQLError naming the errors."""
    response = requests.post(
        f"{url}/graphql", json={"query": query, "variables": dict(variables or {})}, timeout=30
    )
    try:
        body = response.json()
    except ValueError:
        response.raise_for_status()
        raise
    if body.get("errors") or response.status_code != 200:
        raise GraphQLError(f"GraphQL answered {response.status_code}: {body.get('errors')}")
    return body["data"]


def log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


@contextmanager
def dagster_dev(env: Mapping[str, str], log: Path, timeout: float = 180) -> Iterator[str]:
    """`dagster dev` with `env` as its whole environment, logging to `log`; yields its base URL
    (http://127.0.0.1:PORT) once the code location has loaded. Fails with DagsterDevFailed and
    the log's tail if it exits, cannot load the code location or is not up in `timeout` s."""
    home = env.get("DAGSTER_HOME")
    if not home:
        raise DagsterDevFailed("dagster dev needs DAGSTER_HOME in its environment")
    if not DAGSTER.is_file():
        raise DagsterDevFailed(f"{DAGSTER} not found: run `make setup`")
    if not (Path(home) / "dagster.yaml").is_file():
        write_dagster_home(Path(home), env)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [str(DAGSTER), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
    with open(log, "wb") as out:
        # Its own session: the webserver, daemon, code servers and run workers it starts share
        # the process group, which stop_group ends as a whole.
        process = subprocess.Popen(
            argv, cwd=ROOT, env=dict(env), stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + timeout
    try:
        try:
            wait_for_port(process, "127.0.0.1", port, timeout, "dagster dev", DagsterDevFailed)
            wait_for_location(process, url, deadline)
        except ServerFailed as exc:
            raise DagsterDevFailed(f"{exc}; the end of {log}:\n{log_tail(log)}") from None
        yield url
    finally:
        stop_group(process)


def wait_for_location(process: subprocess.Popen, url: str, deadline: float) -> None:
    """Poll GraphQL until the workspace's code location has loaded (it answers before)."""
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DagsterDevFailed(f"dagster dev exited with {process.returncode}")
        try:
            workspace = graphql(url, LOCATIONS_QUERY)["workspaceOrError"]
        except (requests.RequestException, GraphQLError, ValueError) as exc:
            last = str(exc)
        else:
            entries = {e["name"]: e for e in workspace.get("locationEntries", [])}
            entry = entries.get(LOCATION)
            if entry and entry["loadStatus"] == "LOADED":
                loaded = entry["locationOrLoadError"]
                if loaded and loaded["__typename"] == "PythonError":
                    raise DagsterDevFailed(
                        f"code location {LOCATION} failed to load: {loaded['message']}"
                    )
                return
            last = f"workspace: {workspace}"
        time.sleep(0.5)
    raise DagsterDevFailed(f"dagster dev did not load {LOCATION} in time (last: {last})")


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of the process group, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        state, group = fields[0], int(fields[2])
        if group == pgid and state not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


def stop_group(process: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM to the whole process group (dagster dev maps it to its Ctrl-C shutdown), SIGKILL
    to whatever is left after `grace` seconds; returns when no member is alive."""
    pgid = process.pid  # start_new_session: the leader's pid is the group's id
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        process.poll()  # reaps the leader once it exits
        if not group_members(pgid):
            break
        time.sleep(0.2)
    else:
        with suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 10
    while (left := group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if left:
        raise DagsterDevFailed(f"processes {left} of dagster dev's group outlived SIGKILL")
