"""label parts: an issue may hold several labels of one type, numbered 1, 2, ...

One GitHub issue can report several faults (the TOSEM 2023 sheets merge its Link cell over
one row per fault). Final labels were unique per (issue, type), so every further label
became an issue of its own, without a link or a source. `part` numbers an issue's labels of
one type in the sheet's order, on final labels and on annotations (whose k-th rows of two
annotators are compared). Existing rows are each their issue's first part.

SQLite reflects the old unique constraint without a name; the batch's naming convention
gives it one so that it can be dropped.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

NEW_UNIQUE = "uq_final_label_part"
# the name PostgreSQL gave the old (issue_uid, issue_type) constraint, and the one the
# naming convention below gives it on SQLite
OLD_UNIQUE = {"postgresql": "final_label_issue_uid_issue_type_key"}
SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_N_name)s"}
SQLITE_OLD_UNIQUE = "uq_final_label_issue_uid_issue_type"


def _part_column() -> sa.Column:
    return sa.Column("part", sa.Integer(), nullable=False, server_default=sa.text("1"))


def _old_unique_name() -> str:
    dialect = op.get_bind().dialect.name
    return OLD_UNIQUE.get(dialect, SQLITE_OLD_UNIQUE)


def upgrade() -> None:
    with op.batch_alter_table("annotation", schema=None) as batch_op:
        batch_op.add_column(_part_column())
    with op.batch_alter_table(
        "final_label", schema=None, naming_convention=SQLITE_NAMES
    ) as batch_op:
        batch_op.add_column(_part_column())
        batch_op.drop_constraint(_old_unique_name(), type_="unique")
        batch_op.create_unique_constraint(NEW_UNIQUE, ["issue_uid", "issue_type", "part"])


def downgrade() -> None:
    # an issue's further parts cannot fit the old constraint: only first parts survive
    op.execute(sa.text("DELETE FROM final_label WHERE part > 1"))
    with op.batch_alter_table("final_label", schema=None) as batch_op:
        batch_op.drop_constraint(NEW_UNIQUE, type_="unique")
        batch_op.create_unique_constraint(_old_unique_name(), ["issue_uid", "issue_type"])
        batch_op.drop_column("part")
    with op.batch_alter_table("annotation", schema=None) as batch_op:
        batch_op.drop_column("part")
