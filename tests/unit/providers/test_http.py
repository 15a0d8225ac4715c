"""The providers' HTTP helpers that need no network: how a URL is shown."""

from __future__ import annotations

import pytest

from shiprail.providers.http import shown_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://admin:s3cret@stats.internal:8080/v/2.4.0?api_key=tok", "http://stats.internal:8080/v/2.4.0"),
        ("https://stats.internal/v", "https://stats.internal/v"),
        # An IPv6 address stays bracketed: it was shown http://::1:9090, the port read as part of the address.
        ("http://admin:s3cret@[::1]:9090/api?token=tok", "http://[::1]:9090/api"),
        ("http://[fe80::1]/metrics", "http://[fe80::1]/metrics"),
        # A port no URL can hold (a server's Location header): shown as written, never a ValueError.
        ("http://admin:s3cret@stats.internal:99999/v?api_key=tok", "http://stats.internal:99999/v"),
        ("http://admin:s3cret@stats.internal:x/v#tok", "http://stats.internal:x/v"),
        ("http://admin:s3cret@[::1/v?api_key=tok", "http://[::1/v"),
    ],
)
def test_shown_url_keeps_the_address_and_drops_the_credentials(url: str, shown: str) -> None:
    assert shown_url(url) == shown
