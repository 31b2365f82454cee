"""Atomic file writes, Parquet helpers and run provenance.

Every output of the project goes through `atomic_path`: it is written to a
temporary file in the destination folder and renamed into place only when the
write finished, so a crash never leaves a half-written Parquet file or checkpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

METADATA_PREFIX = "rqvae_ids."


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` if the block succeeds.

    On any exception the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; give the output the permissions a plain open() would.
    os.chmod(tmp_path, 0o666 & ~_current_umask())
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _current_umask() -> int:
    # /proc gives the umask without changing it (os.umask is a process-wide set, racy under threads).
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    # numpy scalars and arrays, Paths: the usual suspects in reports.
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def encode_metadata(meta: Mapping[str, Any]) -> dict[bytes, bytes]:
    """Schema metadata: keys prefixed with `rqvae_ids.`, values JSON-encoded."""
    return {
        (METADATA_PREFIX + k).encode(): json.dumps(v, default=_json_default).encode()
        for k, v in meta.items()
    }


def decode_metadata(schema: pa.Schema) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in (schema.metadata or {}).items():
        key = k.decode()
        if key.startswith(METADATA_PREFIX):
            out[key[len(METADATA_PREFIX):]] = json.loads(v.decode())
    return out


def write_parquet_atomic(
    table: pa.Table, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None, **options: Any
) -> None:
    """Write `table` (with its explicit schema) atomically; `metadata` goes into the schema,
    `options` (e.g. `compression`, `use_dictionary`) to `pyarrow.parquet.write_table`."""
    if metadata:
        merged = dict(table.schema.metadata or {})
        merged.update(encode_metadata(metadata))
        table = table.replace_schema_metadata(merged)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **options)


def read_parquet_metadata(path: str | os.PathLike) -> dict[str, Any]:
    return decode_metadata(pq.read_schema(path))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _git(*args: str) -> str | None:
    """stdout of a git command in the package's checkout, None outside one."""
    try:
        out = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_commit() -> str | None:
    out = _git("rev-parse", "HEAD")
    return out.strip() or None if out is not None else None


def git_dirty() -> bool | None:
    """True when tracked files differ from the commit (the commit alone does not describe the code)."""
    out = _git("status", "--porcelain", "--untracked-files=no")
    return bool(out.strip()) if out is not None else None


def provenance() -> dict[str, Any]:
    """Library versions and git commit, saved beside outputs so a run can be reproduced."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for pkg in ("rqvae-ids", "torch", "numpy", "faiss-cpu", "sentence-transformers", "pyarrow", "prefect"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    return {"python": platform.python_version(), "versions": versions, "git_commit": git_commit(),
            "git_dirty": git_dirty()}


def require_file(path: str | os.PathLike, what: str = "file") -> Path:
    """Return `path` as a Path, or raise a UserError naming what is missing (or is a folder)."""
    from .errors import UserError

    p = Path(path)
    if p.is_dir():
        raise UserError(f"{what} {p} is a directory, not a file")
    if not p.is_file():
        raise UserError(f"{what} not found: {p}")
    return p


def read_parquet_table(path: str | os.PathLike, what: str,
                       columns: list[str] | None = None) -> tuple[Path, pa.Table]:
    """(path, table) of a Parquet file, or a UserError naming `what` when it is missing, a folder
    or not readable Parquet (the one way every reader of our tables opens them). columns: read
    only those of them the file has (None: all); the table's schema metadata is the file's."""
    from .errors import UserError

    p = require_file(path, what)
    try:
        # ParquetFile.read, not read_table: the dataset scanner behind read_table cuts every
        # column into 128Ki-row chunks that a numpy view would then have to concatenate
        with pq.ParquetFile(p, memory_map=True) as f:
            if columns is not None:
                columns = [c for c in columns if c in f.schema_arrow.names]
            return p, f.read(columns=columns)
    except (pa.ArrowInvalid, OSError) as e:
        raise UserError(f"cannot read {what} {p}: {e}") from None


def object_strings(column: pa.ChunkedArray | pa.Array) -> Any:
    """(N,) numpy object array of the str values of a string column, built in Arrow's C loop
    (no Python list in between; equal to `np.asarray(column.to_pylist(), dtype=object)`)."""
    import numpy as np

    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)


def file_in_dir(path: str | os.PathLike | None, name: str, what: str = "file") -> str | None:
    """`path`, or `path/name` when `path` is a folder holding `name` (`--embeddings out/emb`
    for out/emb/embeddings.parquet). A folder without it: a UserError saying so. None stays None."""
    from .errors import UserError

    if path is None or not Path(path).is_dir():
        return None if path is None else os.fspath(path)
    inner = Path(path) / name
    if not inner.is_file():
        raise UserError(f"{what} {path} is a directory, and holds no {name}")
    return os.fspath(inner)


def check_out_dir(path: str | os.PathLike, what: str = "--out") -> Path:
    """Return `path` as a Path, or raise a UserError if it cannot be an output folder.

    Call it before any work: an existing regular file at `path` (or at one of its
    parents) would otherwise only fail when the first output is written.
    """
    from .errors import UserError

    p = Path(path)
    for q in (p, *p.parents):
        if q.is_dir():
            break
        if q.exists() or q.is_symlink():  # a file, or a dangling link, where a folder must go
            kind = "a file" if q.exists() else "a broken link"
            where = f"{p} is {kind}" if q == p else f"{p}: {q} is {kind}"
            raise UserError(f"{what} {where}, not a folder; choose another output folder")
    return p


def read_json_or_none(path: str | os.PathLike) -> Any:
    """The JSON in `path`, or None if it is missing or unreadable (reuse markers: no marker, no reuse)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def prefetched(items: Iterator[Any], depth: int | None = 2) -> Iterator[Any]:
    """The values of `items`, produced by a background thread at most `depth` ahead of the
    consumer (None: no limit): reading (Arrow releases the GIL) overlaps the consumer's own
    work. An exception of the producer is raised in the consumer; a consumer that stops early
    stops the producer."""
    import queue
    import threading

    if depth is not None and depth < 1:
        raise ValueError(f"depth must be >= 1 or None, got {depth}")
    box: queue.Queue = queue.Queue(maxsize=0 if depth is None else depth)
    stop = threading.Event()
    end = object()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                box.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((end, None))
        except BaseException as e:  # handed to the consumer, raised there
            put((end, e))
        finally:
            getattr(items, "close", lambda: None)()  # a generator's own cleanup (open files), here

    thread = threading.Thread(target=produce, name="rqvae-ids-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = box.get()
            if error is not None:
                raise error
            if item is end:
                return
            yield item
    finally:
        stop.set()
        thread.join()
