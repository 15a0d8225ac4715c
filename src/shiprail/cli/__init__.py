"""The ``shiprail`` command line (Typer + Rich)."""
