"""The wheel works on its own: built from the sources, installed in a fresh virtualenv and run from
another directory, it finds its bundled questionnaires, rounds, templates and migrations, validates
without secrets and loads every bundled round."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("survey_service", "analysis", "questionnaires", "templates", "migrations", "alembic.ini", "setup.py",
           "setup.cfg", "pyproject.toml", "MANIFEST.in", "README.md")
#: Everything the test installs is already here: pip need not ask an index or check its own version.
QUIET = ("-q", "--disable-pip-version-check")


def run(*args, cwd, env=None, check=True) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A virtualenv with only the wheel installed; its dependencies come from the test environment's
    site-packages (without that environment's editable install of the service)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    for name in SOURCES:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        copy(REPO / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                        if (REPO / name).is_dir() else {}))
    # Built with the test environment's setuptools and wheel (the test extra), without fetching them again.
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", *QUIET,
        "-w", tmp / "dist", src, cwd=tmp)
    (wheel,) = (tmp / "dist").glob("survey_service-*.whl")
    venv = tmp / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp)
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp)
                .stdout.strip())
    (site / "test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(python, "-m", "pip", "install", "--no-deps", "--no-index", *QUIET, wheel, cwd=tmp)
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SURVEY_")}
    env["SURVEY_DATABASE_URL"] = f"sqlite:///{tmp / 'wheel.sqlite'}"
    return venv, elsewhere, env


def test_the_installed_package_finds_its_data_inside_itself(installed):
    venv, elsewhere, env = installed
    code = ("import survey_service, survey_service.config as c; "
            "print(survey_service.__file__); print(c.data_path('questionnaires')); print(c.data_path('templates'))")
    lines = run(venv / "bin" / "python", "-c", code, cwd=elsewhere, env=env).stdout.split()
    package = Path(lines[0]).parent
    assert package.is_relative_to(venv) and not package.is_relative_to(REPO)
    assert Path(lines[1]) == package / "bundled" / "questionnaires"
    assert Path(lines[2]) == package / "bundled" / "templates"


def test_validating_and_loading_from_the_wheel_need_no_secret(installed):
    venv, elsewhere, env = installed
    cli = venv / "bin" / "survey-service"
    checked = run(cli, "questionnaires", "check", cwd=elsewhere, env=env).stdout
    assert "phiếu hợp lệ." in checked
    assert "Traceback" not in run(cli, "users", "token", "--help", cwd=elsewhere, env=env).stdout
    bundled = Path(run(venv / "bin" / "python", "-c",
                       "from survey_service.config import data_path; print(data_path('questionnaires'))",
                       cwd=elsewhere, env=env).stdout.strip())
    round_dirs = sorted(p for p in (bundled / "rounds").iterdir() if (p / "round.yaml").is_file())
    assert "QNA-2023" in [p.name for p in round_dirs]
    run(cli, "db", "upgrade", cwd=elsewhere, env=env)
    for round_dir in round_dirs:
        assert f"Đợt {round_dir.name} hợp lệ." in run(cli, "round", "check", round_dir, cwd=elsewhere, env=env).stdout
        assert f"Đã nạp đợt {round_dir.name}." in run(cli, "round", "load", round_dir, cwd=elsewhere,
                                                      env=env).stdout
    refused = run(cli, "sheets", "print", "--round", "QNA-2023", "--out", "x.pdf", cwd=elsewhere, env=env,
                  check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == [
        "LỖI Lệnh này cần thiết lập bí mật SHEET_SIGNING_KEYS, chưa được đặt: đặt trong instance/config.py hoặc biến "
        "môi trường SURVEY_SHEET_SIGNING_KEYS (SHEET_SIGNING_KEYS là danh sách JSON, ví dụ "
        "'[\"key-2024\", \"key-2023\"]')."]


def test_the_installed_app_serves_its_pages(installed):
    venv, elsewhere, env = installed
    code = ("from survey_service import create_app\n"
            "app = create_app({'SECRET_KEY': 's', 'SHEET_SIGNING_KEYS': ['k']})\n"
            "c = app.test_client()\n"
            "home, css, login = c.get('/'), c.get('/static/css/portal.css'), c.get('/staff/login')\n"
            "print(home.status_code, css.status_code, login.status_code, 'Chỉ số cải cách hành chính' in home.text)")
    assert run(venv / "bin" / "python", "-c", code, cwd=elsewhere, env=env).stdout.split() == [
        "200", "200", "200", "True"]


def test_the_installed_package_serves_the_demo(installed, tmp_path):
    """As the README's first command does from a checkout, but with the installed wheel only: `demo setup`
    writes the instance's secrets and opens the round, gunicorn serves it and a demo account logs in."""
    import http.cookiejar
    import re
    import socket
    import time
    import urllib.parse
    import urllib.request

    venv, elsewhere, env = installed
    env = {**env, "SURVEY_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite'}", "SURVEY_DEMO": "true"}
    printed = run(venv / "bin" / "survey-service", "demo", "setup", cwd=elsewhere, env=env).stdout
    password = re.search(r"^\s+admin\s+\S+\s+(\S+)$", printed, re.M).group(1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [venv / "bin" / "python", "-m", "gunicorn", "--workers", "1", "--bind", f"127.0.0.1:{port}",
         "--logger-class", "survey_service.accesslog.MaskingLogger", "survey_service:create_app()"],
        cwd=elsewhere, env={**env, "SURVEY_DEMO": "", "SURVEY_SESSION_COOKIE_SECURE": "false"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        for _ in range(150):
            try:
                home = browser.open(base + "/", timeout=5).read().decode()
                break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode()
                time.sleep(0.2)
        else:
            raise AssertionError("gunicorn did not answer")
        assert "Chỉ số cải cách hành chính" in home and "Quảng Nam" in home
        login = browser.open(base + "/staff/login", timeout=5).read().decode()
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', login).group(1)
        form = urllib.parse.urlencode({"csrf_token": token, "username": "admin", "password": password}).encode()
        staff = browser.open(base + "/staff/login", data=form, timeout=5)
        assert staff.url.rstrip("/") != base + "/staff/login" and "Quản trị hệ thống" in staff.read().decode()
    finally:
        server.terminate()
        server.wait(timeout=30)
