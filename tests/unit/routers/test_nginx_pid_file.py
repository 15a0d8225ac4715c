"""Where the nginx router looks for the master's pid: as ``nginx -s`` does, from the configuration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shiprail.routers import NginxRouter, NginxRouterConfig, RouterError
from shiprail.routers.nginx import pid_directive


def router(tmp_path: Path, configure: str, **fields: str) -> NginxRouter:
    """A router whose ``nginx -V`` prints ``configure`` (nginx prints it on stderr)."""
    fake = tmp_path / "nginx"
    fake.write_text(f"#!/bin/sh\necho 'nginx version: nginx/1.22.1' >&2\necho 'configure arguments: {configure}' >&2\n")
    fake.chmod(0o755)
    config = NginxRouterConfig.model_validate(
        {
            "type": "nginx",
            "include_file": str(tmp_path / "checkout.conf"),
            "upstream": "checkout",
            "stable": "127.0.0.1:8001",
            "canary": "127.0.0.1:8002",
            "nginx_binary": str(fake),
            **fields,
        }
    )
    return NginxRouter(config, "checkout")


@pytest.mark.parametrize(
    ("dump", "configure", "fields", "expected"),
    [
        ("pid /run/x.pid;\n", "--prefix=/usr/share/nginx", {}, "/run/x.pid"),
        ("pid logs/x.pid;\n", "--prefix=/usr/share/nginx", {}, "/usr/share/nginx/logs/x.pid"),
        ("pid logs/x.pid;\n", "--prefix=/usr/share/nginx", {"prefix": "/srv/ng"}, "/srv/ng/logs/x.pid"),
        ("", "--prefix=/usr/share/nginx --pid-path=/run/nginx.pid", {}, "/run/nginx.pid"),
        # Built from source without --prefix: nginx's own default, /usr/local/nginx.
        ("", "--with-http_ssl_module", {}, "/usr/local/nginx/logs/nginx.pid"),
        ("# pid /wrong.pid;\n  pid logs/x.pid;\n", "", {}, "/usr/local/nginx/logs/x.pid"),
    ],
)
def test_the_pid_file_is_found_where_nginx_itself_looks(
    tmp_path: Path, dump: str, configure: str, fields: dict[str, str], expected: str
) -> None:
    with pytest.raises(RouterError) as caught:
        router(tmp_path, configure, **fields)._master(dump)
    assert caught.value.message.startswith(f"cannot read nginx's pid file {expected} ")


def test_a_running_master_is_read_from_its_pid_file(tmp_path: Path) -> None:
    pid_file = tmp_path / "nginx.pid"
    pid_file.write_text(f"{os.getpid()}\n")
    assert router(tmp_path, "")._master(f"pid {pid_file};\n") == os.getpid()
    pid_file.write_text("")
    with pytest.raises(RouterError, match="is empty; is nginx running"):
        router(tmp_path, "")._master(f"pid {pid_file};\n")


DUMP = """\
nginx: the configuration file /etc/nginx/nginx.conf syntax is ok
# configuration file /etc/nginx/nginx.conf:
user www-data;
worker_processes auto;
http {
    map $arg_kind $backend {
        pid   pids;   # a map entry whose key is pid: not the directive
        default web;
    }
    include /etc/nginx/conf.d/*.conf;
}
# configuration file /etc/nginx/conf.d/shop.conf:
    log_format main '$remote_addr # $pid';
server { listen 8080; }
"""


@pytest.mark.parametrize(
    ("dump", "expected"),
    [
        # nginx.conf names no pid: the compiled-in path applies, not a map's "pid" key.
        (DUMP, None),
        (DUMP.replace("user www-data;", "user www-data;\npid /run/ng.pid;"), "/run/ng.pid"),
        ('pid "/run/with space.pid"; # the pid file\n', "/run/with space.pid"),
        ("events { worker_connections 10; }\npid /run/after-a-block.pid;\n", "/run/after-a-block.pid"),
        # A pid in a file included at the top level (after modules) counts: that file starts outside blocks.
        (
            "# configuration file /etc/nginx/nginx.conf:\ninclude /etc/nginx/main.d/*.conf;\n"
            "# configuration file /etc/nginx/main.d/pid.conf:\npid /run/included.pid;\n",
            "/run/included.pid",
        ),
        ("# pid /commented.pid;\n", None),
        # A '#' inside a word starts no comment, as nginx reads it; one after a ';' or '}' does.
        ("pid /run/a#b.pid;\n", "/run/a#b.pid"),
        ("events {}#pid /commented.pid;\n", None),
    ],
)
def test_only_the_main_contexts_pid_directive_names_the_pid_file(dump: str, expected: str | None) -> None:
    assert pid_directive(dump) == expected
