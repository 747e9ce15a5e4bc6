"""user data versions: per user, the version a cached copy of the user's rows must match to be served

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-09 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'user_data_versions',
        sa.Column('user_id', sa.String(length=255), nullable=False),
        sa.Column('version', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('user_id'),
    )


def downgrade():
    op.drop_table('user_data_versions')
