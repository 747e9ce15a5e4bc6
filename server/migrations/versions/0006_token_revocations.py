"""token revocations: tokens revoked by their id, and a per-user "not before" for all of a user's tokens

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'revoked_tokens',
        sa.Column('jti', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.String(length=255), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('jti'),
    )
    op.create_index('ix_revoked_tokens_user_id', 'revoked_tokens', ['user_id'])
    op.create_table(
        'token_cutoffs',
        sa.Column('user_id', sa.String(length=255), nullable=False),
        sa.Column('not_before', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('user_id'),
    )


def downgrade():
    op.drop_table('token_cutoffs')
    op.drop_index('ix_revoked_tokens_user_id', table_name='revoked_tokens')
    op.drop_table('revoked_tokens')
