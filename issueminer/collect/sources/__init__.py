"""One module per data source, each yielding the same envelope for the store."""
