"""drop indexes that repeat the first column of another index on the same table

Every one of these columns leads a unique constraint (or ix_annotation_current), whose
index answers the same lookups; a second index only slows every insert (a dump scan
stores thousands of replies per commit).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

REDUNDANT = [  # (index, table, column)
    ("ix_reply_issue_uid", "reply", "issue_uid"),
    ("ix_annotation_issue_uid", "annotation", "issue_uid"),
    ("ix_final_label_issue_uid", "final_label", "issue_uid"),
    ("ix_prediction_issue_uid", "prediction", "issue_uid"),
    ("ix_round_item_round", "round_item", "round"),
]


def upgrade() -> None:
    for index, table, _column in REDUNDANT:
        op.drop_index(index, table_name=table)


def downgrade() -> None:
    for index, table, column in REDUNDANT:
        op.create_index(index, table, [column], unique=False)
