"""Alembic: one head, date-prefixed files, upgrade/downgrade/upgrade on both databases, and the migrated
schema matches the models."""
import re
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from survey_service import migrate
from survey_service.db import Base, make_engine


def test_single_head():
    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1


def test_revision_files_are_date_prefixed():
    for path in (migrate.MIGRATIONS_DIR / "versions").glob("*.py"):
        assert re.match(r"\d{8}_\w+\.py$", path.name), path.name


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_upgrade_downgrade_upgrade(empty_database):
    migrate.upgrade(empty_database)
    assert _tables(empty_database) == set(Base.metadata.tables)
    migrate.downgrade(empty_database, "base")
    assert _tables(empty_database) == set()
    migrate.upgrade(empty_database)
    engine = make_engine(empty_database)
    try:
        with engine.connect() as con:
            diff = compare_metadata(MigrationContext.configure(con), Base.metadata)
    finally:
        engine.dispose()
    assert diff == [], f"models and migrations disagree: {diff}"


def test_tokens_made_before_expiry_existed_expire_in_90_days(empty_database):
    migrate.upgrade(empty_database, "ballot_box")
    engine = make_engine(empty_database)
    try:
        with engine.begin() as con:
            con.execute(sa.text("INSERT INTO staff_user (username, full_name, role, password_hash, active, "
                                "session_generation, api_token_hash, created_at) VALUES "
                                "('cu', '', 'analyst', 'x', true, 0, :token, CURRENT_TIMESTAMP), "
                                "('khongma', '', 'analyst', 'x', true, 0, NULL, CURRENT_TIMESTAMP)"),
                        {"token": "a" * 64})
        migrate.upgrade(empty_database)
        staff_user = sa.Table("staff_user", sa.MetaData(), autoload_with=engine)
        with engine.connect() as con:
            rows = con.execute(sa.select(staff_user.c.username, staff_user.c.api_token_expires_at)).all()
    finally:
        engine.dispose()
    expires = dict(rows)
    assert expires["khongma"] is None
    left = expires["cu"].replace(tzinfo=expires["cu"].tzinfo or timezone.utc) - datetime.now(timezone.utc)
    assert timedelta(days=89) < left <= timedelta(days=90)
