"""Collect: bring issues in (APIs, the data dump, files, replication packages), keep the
relevant ones, and store them. Uses only the ground (store, taxonomy, study, ids, text,
findings, label_cells)."""
