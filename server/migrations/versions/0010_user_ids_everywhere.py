"""user ids everywhere: the batches and the ledger carry their session's user, as every other table does

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-09 12:00:00.000000

Every lsmigrate table now holds the user id and every query filters by it, so the tables can be
distributed by user (Citus) or partitioned. The existing rows take their session's user.
"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

_TABLES = ('migration_batches', 'migration_ledger')


def upgrade():
    for table in _TABLES:
        op.add_column(table, sa.Column('user_id', sa.String(length=255), nullable=True))
        op.execute(
            f"UPDATE {table} SET user_id = (SELECT s.user_id FROM migration_sessions s WHERE s.id = {table}.session_id)"
        )
        with op.batch_alter_table(table) as batch:
            batch.alter_column('user_id', existing_type=sa.String(length=255), nullable=False)


def downgrade():
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column('user_id')
