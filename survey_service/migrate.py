"""Alembic, driven from Python so that the CLI, the demo and the tests share one code path."""
from __future__ import annotations

from alembic import command
from alembic.config import Config

from survey_service.config import data_path

MIGRATIONS_DIR = data_path("migrations")


def alembic_config(database_url: str) -> Config:
    cfg = Config(str(data_path("alembic.ini")))
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)
