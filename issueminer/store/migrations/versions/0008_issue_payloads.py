"""issue payloads: every earlier payload of an issue, and the issue's author

A re-crawl stores the newest payload its source sends (nulls and removed labels included);
the payload it replaces is kept here with what changed, so nothing is lost and `issues show`
can say what changed and when. `issue.author` holds the asker's display name or login.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a plain ADD COLUMN: a batch would copy `issue` on SQLite, and dropping the old table
    # cascades to every label that points at it
    op.add_column("issue", sa.Column("author", sa.String(length=200), nullable=True))
    op.create_table(
        "issue_payload",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("issue_uid", sa.String(length=40), nullable=False),
        sa.Column("found_by", sa.String(length=200), nullable=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.Column("raw_updated_on", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["issue_uid"], ["issue.uid"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_issue_payload_issue_uid", "issue_payload", ["issue_uid"])


def downgrade() -> None:
    op.drop_index("ix_issue_payload_issue_uid", table_name="issue_payload")
    op.drop_table("issue_payload")
    op.drop_column("issue", "author")  # SQLite 3.35 and later drop a column in place
