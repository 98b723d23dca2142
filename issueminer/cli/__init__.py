"""The command line: one Typer app per area, composed in `main`."""
