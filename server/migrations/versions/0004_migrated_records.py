"""migrated_records: the generic table of stores that name no table of their own

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 21:00:00.000000

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade():
    op.create_table(
        'migrated_records',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('user_id', sa.String(length=255), nullable=False),
        sa.Column('store', sa.String(length=64), nullable=False),
        sa.Column('record_id', sa.Text(), nullable=True),
        sa.Column('data', JSON, nullable=False),
        sa.Column('secrets_encrypted', sa.Text(), nullable=True),
        sa.Column('metadata', JSON, nullable=False),
        sa.Column('source_digest', sa.String(length=64), nullable=False),
        sa.Column('migration_session_id', sa.Uuid(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_migrated_records_user_id', 'migrated_records', ['user_id'])
    op.create_index('ix_migrated_records_user_store', 'migrated_records', ['user_id', 'store'])


def downgrade():
    op.drop_index('ix_migrated_records_user_store', table_name='migrated_records')
    op.drop_index('ix_migrated_records_user_id', table_name='migrated_records')
    op.drop_table('migrated_records')
