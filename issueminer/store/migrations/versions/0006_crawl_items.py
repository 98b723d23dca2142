"""crawl items: what a crawl run has kept, one row each, instead of inside its checkpoint

A data-dump scan kept every question and attached answer in its checkpoint, which every
commit rewrote whole: fine for a study's few thousand, slow for a selection that keeps a
million. Rows here are only added, each with the checkpoint that covers it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crawl_item",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["crawl_run.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "kind", "key"),
    )


def downgrade() -> None:
    op.drop_table("crawl_item")
