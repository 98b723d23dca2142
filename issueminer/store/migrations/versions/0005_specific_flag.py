"""rename the label column distributed_specific to specific

The yes/no flag "is this fault specific to the study's subject" was named after the first
study that used the tool; every study has it, and the stats, the app and the study files
already call it `specific`. The values stay as they are.

batch_alter_table renames the column in place on PostgreSQL; on SQLite it copies the table
into a new one with the renamed column (rows, indexes and constraints come along).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

OLD, NEW = "distributed_specific", "specific"
TABLES = ("annotation", "final_label")  # every table with the label fields (LabelFields)


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(OLD, new_column_name=NEW)


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(NEW, new_column_name=OLD)
