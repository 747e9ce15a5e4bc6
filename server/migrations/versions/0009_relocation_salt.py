"""relocation salt: the secret that keys relocated ids, so no other user can pre-claim them

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08 12:00:00.000000

"""
import secrets

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    salts = op.create_table(
        'lsmigrate_salts',
        sa.Column('name', sa.String(length=32), nullable=False),
        sa.Column('value', sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )
    op.bulk_insert(salts, [{'name': 'relocation', 'value': secrets.token_hex(32)}])


def downgrade():
    op.drop_table('lsmigrate_salts')
