"""ledger row digests: what each session's write left in the row, what it found, and what a rollback restored

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

COLUMNS = ('row_digest', 'pre_digest', 'written_at', 'undone_at', 'undone_digest')


def upgrade():
    with op.batch_alter_table('migration_ledger') as batch:
        batch.add_column(sa.Column('row_digest', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('pre_digest', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('written_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('undone_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('undone_digest', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('migration_ledger') as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
