"""How a finished command is told in a summary: its signal by name, sizes in binary units."""

from __future__ import annotations

from shiprail.checks.tests import Finished, byte_size
from shiprail.text import shell_status, signal_name


def finished(exit_code: int | None, **kw: object) -> Finished:
    return Finished(exit_code, False, 2.04, "", "", 0, 0, **kw)  # type: ignore[arg-type]


def test_an_exit_and_a_signal_are_told_apart() -> None:
    assert finished(3).ended() == "exited with 3"
    assert finished(0).ended() == "exited with 0"
    assert finished(-9).ended() == "was killed by SIGKILL"
    assert finished(-15).ended() == "was killed by SIGTERM"
    assert (finished(-9).signalled, finished(137).signalled, finished(None).signalled) == (True, False, False)


def test_a_shells_status_above_128_names_the_signal_that_killed_its_command() -> None:
    assert finished(139, via_shell=True).ended() == "exited with 139 (a command it ran was killed by SIGSEGV)"
    assert finished(137, via_shell=True).ended() == "exited with 137 (a command it ran was killed by SIGKILL)"
    # A program run without a shell means what it says, and 128 itself or 255 are plain statuses.
    assert finished(139).ended() == "exited with 139"
    assert (shell_status(128), shell_status(255), shell_status(3)) == ("128", "255", "3")


def test_a_signal_without_a_name_is_given_by_number() -> None:
    assert signal_name(11) == "SIGSEGV"
    assert signal_name(250) == "signal 250"


def test_the_cap_is_told_in_binary_units() -> None:
    assert byte_size(64 * 1024 * 1024) == "64 MiB"
    assert byte_size(1536) == "1.5 KiB"
    assert byte_size(100) == "100 bytes"
    assert byte_size(3 << 30) == "3 GiB"
    assert finished(-9, output_cap=64 << 20).capped() == "its output passed the 64 MiB cap after 2.0 s"
    assert finished(-9, output_cap=64 << 20).evidence()["output_cap_bytes"] == 64 << 20
    assert finished(0).evidence()["output_cap_bytes"] is None
