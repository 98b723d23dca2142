"""round items (the issues drawn into a labelling round, in order); index of issues with text

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "round_item",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("round", sa.String(length=100), nullable=False),
        sa.Column("issue_uid", sa.String(length=40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["issue_uid"], ["issue.uid"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["round"], ["labeling_round.name"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("round", "issue_uid"),
    )
    with op.batch_alter_table("round_item", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_round_item_round"), ["round"], unique=False)
    op.create_index(
        "ix_issue_has_text",
        "issue",
        ["uid"],
        unique=False,
        sqlite_where=sa.text("text IS NOT NULL"),
        postgresql_where=sa.text("text IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_issue_has_text", table_name="issue")
    with op.batch_alter_table("round_item", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_round_item_round"))
    op.drop_table("round_item")
