"""The names of the label dimensions, apart from the schema so that light readers
(`store.sqlite_reader` and its users) can name them without importing SQLAlchemy."""

LABEL_FIELDS = (
    "issue_type",
    "specific",
    "stage",
    "inner_category",
    "leaf_symptom",
    "fix_patterns",
    "howto_topic",
    "howto_subtopic",
)
LABEL_CELLS = (*LABEL_FIELDS, "memo")  # what a person fills in: the labels and a memo
