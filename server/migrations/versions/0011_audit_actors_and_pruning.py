"""audit actors and pruning: who rolled a session back and who settled a conflict; when a session was pruned

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-10 12:00:00.000000

The audit trail (lsmigrate.server.operator.audit) names who did what: `rolled_back_by` and
`resolved_by` hold "user:<id>", "cli" or "operator:<name>" (NULL for rows from before). `pruned_at`
is set when `lsmigrate prune` starts clearing a session's stored responses, pre-images and quarantine:
a pruned session's rollback is refused (409 `session_pruned`).
"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('migration_sessions') as batch:
        batch.add_column(sa.Column('rolled_back_by', sa.String(length=320), nullable=True))
        batch.add_column(sa.Column('pruned_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('migration_conflicts') as batch:
        batch.add_column(sa.Column('resolved_by', sa.String(length=320), nullable=True))


def downgrade():
    with op.batch_alter_table('migration_conflicts') as batch:
        batch.drop_column('resolved_by')
    with op.batch_alter_table('migration_sessions') as batch:
        batch.drop_column('pruned_at')
        batch.drop_column('rolled_back_by')
