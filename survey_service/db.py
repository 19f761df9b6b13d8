"""Engine and session handling.

Services receive a plain :class:`sqlalchemy.orm.Session`; the web layer gets a request-scoped one from
:func:`get_session` and commits once after the service returns. The session is closed at the end of the
request, which discards anything left uncommitted.
"""
from __future__ import annotations

import sqlalchemy as sa
from flask import Flask, current_app, g
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)


def make_engine(url: str) -> sa.Engine:
    """Create an engine; SQLite gets foreign keys, WAL, a busy timeout and secure deletion on every connection.

    ``secure_delete`` overwrites deleted rows with zeros, so a deleted draft or a row's old place is not left
    readable in the file's free space. ``hide_parameters`` keeps a failing statement's values (answers,
    among them) out of its error's text, wherever that text ends up: a log, a traceback on a terminal.
    """
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_con, _record):
            cur = dbapi_con.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA secure_delete=ON")
            cur.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, hide_parameters=True)


#: The tables whose old row versions could tell when a response was written, what a draft held, what a
#: sheet's page looked like, or whom phúc tra was to call once its contact vault is deleted.
#: The contact vault of phúc tra and the marks of keyed answers, both deleted and rewritten when phúc tra closes.
VAULT_TABLES = ("contact", "answer_pattern")
COMPACTED_TABLES = ("response", "answer", "draft", "invitation_code", "spent_code", "ballot", "sheet_scan",
                    *VAULT_TABLES)


def compact(engine: sa.Engine) -> None:
    """Rewrite the files of the response tables so that no old version of a row is left in them.

    PostgreSQL keeps the versions a rewrite or a delete left behind in the table's pages until VACUUM
    reclaims the space, and even then their bytes stay until overwritten; ``VACUUM FULL`` copies the live
    rows (in their present, random order) into new files. It locks the tables while it runs (seconds for
    100,000 responses). SQLite zeroes deleted rows already; ``VACUUM`` rebuilds the file and the log is
    emptied.
    """
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as con:
        if engine.dialect.name == "postgresql":
            con.exec_driver_sql("VACUUM FULL " + ", ".join(COMPACTED_TABLES))
        else:
            con.exec_driver_sql("VACUUM")
            con.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def init_app(app: Flask) -> None:
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["db_engine"] = engine
    app.extensions["db_sessionmaker"] = sessionmaker(bind=engine, expire_on_commit=False)
    app.teardown_appcontext(_close_session)


def get_engine() -> sa.Engine:
    return current_app.extensions["db_engine"]


def get_session() -> Session:
    """The session of the current app context (request or CLI command)."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["db_sessionmaker"]()
    return g.db_session


def _close_session(_exc=None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
