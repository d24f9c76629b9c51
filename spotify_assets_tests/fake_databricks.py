"""A faithful local stand-in for the Databricks REST API (tests only).

A real HTTP server on loopback answering the paths the Databricks SDK (0.60) calls, with the
documented request and response fields and Databricks' error shape: `{"error_code", "message"}`
with its HTTP status, which the SDK raises as a `DatabricksError` (an `OSError`, which
dagster-databricks relies on). Faithful parts:

- Bearer-token auth on every request.
- DBFS (`/api/2.0/dbfs/*`) backed by a local directory: absolute paths with or without `dbfs:`,
  parents created on write, RESOURCE_ALREADY_EXISTS without `overwrite`, the handle-based
  create/add-block/close upload (10 minute idle handles), 1 MB blocks and reads, 0.5 MB default
  read length, recursive delete.
- One-time runs (`/api/2.2/jobs/runs/submit|get|cancel`): validation at submit, idempotency
  tokens, `timeout_seconds`, the life cycle PENDING (cluster starting) -> RUNNING -> TERMINATING ->
  TERMINATED (or INTERNAL_ERROR when the cluster cannot start), result states, the v2 `status`
  with termination details, asynchronous cancellation, `run_page_url`.
- `/api/2.1/clusters/get` for the configured clusters; secret scopes, whose
  `{{secrets/<scope>/<key>}}` references in `spark_env_vars` are resolved when the task starts.
- Cluster driver logs delivered to `<cluster_log_conf.dbfs.destination>/<cluster_id>/driver/` as
  `stdout` and `stderr`, every `log_delivery_seconds` (5 minutes on Databricks) and at task end.

A `python_wheel_task` really runs: its entry point is the console script of that name in `bin_dir`
(what installing the wheel puts there), in its own session so a cancel can SIGTERM then SIGKILL
the whole process group, with the cluster's `spark_env_vars` on top of `base_env` and
`SPOTIFY_DBFS_MOUNT` naming the DBFS root (the /dbfs FUSE mount of a cluster).

Not faithful: wheels in `libraries` are recorded, not installed; the tasks of a run run one after
the other (in dependency order), not in parallel; task types other than `python_wheel_task` are
refused at submit; `run_if` is always ALL_SUCCESS.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import itertools
import json
import os
import random
import re
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

TASK_TYPES = (
    "clean_rooms_notebook_task", "condition_task", "dashboard_task", "dbt_cloud_task",
    "dbt_platform_task", "dbt_task", "for_each_task", "gen_ai_compute_task", "notebook_task",
    "pipeline_task", "power_bi_task", "python_wheel_task", "run_job_task", "spark_jar_task",
    "spark_python_task", "spark_submit_task", "sql_task",
)  # fmt: skip
COMPUTE_FIELDS = ("new_cluster", "existing_cluster_id", "environment_key")
LIBRARY_KINDS = {"whl", "jar", "egg", "pypi", "maven", "cran", "requirements"}
TERMINAL_STATES = frozenset({"TERMINATED", "SKIPPED", "INTERNAL_ERROR"})
V2_STATES = {"INTERNAL_ERROR": "TERMINATED", "SKIPPED": "TERMINATED"}
MAX_BLOCK_BYTES = 1024 * 1024
DEFAULT_READ_BYTES = 512 * 1024
HANDLE_IDLE_SECONDS = 600.0
SECRET_REFERENCE = re.compile(r"\{\{secrets/([^/{}]+)/([^/{}]+)\}\}")
PART_SUFFIX = ".fake-dbfs-part"  # in-flight atomic writes, never listed
WORKLOAD_FAILED = "Workload failed, see run output for details"
RUN_CANCELLED = "Run cancelled."
RUN_TIMED_OUT = "Run timed out."

Params = dict[str, Any]


class Outcome(NamedTuple):
    """How a run or task ended: `state` fields plus the v2 termination code and type."""

    life_cycle_state: str
    result_state: str
    message: str
    code: str
    type: str


SUCCEEDED = Outcome("TERMINATED", "SUCCESS", "", "SUCCESS", "SUCCESS")
FAILED = Outcome("TERMINATED", "FAILED", WORKLOAD_FAILED, "RUN_EXECUTION_ERROR", "CLIENT_ERROR")
CANCELED = Outcome("TERMINATED", "CANCELED", RUN_CANCELLED, "USER_CANCELED", "SUCCESS")
TIMED_OUT = Outcome("TERMINATED", "TIMEDOUT", RUN_TIMED_OUT, "CANCELED", "CLIENT_ERROR")


class ApiError(Exception):
    """A Databricks error response: the HTTP status and the `error_code` / `message` body."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_code, self.message = status, error_code, message


class ClusterError(Exception):
    """The task's cluster could not start: the run ends in INTERNAL_ERROR."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_PARAMETER_VALUE", message)


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class LifeCycle:
    """The state of a run or task, serialised as both `state` (RunState) and `status` (v2)."""

    life_cycle_state: str = "PENDING"
    result_state: str | None = None
    state_message: str = ""
    user_cancelled_or_timedout: bool = False
    outcome: Outcome | None = None
    history: list[str] = field(default_factory=lambda: ["PENDING"])

    def move(self, life_cycle_state: str) -> None:
        self.life_cycle_state = life_cycle_state
        if self.history[-1] != life_cycle_state:
            self.history.append(life_cycle_state)

    def settle(self, outcome: Outcome) -> None:
        self.outcome, self.result_state = outcome, outcome.result_state
        self.state_message = outcome.message
        self.user_cancelled_or_timedout = outcome.result_state in ("CANCELED", "TIMEDOUT")
        self.move(outcome.life_cycle_state)

    @property
    def terminal(self) -> bool:
        return self.life_cycle_state in TERMINAL_STATES

    def state_json(self) -> Params:
        state: Params = {
            "life_cycle_state": self.life_cycle_state,
            "state_message": self.state_message,
            "user_cancelled_or_timedout": self.user_cancelled_or_timedout,
        }
        if self.result_state is not None:
            state["result_state"] = self.result_state
        return state

    def status_json(self) -> Params:
        status: Params = {"state": V2_STATES.get(self.life_cycle_state, self.life_cycle_state)}
        if self.terminal and self.outcome is not None:
            details = {"code": self.outcome.code, "type": self.outcome.type}
            if self.state_message:
                details["message"] = self.state_message
            status["termination_details"] = details
        return status


@dataclass
class FakeTask:
    """One task of a run: its submitted spec, its own run id and what its process did."""

    task_key: str
    spec: Params
    run_id: int
    directory: Path  # cwd/, stdout and stderr of the task's process
    state: LifeCycle = field(default_factory=LifeCycle)
    cluster_id: str | None = None
    process: subprocess.Popen[bytes] | None = None
    start_time: int = 0
    execution_start: int = 0
    execution_end: int = 0
    end_time: int = 0


@dataclass
class FakeRun:
    """A submitted one-time run; its state machine runs in `thread`."""

    run_id: int
    job_id: int
    run_name: str
    body: Params
    tasks: list[FakeTask]  # as submitted
    order: list[str]  # task keys in execution (dependency) order
    start_time: int
    deadline: float | None  # time.monotonic() by which timeout_seconds cuts the run
    state: LifeCycle = field(default_factory=LifeCycle)
    end_time: int = 0
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def task(self, task_key: str) -> FakeTask:
        return next(task for task in self.tasks if task.task_key == task_key)


@dataclass
class _Upload:
    path: str
    local: Path
    overwrite: bool
    data: bytearray
    touched: float


@dataclass
class FakeDatabricks:
    """The workspace: DBFS under `dbfs_root`, `existing_clusters` by id (their `spark_env_vars`
    and `cluster_log_conf` apply to tasks on them), `secrets` by scope, and the runs it was sent.
    Serve it with `start()`/`stop()`, `with FakeDatabricks(...)` or `serve(fake)`."""

    dbfs_root: Path
    token: str = "dapi0123456789abcdef0123456789abcdef"
    bin_dir: Path = field(default_factory=lambda: Path(sys.executable).parent)
    base_env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    work_dir: Path | None = None  # per-run scratch directories; a fresh temp dir by default
    existing_clusters: dict[str, dict[str, Any]] = field(default_factory=dict)
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)  # scope -> key -> value
    cluster_start_seconds: float = 0.0  # each task stays PENDING this long
    cluster_stop_seconds: float = 0.1  # the run stays TERMINATING this long
    kill_grace_seconds: float = 5.0  # between SIGTERM and SIGKILL on cancel
    log_delivery_seconds: float = 300.0
    workspace_id: int = 1234567890123456
    user_name: str = "fake-user@example.com"
    seed: int = 11
    requests: list[tuple[str, str, Params]] = field(default_factory=list)
    submitted: list[Params] = field(default_factory=list)  # bodies of submits that made a run
    runs: dict[int, FakeRun] = field(default_factory=dict)
    url: str = ""

    def __post_init__(self) -> None:
        self.dbfs_root = Path(self.dbfs_root)
        self.dbfs_root.mkdir(parents=True, exist_ok=True)
        self._real_root = self.dbfs_root.resolve()
        self.bin_dir = Path(self.bin_dir)
        if self.work_dir is None:
            self.work_dir = Path(tempfile.mkdtemp(prefix="fake-databricks-"))
        self._scratch = Path(self.work_dir)
        self._rng = random.Random(self.seed)
        self._ids = itertools.count(self._rng.randrange(10**14, 9 * 10**14))
        self._cond = threading.Condition()
        self._handles: dict[int, _Upload] = {}
        self._idempotency: dict[str, int] = {}
        self._server: ThreadingHTTPServer | None = None
        self._stopping = False
        self._routes: dict[tuple[str, str], Callable[[Params], Params]] = {
            ("POST", "/api/2.0/dbfs/mkdirs"): self._dbfs_mkdirs,
            ("POST", "/api/2.0/dbfs/put"): self._dbfs_put,
            ("POST", "/api/2.0/dbfs/create"): self._dbfs_create,
            ("POST", "/api/2.0/dbfs/add-block"): self._dbfs_add_block,
            ("POST", "/api/2.0/dbfs/close"): self._dbfs_close,
            ("POST", "/api/2.0/dbfs/delete"): self._dbfs_delete,
            ("POST", "/api/2.0/dbfs/move"): self._dbfs_move,
            ("GET", "/api/2.0/dbfs/get-status"): self._dbfs_get_status,
            ("GET", "/api/2.0/dbfs/list"): self._dbfs_list,
            ("GET", "/api/2.0/dbfs/read"): self._dbfs_read,
            ("POST", "/api/2.0/secrets/scopes/create"): self._secrets_create_scope,
            ("POST", "/api/2.0/secrets/put"): self._secrets_put,
        }
        for version in ("2.1", "2.2"):
            self._routes[("POST", f"/api/{version}/jobs/runs/submit")] = self._runs_submit
            self._routes[("GET", f"/api/{version}/jobs/runs/get")] = self._runs_get
            self._routes[("POST", f"/api/{version}/jobs/runs/cancel")] = self._runs_cancel
        for version in ("2.0", "2.1"):
            self._routes[("GET", f"/api/{version}/clusters/get")] = self._clusters_get

    # -- serving ----------------------------------------------------------------------------

    def start(self) -> str:
        """Serve on a free loopback port; returns the workspace URL for `WorkspaceClient(host=)`."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self.url

    def stop(self) -> None:
        """Stop serving and kill every task still running (SIGKILL, no grace)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._cond:
            self._stopping = True
            runs = list(self.runs.values())
            for run in runs:
                run.cancel_requested.set()
                for task in run.tasks:
                    if task.process is not None and task.process.poll() is None:
                        _signal_group(task.process.pid, signal.SIGKILL)
        for run in runs:
            if run.thread is not None:
                run.thread.join(timeout=10)

    def __enter__(self) -> FakeDatabricks:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- for tests --------------------------------------------------------------------------

    def wait_for_state(self, run_id: int, life_cycle_state: str, timeout: float = 10.0) -> Params:
        """Block until the run has reached `life_cycle_state` (now or earlier); returns the run as
        runs/get would. Raises at once if the run ended without passing through that state."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                run = self.runs[run_id]
                if life_cycle_state in run.state.history:
                    return self._run_json(run)
                if run.state.terminal:
                    raise AssertionError(
                        f"run {run_id} ended {run.state.history} without {life_cycle_state}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"run {run_id} still {run.state.life_cycle_state} after {timeout}s, "
                        f"not {life_cycle_state}"
                    )
                self._cond.wait(remaining)

    def process_pid(self, run_id: int, task_key: str | None = None) -> int | None:
        """The pid (and process group id) of the task's process; None before it started."""
        with self._cond:
            process = self._task(run_id, task_key).process
            return None if process is None else process.pid

    def stdout(self, run_id: int, task_key: str | None = None) -> str:
        return self._output(run_id, task_key, "stdout")

    def stderr(self, run_id: int, task_key: str | None = None) -> str:
        return self._output(run_id, task_key, "stderr")

    def _output(self, run_id: int, task_key: str | None, name: str) -> str:
        with self._cond:
            path = self._task(run_id, task_key).directory / name
        return path.read_text(errors="replace") if path.exists() else ""

    def _task(self, run_id: int, task_key: str | None) -> FakeTask:
        run = self.runs[run_id]
        if task_key is not None:
            return run.task(task_key)
        if len(run.tasks) != 1:
            raise ValueError(f"run {run_id} has {len(run.tasks)} tasks: pass task_key")
        return run.tasks[0]

    # -- the API ----------------------------------------------------------------------------

    def answer(
        self, method: str, path: str, query: dict[str, str], raw: bytes, headers: dict[str, str]
    ) -> tuple[int, Params]:
        """One request: (HTTP status, JSON body). GET parameters may also come as a JSON body."""
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            body = None
        params: Params = {**query, **body} if isinstance(body, dict) else dict(query)
        with self._cond:
            self.requests.append((method, path, params))
            try:
                self._authenticate(headers)
                if body is None or not isinstance(body, dict):
                    raise ApiError(400, "MALFORMED_REQUEST", "Invalid JSON given in the body")
                route = self._routes.get((method, path))
                if route is None:
                    raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'")
                return 200, route(params)
            except ApiError as error:
                return error.status, {"error_code": error.error_code, "message": error.message}

    def _authenticate(self, headers: dict[str, str]) -> None:
        authorization = headers.get("authorization")
        if authorization is None:
            raise ApiError(401, "UNAUTHENTICATED", "No authorization header was provided.")
        if authorization != f"Bearer {self.token}":
            raise ApiError(401, "UNAUTHENTICATED", "Invalid access token.")

    # -- DBFS -------------------------------------------------------------------------------

    def _dbfs_path(self, params: Params, name: str = "path") -> tuple[str, Path]:
        """The absolute DBFS path (without `dbfs:`) and where it lives under `dbfs_root`."""
        raw = _required_str(params, name)
        path = raw.removeprefix("dbfs:")
        if not path.startswith("/"):
            raise _invalid(f"Path must be absolute: {raw}")
        parts = [part for part in path.split("/") if part not in ("", ".")]
        if ".." in parts:
            raise _invalid(f"Path must not contain '..': {raw}")
        local = self.dbfs_root.joinpath(*parts)
        if not local.resolve().is_relative_to(self._real_root):
            raise _invalid(f"Path is outside DBFS: {raw}")
        return "/" + "/".join(parts), local

    def _not_found(self, path: str) -> ApiError:
        message = f"No file or directory exists on path {path}."
        return ApiError(404, "RESOURCE_DOES_NOT_EXIST", message)

    def _exists_error(self, path: str) -> ApiError:
        message = f"A file or directory already exists at the input path {path}."
        return ApiError(400, "RESOURCE_ALREADY_EXISTS", message)

    def _file_info(self, path: str, local: Path) -> Params:
        stat = local.stat()
        is_dir = local.is_dir()
        return {
            "path": path,
            "is_dir": is_dir,
            "file_size": 0 if is_dir else stat.st_size,
            "modification_time": int(stat.st_mtime * 1000),
        }

    def _make_dirs(self, local: Path) -> None:
        """mkdir -p, refusing (like DBFS) when a file sits at any prefix of the path."""
        current = self.dbfs_root
        for part in local.relative_to(self.dbfs_root).parts:
            current = current / part
            if current.exists() and not current.is_dir():
                raise self._exists_error("/" + current.relative_to(self.dbfs_root).as_posix())
        local.mkdir(parents=True, exist_ok=True)

    def _check_writable(self, path: str, local: Path, overwrite: bool) -> None:
        if local.is_dir() or (local.exists() and not overwrite):
            raise self._exists_error(path)

    def _write(self, path: str, local: Path, data: bytes, overwrite: bool) -> None:
        """Atomic write: a task reading through the mount never sees half a file."""
        self._check_writable(path, local, overwrite)
        self._make_dirs(local.parent)
        _atomic_write(local, data)

    def _dbfs_mkdirs(self, params: Params) -> Params:
        _, local = self._dbfs_path(params)
        self._make_dirs(local)
        return {}

    def _dbfs_put(self, params: Params) -> Params:
        path, local = self._dbfs_path(params)
        data = _block(params.get("contents"), "contents")
        self._write(path, local, data, _bool_param(params, "overwrite"))
        return {}

    def _dbfs_create(self, params: Params) -> Params:
        path, local = self._dbfs_path(params)
        overwrite = _bool_param(params, "overwrite")
        self._check_writable(path, local, overwrite)
        handle = next(self._ids)
        self._handles[handle] = _Upload(path, local, overwrite, bytearray(), time.monotonic())
        return {"handle": handle}

    def _upload(self, params: Params) -> tuple[int, _Upload]:
        handle = _int_param(params, "handle")
        upload = self._handles.get(handle) if handle is not None else None
        if handle is None or upload is None:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Handle {handle} does not exist.")
        if time.monotonic() - upload.touched > HANDLE_IDLE_SECONDS:
            del self._handles[handle]
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Handle {handle} does not exist.")
        upload.touched = time.monotonic()
        return handle, upload

    def _dbfs_add_block(self, params: Params) -> Params:
        _, upload = self._upload(params)
        upload.data += _block(params.get("data"), "data")
        return {}

    def _dbfs_close(self, params: Params) -> Params:
        handle, upload = self._upload(params)
        del self._handles[handle]
        self._write(upload.path, upload.local, bytes(upload.data), upload.overwrite)
        return {}

    def _dbfs_delete(self, params: Params) -> Params:
        path, local = self._dbfs_path(params)
        if not local.exists():
            return {}  # deleting what is not there succeeds
        if not local.is_dir():
            local.unlink()
            return {}
        if any(local.iterdir()) and not _bool_param(params, "recursive"):
            message = f"Cannot delete non-empty directory {path} without recursive=true."
            raise ApiError(400, "IO_ERROR", message)
        if local == self.dbfs_root:
            for child in local.iterdir():
                if child.is_dir():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        else:
            shutil.rmtree(local)
        return {}

    def _dbfs_move(self, params: Params) -> Params:
        source, source_local = self._dbfs_path(params, "source_path")
        destination, destination_local = self._dbfs_path(params, "destination_path")
        if not source_local.exists():
            raise self._not_found(source)
        if destination_local.exists():
            raise self._exists_error(destination)
        if source_local == self.dbfs_root or destination_local.is_relative_to(source_local):
            raise _invalid(f"Cannot move {source} into {destination}.")
        self._make_dirs(destination_local.parent)
        os.replace(source_local, destination_local)
        return {}

    def _dbfs_get_status(self, params: Params) -> Params:
        path, local = self._dbfs_path(params)
        if not local.exists():
            raise self._not_found(path)
        return self._file_info(path, local)

    def _dbfs_list(self, params: Params) -> Params:
        path, local = self._dbfs_path(params)
        if not local.exists():
            raise self._not_found(path)
        if not local.is_dir():
            return {"files": [self._file_info(path, local)]}
        prefix = path.rstrip("/")
        files = [
            self._file_info(f"{prefix}/{child.name}", child)
            for child in sorted(local.iterdir())
            if not child.name.endswith(PART_SUFFIX)
        ]
        return {"files": files} if files else {}

    def _dbfs_read(self, params: Params) -> Params:
        path, local = self._dbfs_path(params)
        if not local.exists():
            raise self._not_found(path)
        if local.is_dir():
            raise _invalid(f"Cannot read {path}: it is a directory.")
        offset = _int_param(params, "offset", 0)
        length = _int_param(params, "length", DEFAULT_READ_BYTES)
        assert offset is not None and length is not None
        if offset < 0 or length < 0:
            raise _invalid("offset and length must not be negative.")
        if length > MAX_BLOCK_BYTES:
            message = f"Cannot read more than {MAX_BLOCK_BYTES} bytes at a time, got {length}."
            raise ApiError(400, "MAX_READ_SIZE_EXCEEDED", message)
        with local.open("rb") as handle:
            handle.seek(offset)
            data = handle.read(length)
        return {"bytes_read": len(data), "data": base64.b64encode(data).decode()}

    # -- secrets ----------------------------------------------------------------------------

    def _secrets_create_scope(self, params: Params) -> Params:
        scope = _required_str(params, "scope")
        if not re.fullmatch(r"[\w.@-]{1,128}", scope):
            raise _invalid(f"Invalid scope name: {scope}")
        if scope in self.secrets:
            raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"Scope {scope} already exists!")
        self.secrets[scope] = {}
        return {}

    def _secrets_put(self, params: Params) -> Params:
        scope, key = _required_str(params, "scope"), _required_str(params, "key")
        if not re.fullmatch(r"[\w.-]{1,128}", key):
            raise _invalid(f"Invalid secret key: {key}")
        if scope not in self.secrets:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Scope {scope} does not exist!")
        text, raw = params.get("string_value"), params.get("bytes_value")
        if (text is None) == (raw is None):
            raise _invalid("Exactly one of string_value and bytes_value must be given.")
        if text is not None:
            if not isinstance(text, str):
                raise _invalid("string_value must be a string.")
            value = text
        else:
            value = _b64decode(raw, "bytes_value").decode(errors="replace")
        self.secrets[scope][key] = value
        return {}

    # -- clusters ---------------------------------------------------------------------------

    def _clusters_get(self, params: Params) -> Params:
        cluster_id = _required_str(params, "cluster_id")
        cluster = self.existing_clusters.get(cluster_id)
        if cluster is None:
            raise _invalid(f"Cluster {cluster_id} does not exist")
        return {"state": "RUNNING", **copy.deepcopy(cluster), "cluster_id": cluster_id}

    def _new_cluster_id(self) -> str:
        suffix = "".join(self._rng.choice(string.ascii_lowercase + string.digits) for _ in range(8))
        return f"{time.strftime('%m%d-%H%M%S')}-{suffix}"

    # -- jobs -------------------------------------------------------------------------------

    def _runs_submit(self, params: Params) -> Params:
        tasks = params.get("tasks")
        if not isinstance(tasks, list) or not tasks:
            raise _invalid("A run must have at least one task in tasks.")
        token = params.get("idempotency_token")
        if token is not None:
            if not isinstance(token, str) or len(token) > 64:
                raise _invalid("idempotency_token must be a string of at most 64 characters.")
            if token in self._idempotency:
                return {"run_id": self._idempotency[token]}
        timeout = _int_param(params, "timeout_seconds", 0)
        if timeout is None or timeout < 0:
            raise _invalid("timeout_seconds must not be negative.")
        run_name = params.get("run_name") or "Untitled"
        if not isinstance(run_name, str):
            raise _invalid("run_name must be a string.")
        keys: set[str] = set()
        for spec in tasks:
            self._validate_task(spec, keys)
        order = _execution_order(tasks)

        run_id, now = next(self._ids), _now_ms()
        run_tasks = [
            FakeTask(
                task_key=spec["task_key"],
                spec=copy.deepcopy(spec),
                run_id=next(self._ids),
                directory=self._scratch / f"run-{run_id}" / spec["task_key"],
                start_time=now,
            )
            for spec in tasks
        ]
        run = FakeRun(
            run_id=run_id,
            job_id=next(self._ids),
            run_name=run_name,
            body=copy.deepcopy(params),
            tasks=run_tasks,
            order=order,
            start_time=now,
            deadline=time.monotonic() + timeout if timeout else None,
        )
        self.runs[run_id] = run
        self.submitted.append(copy.deepcopy(params))
        if token is not None:
            self._idempotency[token] = run_id
        run.thread = threading.Thread(
            target=self._execute, args=(run,), daemon=True, name=f"fake-databricks-run-{run_id}"
        )
        run.thread.start()
        return {"run_id": run_id}

    def _validate_task(self, spec: Any, keys: set[str]) -> None:
        if not isinstance(spec, dict):
            raise _invalid("Each task must be an object.")
        key = spec.get("task_key")
        if not key:
            raise _invalid("Missing required field: task_key")
        if not isinstance(key, str) or not re.fullmatch(r"[\w-]{1,100}", key):
            raise _invalid(f"Invalid task_key {key!r}: letters, digits, '-' and '_' only.")
        if key in keys:
            raise _invalid(f"Task key {key} is not unique.")
        keys.add(key)
        kinds = [kind for kind in TASK_TYPES if spec.get(kind) is not None]
        if len(kinds) != 1:
            raise _invalid(f"Task {key} must have exactly one task type, got {kinds or 'none'}.")
        if kinds[0] != "python_wheel_task":
            raise _invalid(f"Task {key}: {kinds[0]} is not supported (python_wheel_task only).")
        _validate_wheel_task(key, spec["python_wheel_task"])
        computes = [name for name in COMPUTE_FIELDS if spec.get(name) is not None]
        if len(computes) != 1:
            raise _invalid(
                f"Task {key} must set exactly one of {', '.join(COMPUTE_FIELDS)}, got {computes}."
            )
        cluster = spec.get("new_cluster")
        if cluster is not None:
            if not isinstance(cluster, dict):
                raise _invalid(f"Task {key}: new_cluster must be an object.")
            if not cluster.get("spark_version"):
                raise _invalid(f"Task {key}: Missing required field: new_cluster.spark_version")
            env_vars = cluster.get("spark_env_vars", {})
            if not isinstance(env_vars, dict) or not all(
                isinstance(v, str) for v in env_vars.values()
            ):
                raise _invalid(f"Task {key}: spark_env_vars must map names to strings.")
        cluster_id = spec.get("existing_cluster_id")
        if cluster_id is not None and cluster_id not in self.existing_clusters:
            raise _invalid(f"Cluster {cluster_id} does not exist")
        libraries = spec.get("libraries", [])
        if not isinstance(libraries, list) or not all(
            isinstance(lib, dict) and len(lib) == 1 and set(lib) <= LIBRARY_KINDS
            for lib in libraries
        ):
            raise _invalid(f"Task {key}: each library must have exactly one of {LIBRARY_KINDS}.")
        timeout = _int_param(spec, "timeout_seconds", 0)
        if timeout is None or timeout < 0:
            raise _invalid(f"Task {key}: timeout_seconds must not be negative.")

    def _runs_get(self, params: Params) -> Params:
        return self._run_json(self._run(params))

    def _runs_cancel(self, params: Params) -> Params:
        run = self._run(params)
        if not run.state.terminal:
            run.cancel_requested.set()  # asynchronous, as documented; a finished run is a no-op
        return {}

    def _run(self, params: Params) -> FakeRun:
        run_id = _int_param(params, "run_id")
        if run_id is None:
            raise _invalid("Missing required field: run_id")
        run = self.runs.get(run_id)
        if run is None:
            raise _invalid(f"Run {run_id} does not exist.")
        return run

    def _page_url(self, job_id: int, run_id: int) -> str:
        return f"{self.url}/?o={self.workspace_id}#job/{job_id}/run/{run_id}"

    def _run_json(self, run: FakeRun) -> Params:
        body: Params = {
            "job_id": run.job_id,
            "run_id": run.run_id,
            "number_in_job": run.run_id,
            "original_attempt_run_id": run.run_id,
            "attempt_number": 0,
            "creator_user_name": self.user_name,
            "run_name": run.run_name,
            "run_page_url": self._page_url(run.job_id, run.run_id),
            "run_type": "SUBMIT_RUN",
            "trigger": "ONE_TIME",
            "start_time": run.start_time,
            "end_time": run.end_time,
            "setup_duration": 0,  # 0 for multitask runs: see run_duration
            "execution_duration": 0,
            "cleanup_duration": 0,
            "state": run.state.state_json(),
            "status": run.state.status_json(),
            "tasks": [self._task_json(run, task) for task in run.tasks],
        }
        if run.end_time:
            body["run_duration"] = run.end_time - run.start_time
        return body

    def _task_json(self, run: FakeRun, task: FakeTask) -> Params:
        body: Params = {
            **copy.deepcopy(task.spec),  # as submitted: secret references stay references
            "run_id": task.run_id,
            "attempt_number": 0,
            "run_page_url": self._page_url(run.job_id, task.run_id),
            "start_time": task.start_time,
            "end_time": task.end_time,
            "state": task.state.state_json(),
            "status": task.state.status_json(),
        }
        if task.execution_start:
            body["setup_duration"] = task.execution_start - task.start_time
        if task.execution_end:
            body["execution_duration"] = task.execution_end - task.execution_start
        if task.end_time and task.execution_end:
            body["cleanup_duration"] = task.end_time - task.execution_end
        if task.cluster_id is not None:
            body["cluster_instance"] = {"cluster_id": task.cluster_id}
        return body

    # -- running a run ----------------------------------------------------------------------

    def _execute(self, run: FakeRun) -> None:
        try:
            for key in run.order:
                self._execute_task(run, run.task(key))
        except Exception as error:  # a bug here must end the run, not hang the test
            with self._cond:
                message = f"Internal error in the fake: {error!r}"
                run.state.settle(
                    Outcome("INTERNAL_ERROR", "FAILED", message, "INTERNAL_ERROR", "INTERNAL_ERROR")
                )
                run.end_time = _now_ms()
                self._cond.notify_all()
            raise
        with self._cond:
            run.state.move("TERMINATING")
            self._cond.notify_all()
        if not self._stopping:
            time.sleep(self.cluster_stop_seconds)
        with self._cond:
            self._settle_run(run)
            run.end_time = _now_ms()
            self._cond.notify_all()

    def _settle_run(self, run: FakeRun) -> None:
        results = [task.state.result_state for task in run.tasks]
        broken = [task for task in run.tasks if task.state.life_cycle_state == "INTERNAL_ERROR"]
        failed = [task for task in run.tasks if task.state.result_state == "FAILED"]
        if broken:
            assert broken[0].state.outcome is not None
            run.state.settle(broken[0].state.outcome)
        elif "CANCELED" in results:
            run.state.settle(CANCELED)
        elif "TIMEDOUT" in results:
            run.state.settle(TIMED_OUT)
        elif failed:
            message = f"Task {failed[0].task_key} failed with message: {WORKLOAD_FAILED}."
            if "UPSTREAM_FAILED" in results:
                message += " This caused all downstream tasks to get skipped."
            run.state.settle(FAILED._replace(message=message))
        else:
            run.state.settle(SUCCEEDED)

    def _settle_task(self, task: FakeTask, outcome: Outcome) -> None:
        with self._cond:
            task.state.settle(outcome)
            task.end_time = _now_ms()
            self._cond.notify_all()

    def _execute_task(self, run: FakeRun, task: FakeTask) -> None:
        with self._cond:
            upstream = [run.task(dep["task_key"]) for dep in task.spec.get("depends_on") or []]
            results = {dep.state.result_state for dep in upstream}
        if results - {"SUCCESS"}:
            if results & {"CANCELED", "UPSTREAM_CANCELED", "TIMEDOUT"}:
                result, message = "UPSTREAM_CANCELED", "Upstream task(s) were cancelled."
            else:
                result, message = "UPSTREAM_FAILED", "Upstream task(s) failed."
            outcome = Outcome("TERMINATED", result, message, "SKIPPED", "CLIENT_ERROR")
            self._settle_task(task, outcome)
            return
        task_timeout = task.spec.get("timeout_seconds") or 0
        deadlines = [run.deadline, time.monotonic() + task_timeout if task_timeout else None]
        deadline = min((d for d in deadlines if d is not None), default=None)

        # PENDING: the cluster and the execution context are being prepared.
        stop = self._interrupted(run, self.cluster_start_seconds, deadline)
        if stop is not None:
            self._settle_task(task, CANCELED if stop == "cancel" else TIMED_OUT)
            return
        try:
            with self._cond:
                env = self._task_env(task)
        except ClusterError as error:
            outcome = Outcome("INTERNAL_ERROR", "FAILED", error.message, error.code, "CLIENT_ERROR")
            self._settle_task(task, outcome)
            return

        process = self._launch(task, env)
        if process is None:
            self._settle_task(task, FAILED)
            return
        with self._cond:
            task.process = process
            task.execution_start = _now_ms()
            task.state.move("RUNNING")
            run.state.move("RUNNING")
            self._cond.notify_all()

        stop = self._watch(run, task, process, deadline)
        if stop is not None:
            with self._cond:
                task.state.move("TERMINATING")
                if stop == "cancel":
                    run.state.move("TERMINATING")
                self._cond.notify_all()
            self._kill(process)
        exit_code = process.wait()
        _signal_group(process.pid, signal.SIGKILL)  # the execution context goes with the task
        with self._cond:
            task.execution_end = _now_ms()
            task.state.move("TERMINATING")
            self._cond.notify_all()
        self._deliver_logs(task)
        if stop is not None:
            self._settle_task(task, CANCELED if stop == "cancel" else TIMED_OUT)
        else:
            self._settle_task(task, SUCCEEDED if exit_code == 0 else FAILED)

    def _interrupted(self, run: FakeRun, seconds: float, deadline: float | None) -> str | None:
        """Wait `seconds`; "cancel" or "timeout" if that cut the wait short, else None."""
        until = time.monotonic() + seconds
        if deadline is not None:
            until = min(until, deadline)
        if run.cancel_requested.wait(max(0.0, until - time.monotonic())):
            return "cancel"
        if deadline is not None and time.monotonic() >= deadline:
            return "timeout"
        return None

    def _task_env(self, task: FakeTask) -> dict[str, str]:
        """The process environment: `base_env`, the cluster's `spark_env_vars` with secret
        references resolved, and the DBFS mount."""
        spec = task.spec
        cluster_id = spec.get("existing_cluster_id")
        if cluster_id is not None:
            cluster = self.existing_clusters.get(cluster_id)
            if cluster is None:
                raise ClusterError("RESOURCE_NOT_FOUND", f"Cluster {cluster_id} does not exist")
            task.cluster_id = cluster_id
            env_vars = cluster.get("spark_env_vars") or {}
        elif spec.get("new_cluster") is not None:
            task.cluster_id = self._new_cluster_id()
            env_vars = spec["new_cluster"].get("spark_env_vars") or {}
        else:  # serverless environment_key: no cluster of its own
            env_vars = {}
        env = dict(self.base_env)
        for name, value in env_vars.items():
            env[name] = self._resolve(name, value)
        env["SPOTIFY_DBFS_MOUNT"] = str(self.dbfs_root)
        return env

    def _resolve(self, name: str, value: str) -> str:
        match = SECRET_REFERENCE.fullmatch(value)
        if match is None:
            return value
        scope, key = match.groups()
        secret = self.secrets.get(scope, {}).get(key)
        if secret is None:
            raise ClusterError(
                "INVALID_CLUSTER_REQUEST",
                f"Cluster failed to start: secret reference {value} in spark_env_vars {name} "
                "does not exist.",
            )
        return secret

    def _launch(self, task: FakeTask, env: dict[str, str]) -> subprocess.Popen[bytes] | None:
        wheel = task.spec["python_wheel_task"]
        script = self.bin_dir / wheel["entry_point"]
        named = [f"--{k}={v}" for k, v in (wheel.get("named_parameters") or {}).items()]
        cwd = task.directory / "cwd"
        cwd.mkdir(parents=True, exist_ok=True)
        with (
            (task.directory / "stdout").open("wb") as out,
            (task.directory / "stderr").open("wb") as err,
        ):
            try:
                return subprocess.Popen(
                    [str(script), *(wheel.get("parameters") or named)],
                    cwd=cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,  # its own process group, killed as a whole
                )
            except OSError as error:
                entry, package = wheel["entry_point"], wheel["package_name"]
                err.write(f"Cannot run entry point {entry} of {package}: {error}\n".encode())
                return None

    def _watch(
        self,
        run: FakeRun,
        task: FakeTask,
        process: subprocess.Popen[bytes],
        deadline: float | None,
    ) -> str | None:
        """Until the process exits: None; or "cancel" / "timeout" while it still runs."""
        next_delivery = time.monotonic() + self.log_delivery_seconds
        while process.poll() is None:
            if run.cancel_requested.wait(0.05):
                return "cancel"
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return "timeout"
            if now >= next_delivery:
                self._deliver_logs(task)
                next_delivery = now + self.log_delivery_seconds
        return None

    def _kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGTERM the process group; SIGKILL whatever is left after `kill_grace_seconds`."""
        _signal_group(process.pid, signal.SIGTERM)
        until = time.monotonic() + (0.0 if self._stopping else self.kill_grace_seconds)
        while time.monotonic() < until:
            if process.poll() is not None and not _group_alive(process.pid):
                return
            time.sleep(0.05)
        _signal_group(process.pid, signal.SIGKILL)

    def _deliver_logs(self, task: FakeTask) -> None:
        """Copy the driver's stdout/stderr to the cluster's DBFS log destination, if any."""
        with self._cond:
            if task.cluster_id is None:
                return
            if task.spec.get("new_cluster") is not None:
                conf = task.spec["new_cluster"].get("cluster_log_conf")
            else:
                conf = self.existing_clusters.get(task.cluster_id, {}).get("cluster_log_conf")
            destination = ((conf or {}).get("dbfs") or {}).get("destination")
            if not destination:
                return
            try:
                _, local = self._dbfs_path({"path": destination})
                target = local / task.cluster_id / "driver"
                self._make_dirs(target)
            except ApiError:
                return
            for name in ("stdout", "stderr"):
                source = task.directory / name
                if source.exists():
                    _atomic_write(target / name, source.read_bytes())


@contextlib.contextmanager
def serve(fake: FakeDatabricks) -> Iterator[str]:
    """Serve `fake` for the duration of the block; yields its URL."""
    url = fake.start()
    try:
        yield url
    finally:
        fake.stop()


# -- helpers ---------------------------------------------------------------------------------


def _required_str(params: Params, name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise _invalid(f"Missing required field: {name}")
    if not isinstance(value, str):
        raise _invalid(f"Field {name} must be a string.")
    return value


def _int_param(params: Params, name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    raise _invalid(f"Field {name} must be an integer.")


def _bool_param(params: Params, name: str) -> bool:
    value = params.get(name, False)
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise _invalid(f"Field {name} must be a boolean.")


def _b64decode(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise _invalid(f"Field {name} must be a base64 string.")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as error:
        raise _invalid(f"Field {name} is not valid base64.") from error


def _block(value: Any, name: str) -> bytes:
    data = _b64decode(value or "", name)
    if len(data) > MAX_BLOCK_BYTES:
        message = f"The block of data exceeds the limit of {MAX_BLOCK_BYTES} bytes."
        raise ApiError(400, "MAX_BLOCK_SIZE_EXCEEDED", message)
    return data


def _atomic_write(path: Path, data: bytes) -> None:
    part = path.with_name(f".{path.name}.{uuid.uuid4().hex}{PART_SUFFIX}")
    part.write_bytes(data)
    os.replace(part, path)


def _validate_wheel_task(key: str, wheel: Any) -> None:
    if not isinstance(wheel, dict):
        raise _invalid(f"Task {key}: python_wheel_task must be an object.")
    for name in ("package_name", "entry_point"):
        if not isinstance(wheel.get(name), str) or not wheel[name]:
            raise _invalid(f"Task {key}: Missing required field: python_wheel_task.{name}")
    if not re.fullmatch(r"[\w.-]+", wheel["entry_point"]) or wheel["entry_point"] in (".", ".."):
        raise _invalid(f"Task {key}: invalid entry_point {wheel['entry_point']!r}.")
    parameters, named = wheel.get("parameters"), wheel.get("named_parameters")
    if parameters and named:
        raise _invalid(f"Task {key}: set parameters or named_parameters, not both.")
    if parameters is not None and (
        not isinstance(parameters, list) or not all(isinstance(p, str) for p in parameters)
    ):
        raise _invalid(f"Task {key}: python_wheel_task.parameters must be a list of strings.")
    if named is not None and (
        not isinstance(named, dict) or not all(isinstance(v, str) for v in named.values())
    ):
        raise _invalid(f"Task {key}: named_parameters must map names to strings.")


def _execution_order(tasks: list[Params]) -> list[str]:
    """Task keys in submitted order, each after the tasks it depends on."""
    keys = [task["task_key"] for task in tasks]
    deps: dict[str, list[str]] = {}
    for task in tasks:
        depends_on = task.get("depends_on") or []
        if not isinstance(depends_on, list) or not all(
            isinstance(dep, dict) and dep.get("task_key") in keys for dep in depends_on
        ):
            raise _invalid(f"Task {task['task_key']}: depends_on names an unknown task.")
        deps[task["task_key"]] = [dep["task_key"] for dep in depends_on]
    order: list[str] = []
    while len(order) < len(keys):
        ready = [k for k in keys if k not in order and all(d in order for d in deps[k])]
        if not ready:
            raise _invalid("The tasks' depends_on form a cycle.")
        order.append(ready[0])
    return order


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _handler(fake: FakeDatabricks) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, body = fake.answer(method, split.path, query, raw, headers)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def do_PATCH(self) -> None:
            self._serve("PATCH")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def log_message(self, *args: Any) -> None:  # quiet
            pass

    return Handler
