"""job lifecycle (issue 7)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 10:00:00.000000

The approval gate, pinned bases, the reviewer, the unpromoted candidate checkpoint and the signed report's
artifact keys, on `jobs`.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('require_approval', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('base_pinned', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('reviewed_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('candidate_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('report_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('report_html_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('report_envelope_key', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        for name in ('report_envelope_key', 'report_html_key', 'report_key', 'candidate_key', 'reviewed_by',
                     'base_pinned', 'require_approval'):
            batch_op.drop_column(name)
