"""key remainders: what no store claims in a key, per session; the store of each ledger, quarantine and conflict row

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade():
    op.create_table(
        'migration_remainders',
        sa.Column('session_id', sa.Uuid(), nullable=False),
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.Column('user_id', sa.String(length=255), nullable=False),
        sa.Column('document', JSON, nullable=False),
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('value_digest', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['session_id'], ['migration_sessions.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('session_id', 'key'),
    )
    op.create_index('ix_migration_remainders_user_key', 'migration_remainders', ['user_id', 'key'])
    for table in ('migration_ledger', 'quarantine', 'migration_conflicts'):
        op.add_column(table, sa.Column('store', sa.String(length=64), nullable=True))


def downgrade():
    for table in ('migration_ledger', 'quarantine', 'migration_conflicts'):
        op.drop_column(table, 'store')
    op.drop_index('ix_migration_remainders_user_key', table_name='migration_remainders')
    op.drop_table('migration_remainders')
