"""The storage layer: the same file operations on the local disk and on Azurite (the Blob API
ADLS Gen2 also serves), and the credentials Azure and Spark are given."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from azure.storage.blob import BlobServiceClient

from spotify_assets.catalog import SOURCE_BY_ENTITY
from spotify_assets.ingestion import watermarks
from spotify_assets.ingestion.staging import stage
from spotify_assets.lake import storage
from spotify_assets.lake.storage import AzureCredentials
from spotify_assets.transforms import schema_history
from spotify_assets_tests.azurite_server import azurite

USERS = SOURCE_BY_ENTITY["dim_user"]


@pytest.fixture(scope="module")
def azurite_connection():
    with azurite() as connection:
        BlobServiceClient.from_connection_string(connection).create_container("lake")
        yield connection


@pytest.fixture(params=["local", "azurite"])
def root(request, tmp_path, monkeypatch):
    """A lake root on the local disk, or in Azurite's `lake` container."""
    if request.param == "local":
        return str(tmp_path / "lake")
    connection = request.getfixturevalue("azurite_connection")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection)
    return f"abfs://lake/{tmp_path.name}"


def test_files_round_trip_wherever_the_lake_is(root):
    doc = storage.join(root, "bronze", "_watermarks", "dim_user.json")
    assert not storage.exists(doc)
    with pytest.raises(FileNotFoundError):
        storage.read_text(doc)
    storage.write_text_atomically(doc, '{"a": 1}')
    storage.write_text_atomically(doc, '{"a": 2}')  # replaced whole
    assert (storage.exists(doc), storage.read_text(doc)) == (True, '{"a": 2}')
    kept = doc + ".corrupt-1"
    storage.move(doc, kept)
    assert (storage.exists(doc), storage.read_text(kept)) == (False, '{"a": 2}')
    storage.delete(kept)
    storage.delete(kept)  # absent: nothing to do
    assert not storage.exists(kept)

    # A staged Parquet file streams in and reads back; the staging folder goes whole.
    schema = pa.schema([("user_id", pa.int64()), ("name", pa.string())])
    batch = pa.record_batch([pa.array([1, 2]), pa.array(["Åsa", "Bo"])], schema=schema)
    staged = storage.join(root, "_staging", "dim_user", "run-1", "window.parquet")
    assert stage(iter([batch]), schema, staged) == 2
    fs, path = storage.filesystem(staged)
    with fs.open(path, "rb") as f:
        assert pq.read_table(io.BytesIO(f.read())).to_pylist() == [
            {"user_id": 1, "name": "Åsa"},
            {"user_id": 2, "name": "Bo"},
        ]
    storage.delete_tree(storage.join(root, "_staging", "dim_user", "run-1"))
    assert not storage.exists(staged)


def test_watermark_documents_and_schema_histories_live_beside_the_tables(root):
    path = watermarks.document_path(root, USERS)
    assert path == f"{root}/bronze/_watermarks/dim_user.json"
    doc = watermarks.load(path, USERS)
    doc.high_watermark = "2026-01-03T12:00:00"
    watermarks.save(path, doc)
    assert watermarks.load(path, USERS).high_watermark == "2026-01-03T12:00:00"
    storage.write_text_atomically(path, "{not json")
    with pytest.raises(watermarks.WatermarkDocumentCorrupt, match=f"document {path} of DimUser"):
        watermarks.load(path, USERS)
    kept = watermarks.repair(path, USERS, "2026-01-03T12:00:00")
    assert kept is not None and storage.read_text(kept) == "{not json"
    assert watermarks.load(path, USERS).high_watermark == "2026-01-03T12:00:00"

    history_path = schema_history.history_path(root, "dim_user")
    history = schema_history.load(history_path, "dim_user")
    history.add({"popularity": "int"}, "columns added")
    schema_history.save(history_path, history)
    assert schema_history.load(history_path, "dim_user") == history


def test_each_credential_reaches_adlfs_and_spark_and_never_shows():
    secret = "c2VjcmV0LWtleS1ub3QtZm9yLXlvdXItZXllcw=="
    key = AzureCredentials.from_env(
        {"AZURE_STORAGE_ACCOUNT_NAME": "acct", "AZURE_STORAGE_ACCOUNT_KEY": secret}
    )
    assert key.kind == "account key"
    assert key.adlfs_options() == {"account_name": "acct", "account_key": secret}
    assert key.spark_conf("acct") == {"fs.azure.account.key.acct.dfs.core.windows.net": secret}
    assert secret not in repr(key) and secret not in str(key)

    sas = AzureCredentials.from_env({"AZURE_STORAGE_SAS_TOKEN": "?sv=2025&sig=abc"})
    assert (sas.kind, sas.adlfs_options()) == ("SAS token", {"sas_token": "sv=2025&sig=abc"})
    assert sas.spark_conf("acct")["fs.azure.sas.fixed.token.acct.dfs.core.windows.net"] == (
        "sv=2025&sig=abc"
    )

    principal = AzureCredentials.from_env(
        {"AZURE_TENANT_ID": "t-1", "AZURE_CLIENT_ID": "c-1", "AZURE_CLIENT_SECRET": secret}
    )
    assert principal.kind == "service principal"
    assert principal.adlfs_options() == {
        "tenant_id": "t-1", "client_id": "c-1", "client_secret": secret
    }  # fmt: skip
    conf = principal.spark_conf("acct")
    host = "acct.dfs.core.windows.net"
    assert conf[f"fs.azure.account.auth.type.{host}"] == "OAuth"
    assert conf[f"fs.azure.account.oauth2.client.endpoint.{host}"] == (
        "https://login.microsoftonline.com/t-1/oauth2/token"
    )
    assert secret not in repr(principal)

    # Nothing configured: a managed identity / Azure CLI login, through DefaultAzureCredential.
    managed = AzureCredentials.from_env({"AZURE_STORAGE_ACCOUNT_NAME": "acct"})
    assert managed.kind == "DefaultAzureCredential"
    assert managed.adlfs_options() == {"account_name": "acct", "anon": False}
    assert managed.spark_conf("acct")[f"fs.azure.account.oauth.provider.type.{host}"] == (
        "org.apache.hadoop.fs.azurebfs.oauth2.MsiTokenProvider"
    )
    url = "abfss://lake@acct.dfs.core.windows.net/spotify"
    assert (storage.is_azure(url), storage.account_of(url)) == (True, "acct")
    assert not storage.is_azure("/data/lake")


def test_a_local_spark_gets_the_same_credentials_for_an_abfss_lake(monkeypatch):
    from spotify_assets.spark.session import storage_conf

    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", "a2V5LW9mLXRoZS1hY2NvdW50")
    lake = "abfss://lake@acct.dfs.core.windows.net/spotify"
    assert storage_conf(lake) == {
        "fs.azure.account.key.acct.dfs.core.windows.net": "a2V5LW9mLXRoZS1hY2NvdW50"
    }
    assert storage_conf("/data/lake") == {}


def test_the_storage_account_comes_from_the_url_and_a_different_one_is_refused():
    url = "abfss://lake@acct.dfs.core.windows.net/spotify/bronze"
    fs, path = storage.filesystem(url, AzureCredentials(account_key="a2V5"))
    assert (fs.account_name, path) == ("acct", "lake/spotify/bronze")
    other = AzureCredentials(account_name="other", account_key="a2V5")
    with pytest.raises(ValueError) as error:
        storage.filesystem(url, other)
    assert str(error.value) == (
        f"{url} is in storage account 'acct', but AZURE_STORAGE_ACCOUNT_NAME says 'other'"
    )
    assert storage.account_of("abfs://lake/spotify") == ""


def test_a_delta_table_is_read_on_the_driver_wherever_the_lake_is(root, spark, tmp_path):
    """delta-rs gets the storage layer's credentials, so a lake on ADLS reads as one on disk."""
    from datetime import datetime

    from spotify_assets.lake import delta

    written = tmp_path / "written"
    rows = [(1, datetime(2026, 1, 2, 8)), (2, datetime(2026, 1, 2, 9)), (3, datetime(2026, 1, 5))]
    spark.createDataFrame(rows, "user_id INT, updated_at TIMESTAMP").write.format("delta").save(
        str(written)
    )
    table = storage.join(root, "bronze", "dim_user")
    fs, path = storage.filesystem(table)
    for file in sorted(p for p in written.rglob("*") if p.is_file()):
        target = f"{path}/{file.relative_to(written).as_posix()}"
        fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        fs.pipe_file(target, file.read_bytes())
    window = delta.Window("updated_at", datetime(2026, 1, 2), datetime(2026, 1, 3))
    pairs = delta.read_arrow(table, ["user_id"], window)
    assert pairs is not None and sorted(pairs.column("user_id").to_pylist()) == [1, 2]
    assert (delta.exists(table), delta.table_version(table), delta.row_count(table)) == (True, 0, 3)
