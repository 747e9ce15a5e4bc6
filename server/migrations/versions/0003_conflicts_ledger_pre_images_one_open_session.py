"""conflicts, ledger pre-images, one open session per user, dry runs, rollback

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
ONE_OPEN = sa.text("status = 'open' AND NOT dry_run")


def upgrade():
    with op.batch_alter_table('migration_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dry_run', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('last_active_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('rolled_back_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('rollback_report', JSON, nullable=True))
    op.execute("UPDATE migration_sessions SET last_active_at = created_at")
    with op.batch_alter_table('migration_sessions', schema=None) as batch_op:
        batch_op.alter_column('last_active_at', existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.alter_column('dry_run', existing_type=sa.Boolean(), server_default=None)
    # Sessions opened before this revision may overlap: keep each user's newest open one.
    op.execute(
        "UPDATE migration_sessions SET status = 'abandoned' WHERE status = 'open' AND EXISTS ("
        " SELECT 1 FROM migration_sessions AS newer WHERE newer.user_id = migration_sessions.user_id"
        " AND newer.status = 'open' AND newer.created_at > migration_sessions.created_at)"
    )
    op.create_index(
        'uq_sessions_one_open_per_user', 'migration_sessions', ['user_id'], unique=True,
        postgresql_where=ONE_OPEN, sqlite_where=ONE_OPEN,
    )

    with op.batch_alter_table('migration_ledger', schema=None) as batch_op:
        batch_op.add_column(sa.Column('version_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('pre_image', JSON, nullable=True))
        batch_op.create_index('ix_migration_ledger_target', ['target_id', 'session_id'], unique=False)

    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.add_column(sa.Column('target_table', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('target_id', sa.Uuid(), nullable=True))

    op.create_table('migration_conflicts',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('session_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('index', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('target_table', sa.String(length=64), nullable=False),
    sa.Column('target_id', sa.Uuid(), nullable=False),
    sa.Column('local', JSON, nullable=False),
    sa.Column('local_digest', sa.String(length=64), nullable=False),
    sa.Column('server', JSON, nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('resolution', sa.String(length=16), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['session_id'], ['migration_sessions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('session_id', 'key', 'index', name='uq_conflicts_record')
    )
    with op.batch_alter_table('migration_conflicts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_migration_conflicts_session_id'), ['session_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_migration_conflicts_user_id'), ['user_id'], unique=False)


def downgrade():
    with op.batch_alter_table('migration_conflicts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_migration_conflicts_user_id'))
        batch_op.drop_index(batch_op.f('ix_migration_conflicts_session_id'))

    op.drop_table('migration_conflicts')
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.drop_column('target_id')
        batch_op.drop_column('target_table')

    with op.batch_alter_table('migration_ledger', schema=None) as batch_op:
        batch_op.drop_index('ix_migration_ledger_target')
        batch_op.drop_column('pre_image')
        batch_op.drop_column('version_at')

    op.drop_index('uq_sessions_one_open_per_user', table_name='migration_sessions')
    with op.batch_alter_table('migration_sessions', schema=None) as batch_op:
        batch_op.drop_column('rollback_report')
        batch_op.drop_column('rolled_back_at')
        batch_op.drop_column('last_active_at')
        batch_op.drop_column('dry_run')
