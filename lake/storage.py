"""Object storage behind the lake: the local filesystem (default) or S3 through boto3.

Keys are '/'-separated and relative to the lake root. Every write of a single object is atomic
(local: write a temporary file then ``os.replace``; S3: one PUT), which is all the commit protocol needs.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse


class Storage(Protocol):
    root: str

    def write_bytes(self, key: str, data: bytes) -> None: ...
    def read_bytes(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str) -> list[str]: ...
    def delete_prefix(self, prefix: str) -> None: ...
    def children(self, prefix: str) -> list[str]: ...
    def uri(self, key: str, *, for_spark: bool = False) -> str: ...
    def local_path(self, key: str) -> Path | None: ...
    def read_if_changed(self, key: str, version: object) -> tuple[bytes | None, object]: ...


class LocalStorage:
    """The lake on a local (or mounted) filesystem."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = str(Path(root).resolve())
        Path(self.root).mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = Path(self.root, key)
        resolved = path.resolve()
        if resolved != Path(self.root) and Path(self.root) not in resolved.parents:
            raise ValueError(f"lake key {key!r} escapes the lake root {self.root}")
        return path

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.name)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"no object {key!r} in lake {self.root}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if base.is_file():
            return [prefix]
        if not base.is_dir():
            return []
        out = []
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if name.startswith(".tmp-"):
                    continue
                out.append(str(Path(dirpath, name).relative_to(self.root)).replace(os.sep, "/"))
        return sorted(out)

    def children(self, prefix: str) -> list[str]:
        """Names of the entries directly below ``prefix`` (empty directories included)."""
        base = self._path(prefix)
        return sorted(p.name for p in base.iterdir()) if base.is_dir() else []

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix)
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()

    def uri(self, key: str, *, for_spark: bool = False) -> str:
        return str(self._path(key))

    def local_path(self, key: str) -> Path:
        return self._path(key)

    def read_if_changed(self, key: str, version: object) -> tuple[bytes | None, object]:
        """``(data, version)`` if the object changed since ``version`` (None: never read), else ``(None, version)``.

        The version is the file's identity and modification time, so a pointer rewritten by ``os.replace``
        is always seen as changed; an unchanged object costs one ``stat``.
        """
        try:
            st = os.stat(self._path(key))
        except FileNotFoundError:
            raise FileNotFoundError(f"no object {key!r} in lake {self.root}") from None
        current = (st.st_ino, st.st_mtime_ns, st.st_size)
        if current == version:
            return None, version
        return self.read_bytes(key), current


class S3Storage:
    """The lake in an S3 bucket (AWS, or any S3 server such as SeaweedFS or MinIO)."""

    def __init__(self, root: str, *, endpoint_url: str | None = None, region: str | None = None):
        parsed = urlparse(root)
        if parsed.scheme not in ("s3", "s3a") or not parsed.netloc:
            raise ValueError(f"S3 lake root must look like s3://bucket/prefix, got {root!r}")
        import boto3  # imported here: the local profile never needs it
        from botocore.config import Config

        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.root = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,  # "" (an unset ${SEEDCODER_S3_ENDPOINT:-}) means AWS, as None does
            region_name=region or "us-east-1",
            config=Config(retries={"max_attempts": 8, "mode": "adaptive"}, s3={"addressing_style": "path"}),
        )

    def _key(self, key: str) -> str:
        if ".." in key.split("/"):
            raise ValueError(f"lake key {key!r} escapes the lake root {self.root}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def write_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def read_bytes(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(f"no object {key!r} in lake {self.root}") from None

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return bool(self.list(key.rstrip("/") + "/"))
            raise

    def _iter_keys(self, prefix: str) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        full = self._key(prefix)
        strip = len(self.prefix) + 1 if self.prefix else 0
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            for obj in page.get("Contents", []):
                yield obj["Key"][strip:]

    def list(self, prefix: str) -> list[str]:
        prefix = prefix.rstrip("/")
        if not prefix:  # the whole lake (Lake.snapshots lists from the root)
            return sorted(self._iter_keys(""))
        return sorted(k for k in self._iter_keys(prefix) if k == prefix or k.startswith(prefix + "/"))

    def children(self, prefix: str) -> list[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        full = self._key(prefix.rstrip("/")) + "/" if prefix else (self.prefix + "/" if self.prefix else "")
        names = set()
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full, Delimiter="/"):
            names.update(p["Prefix"][len(full):].rstrip("/") for p in page.get("CommonPrefixes", []))
            names.update(o["Key"][len(full):] for o in page.get("Contents", []))
        return sorted(n for n in names if n)

    def delete_prefix(self, prefix: str) -> None:
        keys = self.list(prefix)
        for i in range(0, len(keys), 1000):
            batch = [{"Key": self._key(k)} for k in keys[i : i + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def uri(self, key: str, *, for_spark: bool = False) -> str:
        scheme = "s3a" if for_spark else "s3"
        return f"{scheme}://{self.bucket}/{self._key(key)}"

    def local_path(self, key: str) -> None:
        return None

    def read_if_changed(self, key: str, version: object) -> tuple[bytes | None, object]:
        """``(data, etag)`` if the object's ETag differs from ``version``, else ``(None, version)``.

        A conditional GET (``If-None-Match``): an unchanged object answers 304 with no body.
        """
        from botocore.exceptions import ClientError

        args = {"Bucket": self.bucket, "Key": self._key(key)}
        if isinstance(version, str):
            args["IfNoneMatch"] = version
        try:
            response = self.client.get_object(**args)
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(f"no object {key!r} in lake {self.root}") from None
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("304", "NotModified"):
                return None, version
            raise
        return response["Body"].read(), response["ETag"]


def open_storage(root: str, *, endpoint_url: str | None = None, region: str | None = None) -> Storage:
    """The storage backend a lake root names: ``s3://bucket/prefix`` or a filesystem path."""
    if root.startswith(("s3://", "s3a://")):
        return S3Storage(root, endpoint_url=endpoint_url, region=region)
    if "://" in root and not root.startswith("file://"):
        raise ValueError(f"unsupported lake root {root!r}: use a filesystem path or s3://bucket/prefix")
    return LocalStorage(root.removeprefix("file://"))


def read_parquet_bytes(data: bytes):
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(data))
