"""The ``shiprail`` command (its console script), and ``python -m shiprail`` for when it is not on PATH."""

import sys


def run() -> None:
    """Load the command line and run it. A Ctrl-C while it loads (half a second and more on a busy
    machine: typer, SQLAlchemy, the commands) exits 130 as one a moment later does, not with the
    traceback of whichever import it landed in."""
    try:
        from shiprail.cli.main import main
    except KeyboardInterrupt:
        sys.exit(130)  # 128 + SIGINT, as Click exits for a Ctrl-C once the command runs
    sys.exit(main())


if __name__ == "__main__":
    run()
