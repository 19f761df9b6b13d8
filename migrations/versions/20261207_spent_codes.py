"""codes are spent under a keyed mark; drafts are named by it; ballots keep no day; owner-sealed rounds

Revision ID: spent_codes
Revises: api_token_expiry

Existing used codes and drafts are converted with the server's secret (``SECRET_KEY``), which the
``db upgrade`` command passes in; a database holding either cannot be converted without it.
"""
import functools
import hashlib
import hmac
import json

import sqlalchemy as sa
from alembic import context, op
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

revision = "spent_codes"
down_revision = "api_token_expiry"
branch_labels = None
depends_on = None


def _marker():
    """code → mark, as the application computes it at this revision (frozen here)."""
    secret = context.config.attributes.get("secret_key")
    if not secret:
        raise RuntimeError("used invitation codes and drafts are converted with SECRET_KEY: run "
                           "'survey-service db upgrade' with the server's SECRET_KEY set")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"survey-service/code-mark/").derive(secret.encode())
    return functools.lru_cache(maxsize=None)(lambda code: hmac.new(key, code.encode(), hashlib.sha256).hexdigest()[:32])


def _draft_table(mark_column: bool):
    key = (sa.Column("code_mark", sa.String(32), nullable=False) if mark_column
           else sa.Column("invitation_code_id", sa.Integer(), nullable=False))
    return [
        sa.Column("id", sa.Integer(), nullable=False),
        key,
        *([sa.Column("quota_cell_id", sa.Integer(), nullable=False)] if mark_column else []),
        sa.Column("division_id", sa.Integer(), nullable=True),
        sa.Column("sealed", sa.Text(), nullable=True),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("started_on", sa.Date(), nullable=False),
        sa.Column("updated_on", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(["division_id"], ["division.id"], name=op.f("fk_draft_division_id_division")),
        *([sa.ForeignKeyConstraint(["quota_cell_id"], ["quota_cell.id"], name=op.f("fk_draft_quota_cell_id_quota_cell"),
                                   ondelete="CASCADE"),
           sa.UniqueConstraint("code_mark", name=op.f("uq_draft_code_mark"))] if mark_column else
          [sa.ForeignKeyConstraint(["invitation_code_id"], ["invitation_code.id"],
                                   name=op.f("fk_draft_invitation_code_id_invitation_code"), ondelete="CASCADE"),
           sa.UniqueConstraint("invitation_code_id", name=op.f("uq_draft_invitation_code_id"))]),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_draft")),
    ]


def upgrade() -> None:
    bind = op.get_bind()
    used = bind.execute(sa.text("SELECT code, quota_cell_id, submission_id FROM invitation_code "
                                "WHERE status = 'used'")).all()
    drafts = bind.execute(sa.text(
        "SELECT d.id, c.code, c.quota_cell_id, d.division_id, d.sealed, d.answers, d.started_on, d.updated_on "
        "FROM draft d JOIN invitation_code c ON c.id = d.invitation_code_id")).all()
    mark = _marker() if used or drafts else None

    spent = op.create_table(
        "spent_code",
        sa.Column("mark", sa.String(32), nullable=False),
        sa.Column("quota_cell_id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["quota_cell_id"], ["quota_cell.id"],
                                name=op.f("fk_spent_code_quota_cell_id_quota_cell"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("mark", name=op.f("pk_spent_code")),
    )
    op.create_index(op.f("ix_spent_code_quota_cell_id"), "spent_code", ["quota_cell_id"])
    if used:
        op.bulk_insert(spent, sorted(({"mark": mark(code), "quota_cell_id": cell, "submission_id": sid or ""}
                                      for code, cell, sid in used), key=lambda r: r["mark"]))
        op.execute("UPDATE invitation_code SET status = 'unused' WHERE status = 'used'")
    op.execute("ALTER TABLE invitation_code DROP COLUMN submission_id")  # (SQLite 3.35+ and PostgreSQL)

    op.drop_table("draft")
    draft = op.create_table("draft", *_draft_table(mark_column=True))
    op.create_index(op.f("ix_draft_quota_cell_id"), "draft", ["quota_cell_id"])
    if drafts:
        op.bulk_insert(draft, [{"id": d.id, "code_mark": mark(d.code), "quota_cell_id": d.quota_cell_id,
                                "division_id": d.division_id, "sealed": d.sealed, "answers": _json(d.answers),
                                "started_on": d.started_on, "updated_on": d.updated_on} for d in drafts])

    op.drop_index("ix_ballot_submitted_on", table_name="ballot")
    op.execute("ALTER TABLE ballot DROP COLUMN submitted_on")
    op.add_column("round", sa.Column("ballot_public_key", sa.String(64), nullable=True))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.scalar(sa.text("SELECT count(*) FROM ballot")):
        raise RuntimeError("sealed ballots are waiting: release them (round release) before downgrading")
    op.execute('ALTER TABLE "round" DROP COLUMN ballot_public_key')
    # (the box is empty: a ballot of the older design would have had its day)
    op.add_column("ballot", sa.Column("submitted_on", sa.Date(), nullable=True))
    op.create_index("ix_ballot_submitted_on", "ballot", ["submitted_on"])

    spent = {m: sid for m, sid in bind.execute(sa.text("SELECT mark, submission_id FROM spent_code"))}
    drafts = bind.execute(sa.text("SELECT id, code_mark, division_id, sealed, answers, started_on, updated_on "
                                  "FROM draft")).all()
    codes = bind.execute(sa.text("SELECT id, code FROM invitation_code")).all() if spent or drafts else []
    mark = _marker() if codes else None
    by_mark = {mark(code): code_id for code_id, code in codes}
    op.add_column("invitation_code", sa.Column("submission_id", sa.String(64), nullable=True))
    for m, sid in spent.items():
        bind.execute(sa.text("UPDATE invitation_code SET status = 'used', submission_id = :sid WHERE id = :id"),
                     {"sid": sid, "id": by_mark[m]})
    op.drop_index(op.f("ix_spent_code_quota_cell_id"), table_name="spent_code")
    op.drop_table("spent_code")
    op.drop_index(op.f("ix_draft_quota_cell_id"), table_name="draft")
    op.drop_table("draft")
    draft = op.create_table("draft", *_draft_table(mark_column=False))
    if drafts:
        op.bulk_insert(draft, [{"id": d.id, "invitation_code_id": by_mark[d.code_mark], "division_id": d.division_id,
                                "sealed": d.sealed, "answers": _json(d.answers), "started_on": d.started_on,
                                "updated_on": d.updated_on} for d in drafts])


def _json(value):
    """A JSON column as read back by a plain statement: text on SQLite, a value on PostgreSQL."""
    return json.loads(value) if isinstance(value, str) else value
