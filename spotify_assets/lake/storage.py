"""The files the Dagster process reads and writes itself, wherever the lake is.

Watermark documents, schema histories, as-of records, raw API answers and staging files live
beside the Delta tables, under LAKEHOUSE_ROOT: a local folder, or `abfss://container@account.
dfs.core.windows.net/path` on ADLS Gen2 (also `abfs://`, `az://`). Every such file goes through
this module, on fsspec: the local file system, or adlfs, which speaks the Blob API that ADLS Gen2
serves over the same data (and Azurite too, for tests).

Azure credentials come from the environment, in this order: AZURE_STORAGE_CONNECTION_STRING
(Azurite, development), an account key (AZURE_STORAGE_ACCOUNT_KEY), a SAS token
(AZURE_STORAGE_SAS_TOKEN), a service principal (AZURE_TENANT_ID, AZURE_CLIENT_ID,
AZURE_CLIENT_SECRET), else DefaultAzureCredential: a managed identity, the Azure CLI's login,
workload identity (the credential-less access the original had through its Access Connector).
Spark gets the same credentials as Hadoop's ABFS options (`spark_conf`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlsplit

AZURE_SCHEMES = ("abfs", "abfss", "az")


def is_azure(location: str) -> bool:
    return urlsplit(str(location)).scheme in AZURE_SCHEMES


def join(base: str, *parts: str) -> str:
    """`base/part/...` for a folder or a URL alike."""
    return "/".join([str(base).rstrip("/"), *(p.strip("/") for p in parts)])


@dataclass(frozen=True)
class AzureCredentials:
    """How this process reaches Azure storage; never shown (repr hides every secret)."""

    connection_string: str = ""
    account_name: str = ""
    account_key: str = ""
    sas_token: str = ""
    tenant_id: str = ""
    client_id: str = ""
    client_secret: str = ""

    def __repr__(self) -> str:
        return f"AzureCredentials(kind={self.kind!r}, account_name={self.account_name!r})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AzureCredentials:
        env = os.environ if env is None else env
        get = lambda name: env.get(name, "").strip()  # noqa: E731
        return cls(
            connection_string=get("AZURE_STORAGE_CONNECTION_STRING"),
            account_name=get("AZURE_STORAGE_ACCOUNT_NAME"),
            account_key=get("AZURE_STORAGE_ACCOUNT_KEY"),
            sas_token=get("AZURE_STORAGE_SAS_TOKEN").lstrip("?"),
            tenant_id=get("AZURE_TENANT_ID"),
            client_id=get("AZURE_CLIENT_ID"),
            client_secret=get("AZURE_CLIENT_SECRET"),
        )

    @property
    def kind(self) -> str:
        if self.connection_string:
            return "connection string"
        if self.account_key:
            return "account key"
        if self.sas_token:
            return "SAS token"
        if self.tenant_id and self.client_id and self.client_secret:
            return "service principal"
        return "DefaultAzureCredential"

    def adlfs_options(self) -> dict[str, Any]:
        """AzureBlobFileSystem's arguments (the account, if not given, comes from the URL)."""
        account = {"account_name": self.account_name} if self.account_name else {}
        kind = self.kind
        if kind == "connection string":
            return {"connection_string": self.connection_string}
        if kind == "account key":
            return {**account, "account_key": self.account_key}
        if kind == "SAS token":
            return {**account, "sas_token": self.sas_token}
        if kind == "service principal":
            return {
                **account,
                "tenant_id": self.tenant_id,
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            }
        return {**account, "anon": False}  # adlfs then asks DefaultAzureCredential

    def spark_conf(self, account: str) -> dict[str, str]:
        """Hadoop ABFS options giving Spark the same access to `account` (needs hadoop-azure on
        the local engine; Databricks and most Spark services have it)."""
        host = f"{account}.dfs.core.windows.net"
        kind = self.kind
        if kind == "account key":
            return {f"fs.azure.account.key.{host}": self.account_key}
        if kind == "SAS token":
            return {
                f"fs.azure.account.auth.type.{host}": "SAS",
                f"fs.azure.sas.token.provider.type.{host}": (
                    "org.apache.hadoop.fs.azurebfs.sas.FixedSASTokenProvider"
                ),
                f"fs.azure.sas.fixed.token.{host}": self.sas_token,
            }
        if kind == "service principal":
            return {
                f"fs.azure.account.auth.type.{host}": "OAuth",
                f"fs.azure.account.oauth.provider.type.{host}": (
                    "org.apache.hadoop.fs.azurebfs.oauth2.ClientCredsTokenProvider"
                ),
                f"fs.azure.account.oauth2.client.id.{host}": self.client_id,
                f"fs.azure.account.oauth2.client.secret.{host}": self.client_secret,
                f"fs.azure.account.oauth2.client.endpoint.{host}": (
                    f"https://login.microsoftonline.com/{self.tenant_id}/oauth2/token"
                ),
            }
        if kind == "DefaultAzureCredential":  # a managed identity on the cluster or VM
            return {
                f"fs.azure.account.auth.type.{host}": "OAuth",
                f"fs.azure.account.oauth.provider.type.{host}": (
                    "org.apache.hadoop.fs.azurebfs.oauth2.MsiTokenProvider"
                ),
            }
        return {}  # a connection string is Azurite's: Spark does not reach it through ABFS


def delta_rs_options(location: str, credentials: AzureCredentials | None = None) -> dict[str, str]:
    """delta-rs' `storage_options` for a table at `location` (object_store's Azure keys): the
    same credentials the file system and Spark get. {} for a local folder."""
    if not is_azure(location):
        return {}
    creds = credentials or AzureCredentials.from_env()
    account = account_of(location) or creds.account_name
    options = {"azure_storage_account_name": account} if account else {}
    kind = creds.kind
    if kind == "connection string":  # Azurite's: its account, key and endpoint
        fields = dict(
            part.split("=", 1) for part in creds.connection_string.strip(";").split(";") if part
        )
        options["azure_storage_account_name"] = fields.get("AccountName", account)
        options["azure_storage_account_key"] = fields.get("AccountKey", "")
        if "BlobEndpoint" in fields:
            options["azure_storage_endpoint"] = fields["BlobEndpoint"]
            options["azure_allow_http"] = str(fields["BlobEndpoint"].startswith("http:")).lower()
    elif kind == "account key":
        options["azure_storage_account_key"] = creds.account_key
    elif kind == "SAS token":
        options["azure_storage_sas_key"] = creds.sas_token
    elif kind == "service principal":
        options.update(
            azure_tenant_id=creds.tenant_id,
            azure_client_id=creds.client_id,
            azure_client_secret=creds.client_secret,
        )
    return options  # else object_store's own chain: a managed identity, workload identity


def account_of(location: str) -> str:
    """The storage account of an `abfss://container@account.dfs.core.windows.net/...` URL; ""
    for `abfs://container/path` (the account then comes from the credentials: Azurite)."""
    parts = urlsplit(location)
    if "@" not in parts.netloc:
        return ""
    return (parts.hostname or "").split(".", 1)[0]


def filesystem(location: str, credentials: AzureCredentials | None = None) -> tuple[Any, str]:
    """The fsspec file system holding `location`, and the path within it."""
    import fsspec

    location = str(location)
    if not is_azure(location):
        return fsspec.filesystem("file"), location
    from adlfs import AzureBlobFileSystem

    credentials = credentials or AzureCredentials.from_env()
    options = credentials.adlfs_options()
    account = account_of(location)
    if account and "connection_string" not in options:
        if options.get("account_name", account) != account:
            raise ValueError(
                f"{location} is in storage account {account!r}, but AZURE_STORAGE_ACCOUNT_NAME "
                f"says {options['account_name']!r}"
            )
        options["account_name"] = account
    fs = AzureBlobFileSystem(**options, skip_instance_cache=False)
    return fs, fs._strip_protocol(location)


def exists(location: str) -> bool:
    fs, path = filesystem(location)
    return bool(fs.exists(path))


def list_names(location: str) -> list[str]:
    """The names of the entries of a folder; [] when there is no such folder."""
    fs, path = filesystem(location)
    try:
        entries = fs.ls(path, detail=False)
    except FileNotFoundError:
        return []
    return [str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries]


def read_text(location: str) -> str:
    """The file's text; FileNotFoundError when there is none."""
    fs, path = filesystem(location)
    with fs.open(path, "rb") as f:
        return f.read().decode("utf-8")


def read_parquet(location: str) -> Any:
    """A Parquet file as an Arrow table (a small one: it is read whole into memory)."""
    import pyarrow.parquet as pq

    fs, path = filesystem(location)
    with fs.open(path, "rb") as f:
        return pq.read_table(f)


def write_text_atomically(location: str, text: str) -> None:
    """Readers see the old content or the new one, never a partial file: on disk a new file
    renamed over the old; on Azure a single upload, which the service commits whole."""
    fs, path = filesystem(location)
    if is_azure(str(location)):
        fs.pipe_file(path, text.encode("utf-8"))
        return
    fs.makedirs(fs._parent(path), exist_ok=True)
    tmp = f"{fs._parent(path)}/.{os.path.basename(path)}.{uuid.uuid4().hex}.part"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def move(source: str, target: str) -> None:
    """Rename a small file (a document set aside). On Azure a copy then a delete: adlfs' server
    side copy does not work with every credential."""
    if is_azure(source):
        write_text_atomically(target, read_text(source))
        delete(source)
        return
    os.replace(source, target)


def delete(location: str) -> None:
    """Remove a file if it is there."""
    fs, path = filesystem(location)
    if fs.exists(path):
        fs.rm(path)


def delete_tree(location: str) -> None:
    """Remove a folder and everything in it, if it is there."""
    fs, path = filesystem(location)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def open_for_writing(location: str) -> IO[bytes]:
    """A binary file to stream into (e.g. a Parquet writer), its folder created."""
    fs, path = filesystem(location)
    if not is_azure(str(location)):
        fs.makedirs(fs._parent(path), exist_ok=True)
    return fs.open(path, "wb")
