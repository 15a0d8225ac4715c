"""``shiprail release verify-package --chain`` in a project from ``shiprail init``."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def test_a_chain_file_of_one_release_only_is_refused_as_the_wrong_file(shiprail: Any) -> None:
    assert shiprail("release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice").code == 0
    assert shiprail("release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice").code == 0
    assert shiprail("release", "approve", "checkout-2.4.0-2", "--as", "bob").code == 0
    assert shiprail("release", "export", "checkout-2.4.0-2", "--out", "pk").code == 0
    assert shiprail("audit", "export", "--release", "checkout-2.4.0-2", "--out", "one.jsonl").code == 0
    code, out, err = shiprail("release", "verify-package", "pk", "--chain", "one.jsonl")
    assert (code, out, err) == (
        2,
        "",
        "error: --chain: one.jsonl holds only the events of release checkout-2.4.0-2 (seq 2 to 4), as "
        "`shiprail audit export --release` writes them; a package is checked against the whole chain: write it "
        "with `shiprail audit export --out FILE`\n",
    )
    Path("a-dir").mkdir()
    code, out, err = shiprail("release", "verify-package", "pk", "--chain", "a-dir")
    assert (code, out, err) == (
        2,
        "",
        "error: --chain: a-dir is a directory; give the file `shiprail audit export --out FILE` wrote\n",
    )
    # The whole chain checks it.
    assert shiprail("audit", "export", "--out", "all.jsonl").code == 0
    assert shiprail("release", "verify-package", "pk", "--chain", "all.jsonl").code == 0
