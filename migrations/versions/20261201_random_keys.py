"""responses and answers get random 64-bit keys; drafts are sealed

Revision ID: random_keys
Revises: access
"""
import secrets

import sqlalchemy as sa
from alembic import op

revision = "random_keys"
down_revision = "0006"
branch_labels = None
depends_on = None

FK = "fk_answer_response_id_response"
LOW = 2 ** 32  # as models.random_key: above every sequential id


def _random_keys(n: int) -> list[int]:
    keys: set[int] = set()
    while len(keys) < n:
        keys.add(LOW + secrets.randbelow(2 ** 63 - LOW))
    return list(keys)


def _rekey(table: str, column_new, refs: tuple[tuple[str, str], ...] = ()) -> None:
    """Give every row of ``table`` a new id from ``column_new(old ids)``, following ``refs`` (table, column)."""
    bind = op.get_bind()
    old = [row[0] for row in bind.execute(sa.text(f"SELECT id FROM {table}"))]
    if not old:
        return
    bind.execute(sa.text("CREATE TEMPORARY TABLE key_map (old BIGINT PRIMARY KEY, new BIGINT NOT NULL)"))
    bind.execute(sa.text("INSERT INTO key_map (old, new) VALUES (:old, :new)"),
                 [{"old": o, "new": n} for o, n in zip(old, column_new(old))])
    for ref_table, ref_column in refs:
        bind.execute(sa.text(f"UPDATE {ref_table} SET {ref_column} = "
                             f"(SELECT new FROM key_map WHERE old = {ref_table}.{ref_column})"))
    bind.execute(sa.text(f"UPDATE {table} SET id = (SELECT new FROM key_map WHERE old = {table}.id)"))
    bind.execute(sa.text("DROP TABLE key_map"))


def _rekey_all(new_keys) -> None:
    """Re-key responses (and the answers' references) and answers; the foreign key waits meanwhile."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute("PRAGMA defer_foreign_keys = ON")
    else:
        op.drop_constraint(FK, "answer", type_="foreignkey")
    _rekey("response", new_keys, refs=(("answer", "response_id"),))
    _rekey("answer", new_keys)
    if not sqlite:
        op.create_foreign_key(FK, "answer", "response", ["response_id"], ["id"], ondelete="CASCADE")


def upgrade() -> None:
    op.add_column("draft", sa.Column("sealed", sa.Text(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        for table, column in (("answer", "response_id"), ("answer", "id"), ("response", "id")):
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} DROP DEFAULT")
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE BIGINT")
        op.execute("DROP SEQUENCE IF EXISTS answer_id_seq")
        op.execute("DROP SEQUENCE IF EXISTS response_id_seq")
    # SQLite: the columns are INTEGER PRIMARY KEY already, 64-bit, the rowid itself.
    _rekey_all(lambda old: _random_keys(len(old)))


def downgrade() -> None:
    # Back to sequential ids, numbered in the present (random) key order.
    _rekey_all(lambda old: [-i for i in range(1, len(old) + 1)])
    _rekey_all(lambda old: [-k for k in old])
    if op.get_bind().dialect.name == "postgresql":
        for table in ("response", "answer"):
            op.execute(f"CREATE SEQUENCE {table}_id_seq OWNED BY {table}.id")
            op.execute(f"SELECT setval('{table}_id_seq', COALESCE((SELECT max(id) FROM {table}), 0) + 1, false)")
            op.execute(f"ALTER TABLE {table} ALTER COLUMN id TYPE INTEGER")
            op.execute(f"ALTER TABLE {table} ALTER COLUMN id SET DEFAULT nextval('{table}_id_seq')")
        op.execute("ALTER TABLE answer ALTER COLUMN response_id TYPE INTEGER")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE draft DROP COLUMN sealed")
    else:
        op.drop_column("draft", "sealed")
