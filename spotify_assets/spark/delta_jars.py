"""Delta Lake's jars: fetched once from Maven Central during set-up, then used offline.

pyspark does not ship Delta's jars. `configure_spark_with_delta_pip` would make Spark resolve them
through Ivy at every session start, which needs the network and drags in jars Spark already has.
Instead set-up downloads exactly the two jars Delta needs (`delta-spark_<spark>_2.13` and
`delta-storage`, at the version of the installed `delta-spark` Python package), checks their SHA-1
against Maven Central's, and the session puts them on `spark.jars`.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

SCALA = "2.13"
FIX_COMMAND = "make setup  (or: spotify-lakehouse fetch-jars)"


class DeltaJarsMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class Artifact:
    group: str
    name: str
    version: str

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}.jar"

    def url(self, repository: str) -> str:
        group = self.group.replace(".", "/")
        return f"{repository}/{group}/{self.name}/{self.version}/{self.filename}"


def delta_artifacts() -> list[Artifact]:
    import pyspark

    delta_version = metadata.version("delta-spark")
    spark_minor = ".".join(pyspark.__version__.split(".")[:2])
    return [
        Artifact("io.delta", f"delta-spark_{spark_minor}_{SCALA}", delta_version),
        Artifact("io.delta", "delta-storage", delta_version),
    ]


def jar_paths(jars_dir: Path) -> list[Path]:
    """The cached jars, or a DeltaJarsMissing that names the command which fetches them."""
    paths = [jars_dir / a.filename for a in delta_artifacts()]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise DeltaJarsMissing(
            f"Delta Lake jars not found in {jars_dir}: {', '.join(missing)}. "
            f"Fetch them once with: {FIX_COMMAND}"
        )
    return paths


def _download(url: str, timeout: float = 60) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or 0)
        chunks, done = [], 0
        while chunk := response.read(1 << 20):
            chunks.append(chunk)
            done += len(chunk)
            if total and sys.stderr.isatty():
                sys.stderr.write(f"\r  {url.rsplit('/', 1)[-1]}: {100 * done // total}%")
        if total and sys.stderr.isatty():
            sys.stderr.write("\n")
        return b"".join(chunks)


def fetch(jars_dir: Path, repository: str, echo=print) -> list[Path]:
    """Download the missing jars into `jars_dir` (atomically, SHA-1 checked). Idempotent."""
    jars_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for artifact in delta_artifacts():
        target = jars_dir / artifact.filename
        paths.append(target)
        if target.is_file():
            continue
        url = artifact.url(repository)
        echo(f"Fetching {url}")
        try:
            data = _download(url)
            expected = _download(url + ".sha1").decode().split()[0].strip()
        except OSError as exc:
            raise DeltaJarsMissing(
                f"could not download {url}: {exc}. Set MAVEN_REPOSITORY_URL to a reachable "
                f"Maven mirror, or copy {artifact.filename} into {jars_dir} by hand."
            ) from exc
        actual = hashlib.sha1(data).hexdigest()
        if actual != expected:
            raise DeltaJarsMissing(f"checksum mismatch for {url}: {actual} != {expected}")
        fd, tmp = tempfile.mkstemp(dir=jars_dir, suffix=".part")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    return paths
