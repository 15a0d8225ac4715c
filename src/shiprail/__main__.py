"""``python -m shiprail``: the command line, for when the ``shiprail`` script is not on PATH."""

from shiprail.cli.main import run

run()
