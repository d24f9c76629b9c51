"""Missing Java or Delta jars give an error that names the command which fixes it."""

from __future__ import annotations

import pytest

from spotify_assets.spark import delta_jars
from spotify_assets.spark.session import JavaMissing, check_java


def test_missing_delta_jars_name_the_fix(tmp_path):
    with pytest.raises(delta_jars.DeltaJarsMissing) as excinfo:
        delta_jars.jar_paths(tmp_path)
    assert str(excinfo.value) == (
        f"Delta Lake jars not found in {tmp_path}: delta-spark_4.2_2.13-4.4.0.jar, "
        "delta-storage-4.4.0.jar. Fetch them once with: make setup  (or: spotify-lakehouse "
        "fetch-jars)"
    )


def test_jars_match_the_installed_delta_and_spark_versions():
    assert [a.filename for a in delta_jars.delta_artifacts()] == [
        "delta-spark_4.2_2.13-4.4.0.jar",
        "delta-storage-4.4.0.jar",
    ]
    assert delta_jars.delta_artifacts()[0].url("https://repo1.maven.org/maven2") == (
        "https://repo1.maven.org/maven2/io/delta/delta-spark_4.2_2.13/4.4.0/"
        "delta-spark_4.2_2.13-4.4.0.jar"
    )


def test_missing_java_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JavaMissing) as excinfo:
        check_java()
    assert str(excinfo.value) == (
        "Spark needs Java 17+, and `java` is not on PATH: install Java 17 or later, e.g. "
        "`apt-get install -y openjdk-17-jre-headless`"
    )


def test_old_java_is_refused(monkeypatch, tmp_path):
    fake = tmp_path / "java"
    fake.write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\" 2019-01-15' >&2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JavaMissing, match=r"Spark 4 needs Java 17\+, found Java 11"):
        check_java()
