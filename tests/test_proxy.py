"""Client addresses behind a reverse proxy, through a real nginx in front of the app served over HTTP, on
both databases.

With ``TRUSTED_PROXIES=1`` every client behind nginx has its own counters (code look-ups, login delays), and
a client cannot choose its address by sending an X-Forwarded-For of its own; with the default 0 a client
talking to the service directly cannot either. Clients are told apart by their source address (127.0.0.2,
127.0.0.3: all of 127.0.0.0/8 is this machine). Needs Debian's nginx: skipped without it, except in CI
(``CI=true``), where a missing nginx is a failure.
"""
from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from survey_service.services import login_throttle
from tests.conftest import PASSWORD

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CONFIG = """\
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass {upstream};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture
def nginx(live_server, tmp_path):
    """The port of an nginx of its own (config, pid, logs and temporary files in tmp_path) that passes every
    request to the live server, the way the README's production set-up does."""
    if not Path(NGINX).exists():
        reason = "nginx not installed (apt-get install nginx; scripts/setup_env.sh installs it with extras)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    port = _free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(CONFIG.format(tmp=tmp_path, port=port, upstream=live_server), encoding="utf-8")
    log = tmp_path / "error.log"
    process = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(conf), "-e", str(log)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        for _ in range(200):  # until it listens, or has stopped on an error
            if process.poll() is not None or _accepts(port):
                break
            time.sleep(0.05)
        if process.poll() is not None:
            pytest.fail(f"nginx stopped: {log.read_text(errors='replace') if log.exists() else ''}")
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def post(port: int, path: str, data: dict, *, source: str, headers: dict | None = None):
    """POST a form over a real connection from the given source address: (status, headers, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(source, 0))
    try:
        connection.request("POST", path, urllib.parse.urlencode(data),
                           {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})})
        response = connection.getresponse()
        return response.status, response.headers, response.read().decode("utf-8")
    finally:
        connection.close()


def port_of(url: str) -> int:
    return urllib.parse.urlsplit(url).port


def wrong_codes(port: int, source: str, times: int, **kw) -> list[int]:
    return [post(port, "/", {"code": f"AAAA-BBBB-CC{i:02d}"}, source=source, **kw)[0] for i in range(times)]


@pytest.fixture
def frozen_clock(monkeypatch):
    """The login throttle's clock stands still (the server runs in this process)."""
    monkeypatch.setattr(login_throttle, "now_ms", lambda: 1_900_000_000_000)


@pytest.mark.app_config(TRUSTED_PROXIES=1, CODE_LOOKUP_LIMIT=3)
def test_behind_nginx_each_client_has_its_own_code_look_up_counter(app, nginx):
    assert wrong_codes(nginx, "127.0.0.2", 4) == [404, 404, 404, 429]
    # A forged X-Forwarded-For does not make a new client: nginx adds the real address after it.
    assert wrong_codes(nginx, "127.0.0.2", 2, headers={"X-Forwarded-For": "198.51.100.7"}) == [429, 429]
    # Another client behind the same proxy still has all its tries.
    assert wrong_codes(nginx, "127.0.0.3", 3) == [404, 404, 404]


@pytest.mark.app_config(TRUSTED_PROXIES=1)
def test_behind_nginx_a_guesser_does_not_keep_the_real_user_out(app, nginx, make_user, frozen_clock):
    make_user("supervisor", username="giamsat")
    guesses = [post(nginx, "/staff/login", {"username": "giamsat", "password": f"guess-{i}-password"},
                    source="127.0.0.2")[0] for i in range(6)]
    assert guesses == [401] * 5 + [429]
    status, headers, body = post(nginx, "/staff/login", {"username": "giamsat", "password": PASSWORD},
                                 source="127.0.0.2")
    assert status == 429 and headers["Retry-After"] == "1" and "Vui lòng đợi 1 giây" in body
    status, headers, _ = post(nginx, "/staff/login", {"username": "giamsat", "password": PASSWORD},
                              source="127.0.0.3")
    assert status == 302 and headers["Location"].endswith("/staff/")


@pytest.mark.app_config(CODE_LOOKUP_LIMIT=3)
def test_without_trusted_proxies_every_client_behind_nginx_is_the_proxy(app, nginx):
    """What the setting is for: left at 0 behind a proxy, one client's failures count for everyone."""
    assert wrong_codes(nginx, "127.0.0.2", 3) == [404, 404, 404]
    assert wrong_codes(nginx, "127.0.0.3", 1) == [429]


@pytest.mark.app_config(CODE_LOOKUP_LIMIT=3)
def test_without_trusted_proxies_a_direct_client_cannot_forge_its_address(app, live_server):
    port = port_of(live_server)
    forged = [post(port, "/", {"code": "AAAA-BBBB-CCCC"}, source="127.0.0.2",
                   headers={"X-Forwarded-For": f"198.51.100.{i}", "X-Real-IP": f"198.51.100.{i}"})[0]
              for i in range(5)]
    assert forged == [404, 404, 404, 429, 429]
