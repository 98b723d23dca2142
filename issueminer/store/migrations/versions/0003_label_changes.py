"""label changes (what `taxonomy merge` rewrote, with the values before)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "label_change",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("batch", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("dimension", sa.String(length=50), nullable=False),
        sa.Column("old_value", sa.String(length=200), nullable=False),
        sa.Column("new_value", sa.String(length=200), nullable=False),
        sa.Column("table_name", sa.String(length=30), nullable=False),
        sa.Column("row_id", sa.Integer(), nullable=False),
        sa.Column("new_row_id", sa.Integer(), nullable=True),
        sa.Column("issue_uid", sa.String(length=40), nullable=False),
        sa.Column("before", sa.JSON(), nullable=False),
        sa.Column("changed_by", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["issue_uid"], ["issue.uid"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("label_change", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_label_change_batch"), ["batch"], unique=False)
        batch_op.create_index(batch_op.f("ix_label_change_issue_uid"), ["issue_uid"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("label_change", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_label_change_issue_uid"))
        batch_op.drop_index(batch_op.f("ix_label_change_batch"))
    op.drop_table("label_change")
