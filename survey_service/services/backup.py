"""Backups of the whole database and their restore.

SQLite is copied with its online backup API (a consistent copy while the service keeps running, WAL
included); PostgreSQL with ``pg_dump --format=custom`` and ``pg_restore`` (from postgresql-client, the same
major version as the server or newer). The password of a PostgreSQL URL goes to the tools in ``PGPASSWORD``,
never on their command line.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from survey_service.services.errors import ServiceError

#: A table every survey-service database has; a file without it is not one of our backups.
MARKER_TABLE = "audit_event"


class BackupError(ServiceError, RuntimeError):
    """The backup or restore could not be made; nothing was changed."""


@dataclass(frozen=True)
class BackupReport:
    path: Path
    size: int
    kind: str  # "sqlite" or "pg_dump"


def backup(database_url: str, out: str | os.PathLike) -> BackupReport:
    """Write a backup of the database to ``out`` (refuses to overwrite an existing file)."""
    out = Path(out)
    if out.exists():
        raise BackupError(f"{out} already exists; choose a new file name.")
    url = sa.engine.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        _sqlite_copy(_sqlite_path(url), out)
        _check_sqlite(out)
        return BackupReport(out, out.stat().st_size, "sqlite")
    if url.get_backend_name() == "postgresql":
        partial = out.with_name(out.name + ".partial")
        try:
            _run("pg_dump", url, ["--format=custom", "--no-owner", "--no-acl", f"--file={partial}"])
            _run("pg_restore", url, ["--list", str(partial)], database=False)  # readable from end to end
        except BackupError:
            partial.unlink(missing_ok=True)
            raise
        partial.rename(out)
        return BackupReport(out, out.stat().st_size, "pg_dump")
    raise BackupError(f"No backup method for {url.get_backend_name()} databases.")


def restore(database_url: str, source: str | os.PathLike) -> None:
    """Replace the database's tables and rows by those of the backup ``source``, all or nothing."""
    source = Path(source)
    if not source.is_file():
        raise BackupError(f"{source} does not exist.")
    url = sa.engine.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        _check_sqlite(source)
        _sqlite_copy(source, _sqlite_path(url))
        return
    if url.get_backend_name() == "postgresql":
        if source.read_bytes()[:5] != b"PGDMP":
            raise BackupError(f"{source} is not a pg_dump archive (custom format).")
        _run("pg_restore", url, ["--clean", "--if-exists", "--no-owner", "--no-acl", "--single-transaction",
                                 "--exit-on-error", str(source)])
        return
    raise BackupError(f"No restore method for {url.get_backend_name()} databases.")


def _sqlite_path(url: sa.engine.URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("An in-memory SQLite database cannot be backed up.")
    return Path(url.database)


def _sqlite_copy(source: Path, target: Path) -> None:
    """Copy with SQLite's online backup API: readers and writers of ``source`` may keep working."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite backup failed: {exc}") from exc
    finally:
        dst.close()
        src.close()


def _check_sqlite(path: Path) -> None:
    """A readable SQLite file of this service that passes SQLite's integrity check."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = con.execute("PRAGMA integrity_check").fetchone()[0]
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a readable SQLite database: {exc}") from exc
    if result != "ok":
        raise BackupError(f"{path} fails SQLite's integrity check: {result}")
    if MARKER_TABLE not in tables:
        raise BackupError(f"{path} is not a survey-service database (no {MARKER_TABLE} table).")


def _run(tool: str, url: sa.engine.URL, args: list[str], *, database: bool = True) -> None:
    if shutil.which(tool) is None:
        raise BackupError(f"{tool} not found: install postgresql-client (apt-get install postgresql-client).")
    conninfo = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    env = {**os.environ, **({"PGPASSWORD": url.password} if url.password else {})}
    command = [tool, *([f"--dbname={conninfo}"] if database else []), *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"{tool} failed: {done.stderr.strip()}")
