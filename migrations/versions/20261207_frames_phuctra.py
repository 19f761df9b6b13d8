"""sample frames with official and reserve lists signed off by an observer; phúc tra with its contact
vault, draws, outcomes and quarantined investigators; the observer and auditor roles

Revision ID: frames_phuctra
Revises: sheet_reading
"""
import sqlalchemy as sa
from alembic import op

revision = "frames_phuctra"
down_revision = "sheet_reading"
branch_labels = None
depends_on = None

ROLE_CHECK = "ck_staff_user_role"
OLD_ROLES = "('admin', 'supervisor', 'clerk', 'analyst')"
NEW_ROLES = "('admin', 'supervisor', 'clerk', 'analyst', 'observer', 'auditor')"


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def _set_roles(old: str, new: str) -> None:
    """Change the roles the staff_user CHECK allows. SQLite: its declaration is edited in place (SQLite's
    documented procedure for changing a CHECK, which leaves the rows as they are; rebuilding the table would
    cascade through every table that names a user)."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.drop_constraint(op.f(ROLE_CHECK), "staff_user", type_="check")
        op.create_check_constraint(op.f(ROLE_CHECK), "staff_user", f"role IN {new}")
        return
    sql = bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'staff_user'").scalar()
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'staff_user'",
                         (sql.replace(f"CHECK (role IN {old})", f"CHECK (role IN {new})"),))
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def upgrade() -> None:
    _set_roles(OLD_ROLES, NEW_ROLES)
    op.create_table('contact',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('serial', sa.String(length=32), nullable=False),
    sa.Column('kind', _enum('contact_kind', 'respondent', 'fee_recipient'), nullable=False),
    sa.Column('sealed', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['round_id'], ['round.id'], name=op.f('fk_contact_round_id_round'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact')),
    sa.UniqueConstraint('round_id', 'serial', 'kind', name='uq_contact_round_serial_kind')
    )
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_round_id'), ['round_id'], unique=False)

    op.create_table('frame',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('kind', _enum('frame_kind', 'dossiers', 'households'), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('imported_on', sa.Date(), nullable=False),
    sa.Column('imported_by_id', sa.Integer(), nullable=True),
    sa.Column('design', sa.JSON(), nullable=True),
    sa.Column('seed', sa.BigInteger(), nullable=True),
    sa.Column('sampled_on', sa.Date(), nullable=True),
    sa.Column('signed_off_by_id', sa.Integer(), nullable=True),
    sa.Column('signed_off_on', sa.Date(), nullable=True),
    sa.Column('signed_off_as', sa.String(length=16), nullable=True),
    sa.Column('signed_lists_hash', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['imported_by_id'], ['staff_user.id'], name=op.f('fk_frame_imported_by_id_staff_user')),
    sa.ForeignKeyConstraint(['round_id'], ['round.id'], name=op.f('fk_frame_round_id_round'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['signed_off_by_id'], ['staff_user.id'], name=op.f('fk_frame_signed_off_by_id_staff_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_frame')),
    sa.UniqueConstraint('round_id', 'name', name='uq_frame_round_name')
    )
    with op.batch_alter_table('frame', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_frame_round_id'), ['round_id'], unique=False)

    op.create_table('quarantine',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('investigator', sa.String(length=64), nullable=False),
    sa.Column('since', sa.Date(), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('checked', sa.Integer(), nullable=False),
    sa.Column('lifted_on', sa.Date(), nullable=True),
    sa.Column('lifted_by_id', sa.Integer(), nullable=True),
    sa.Column('lift_reason', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['lifted_by_id'], ['staff_user.id'], name=op.f('fk_quarantine_lifted_by_id_staff_user')),
    sa.ForeignKeyConstraint(['round_id'], ['round.id'], name=op.f('fk_quarantine_round_id_round'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quarantine')),
    sa.UniqueConstraint('round_id', 'investigator', name='uq_quarantine_round_investigator')
    )
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quarantine_round_id'), ['round_id'], unique=False)

    op.create_table('answer_pattern',
    sa.Column('sheet_id', sa.Integer(), nullable=False),
    sa.Column('mark', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['sheet_id'], ['sheet.id'], name=op.f('fk_answer_pattern_sheet_id_sheet'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('sheet_id', name=op.f('pk_answer_pattern'))
    )
    op.create_table('recheck',
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('share', sa.Float(), nullable=False),
    sa.Column('seed', sa.BigInteger(), nullable=False),
    sa.Column('opened_on', sa.Date(), nullable=False),
    sa.Column('closed_on', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['round_id'], ['round.id'], name=op.f('fk_recheck_round_id_round'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('round_id', name=op.f('pk_recheck'))
    )
    op.create_table('frame_unit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('frame_id', sa.Integer(), nullable=False),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.Column('agency_id', sa.Integer(), nullable=False),
    sa.Column('field', sa.String(length=100), nullable=False),
    sa.Column('village', sa.String(length=100), nullable=False),
    sa.Column('ref', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=255), nullable=False),
    sa.Column('sample_list', _enum('sample_list', 'official', 'reserve'), nullable=True),
    sa.Column('list_position', sa.Integer(), nullable=True),
    sa.Column('replaced_by_id', sa.Integer(), nullable=True),
    sa.Column('replaced_reason', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['agency_id'], ['agency.id'],
                            name=op.f('fk_frame_unit_agency_id_agency'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['frame_id'], ['frame.id'], name=op.f('fk_frame_unit_frame_id_frame'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['replaced_by_id'], ['frame_unit.id'],
                            name=op.f('fk_frame_unit_replaced_by_id_frame_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_frame_unit')),
    sa.UniqueConstraint('frame_id', 'ref', name='uq_frame_unit_frame_ref')
    )
    with op.batch_alter_table('frame_unit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_frame_unit_frame_id'), ['frame_id'], unique=False)

    op.create_table('recheck_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('sheet_id', sa.Integer(), nullable=False),
    sa.Column('investigator', sa.String(length=64), nullable=True),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('reached', sa.Boolean(), nullable=True),
    sa.Column('received', sa.Boolean(), nullable=True),
    sa.Column('self_filled', sa.Boolean(), nullable=True),
    sa.Column('prompted', sa.Boolean(), nullable=True),
    sa.Column('paid', sa.Boolean(), nullable=True),
    sa.Column('outcome', _enum('recheck_outcome', 'confirmed', 'not_reached', 'failed'), nullable=True),
    sa.Column('recorded_on', sa.Date(), nullable=True),
    sa.Column('recorded_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['staff_user.id'],
                            name=op.f('fk_recheck_item_recorded_by_id_staff_user')),
    sa.ForeignKeyConstraint(['round_id'], ['round.id'],
                            name=op.f('fk_recheck_item_round_id_round'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['sheet_id'], ['sheet.id'],
                            name=op.f('fk_recheck_item_sheet_id_sheet'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recheck_item')),
    sa.UniqueConstraint('sheet_id', name=op.f('uq_recheck_item_sheet_id'))
    )
    with op.batch_alter_table('recheck_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recheck_item_round_id'), ['round_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('recheck_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recheck_item_round_id'))

    op.drop_table('recheck_item')
    with op.batch_alter_table('frame_unit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_frame_unit_frame_id'))

    op.drop_table('frame_unit')
    op.drop_table('recheck')
    op.drop_table('answer_pattern')
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quarantine_round_id'))

    op.drop_table('quarantine')
    with op.batch_alter_table('frame', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_frame_round_id'))

    op.drop_table('frame')
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contact_round_id'))

    op.drop_table('contact')
    bind = op.get_bind()
    if bind.scalar(sa.text("SELECT count(*) FROM staff_user WHERE role IN ('observer', 'auditor')")):
        raise RuntimeError("observer or auditor accounts exist: change their role before downgrading")
    _set_roles(NEW_ROLES, OLD_ROLES)
