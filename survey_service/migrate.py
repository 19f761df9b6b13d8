"""Alembic, driven from Python so that the CLI, the demo and the tests share one code path."""
from __future__ import annotations

from alembic import command
from alembic.config import Config

from survey_service.config import data_path

MIGRATIONS_DIR = data_path("migrations")


def alembic_config(database_url: str, secret_key: str | None = None) -> Config:
    """``secret_key``: the server's, for migrations that convert what is stored under it (code marks)."""
    cfg = Config(str(data_path("alembic.ini")))
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    cfg.attributes["secret_key"] = secret_key
    return cfg


def upgrade(database_url: str, revision: str = "head", *, secret_key: str | None = None) -> None:
    command.upgrade(alembic_config(database_url, secret_key), revision)


def downgrade(database_url: str, revision: str, *, secret_key: str | None = None) -> None:
    command.downgrade(alembic_config(database_url, secret_key), revision)
