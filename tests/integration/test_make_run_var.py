"""What `make run` leaves in its var directory: every command the README shows finds the platform
from a new shell, and another local user can read and reach nothing of it."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from deploy import run
from deploy.redis_server import (
    find_redis_server,
    free_port,
    port_in_use,
    redis_answers,
    server_command,
    url_with_password,
    wait_until_answering,
    write_password_config,
)
from tests.support.launcher import start_launcher, stop_launcher, wait_until_ready
from tests.support.processes import ROOT, Process, wait_for

README_COMMAND = re.compile(r"manage\.py\s+([a-z][a-z_]+)")
NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")


@dataclass
class Platform:
    launcher: subprocess.Popen
    home: Path
    var_dir: Path
    base: str
    redis_port: int
    log: Path
    started: str


def free_port_pair() -> int:
    """A free port whose next one is free too: WS_PORT defaults to PORT + 1."""
    while True:
        port = free_port()
        if port < 65535 and not port_in_use("127.0.0.1", port + 1):
            return port


def new_shell() -> dict[str, str]:
    """The environment of a new login shell: nothing of the platform's exported."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
    }


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    """`make run` on a port other than 8000, starting its own Redis: nothing answers at the
    REDIS_URL it is given."""
    home = Path(tempfile.mkdtemp(prefix="qt-make-run-"))
    # Other users may come this far: only the modes inside var/ keep them out of it.
    home.chmod(0o755)
    var_dir = home / "var"
    port, redis_port = free_port_pair(), free_port()
    assert port != 8000
    env = {
        **new_shell(),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "QT_VAR_DIR": str(var_dir),
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "QT_WORKER_CONCURRENCY": "1",
    }
    log = home / "run.log"
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    launcher = start_launcher(env, log)
    try:
        wait_until_ready(launcher, log)
        base = f"http://127.0.0.1:{port}"
        yield Platform(launcher, home, var_dir, base, redis_port, log, started)
    finally:
        stop_launcher(launcher, var_dir)
        shutil.rmtree(home, ignore_errors=True)


def readme_commands() -> set[str]:
    return set(README_COMMAND.findall((ROOT / "README.md").read_text()))


def api(platform: Platform, token: str, path: str) -> dict:
    request = urllib.request.Request(
        f"{platform.base}{path}", headers={"Authorization": f"Token {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def log_in(platform: Platform, username: str, password: str) -> str:
    """Logs in through the login form: "in", "refused" (wrong password) or "locked"."""
    url = f"{platform.base}/accounts/login/"
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    with opener.open(url, timeout=10) as response:
        page = response.read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = {"username": username, "password": password, "csrfmiddlewaretoken": csrf}
    request = urllib.request.Request(
        url, data=urllib.parse.urlencode(form).encode(), headers={"Referer": url}
    )
    try:
        with opener.open(request, timeout=10) as response:
            return "refused" if response.url.startswith(url) else "in"
    except urllib.error.HTTPError as error:
        assert error.code == 429, f"login answered {error.code}"
        return "locked"


def test_every_manage_py_command_the_readme_shows_works_from_a_new_shell(platform):
    # A new shell carries QT_VAR_DIR only because this platform's var/ is a temporary directory;
    # with make run's default var/ it carries nothing at all.
    shell = {**new_shell(), "QT_VAR_DIR": str(platform.var_dir)}
    ran: set[str] = set()

    def manage(*args: str, env: dict[str, str] | None = None) -> str:
        ran.add(args[0])
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**shell, **(env or {})},
            capture_output=True,
            text=True,
            timeout=240,
        )
        command = " ".join(args)
        assert result.returncode == 0, f"manage.py {command}:\n{result.stdout}{result.stderr}"
        return result.stdout

    token = manage("drf_create_token", "admin").split()[2]
    assert api(platform, token, "/api/v1/risk")["state"] == "ACTIVE"
    assert json.loads(manage("show_risk"))["state"] == "ACTIVE"

    manage("halt_trading", "--reason", "halted from a new shell")
    assert api(platform, token, "/api/v1/risk")["state"] == "HALTED"
    assert json.loads(manage("show_risk"))["state"] == "HALTED"

    def halt_in_the_log() -> bool:
        lines = manage("events", "--type", "risk.state_changed", "--since", platform.started)
        events = [json.loads(line) for line in lines.splitlines()]
        return any(e["payload"]["reason"] == "halted from a new shell" for e in events)

    wait_for(halt_in_the_log, 20, "the halt in the event log", step=0.5)
    manage("resume_trading")
    assert api(platform, token, "/api/v1/risk")["state"] == "ACTIVE"

    assert re.fullmatch(r"published \d+ events\n", manage("relay_events", "--once"))
    # make run's feed process (manage.py run_feed) publishes the bars into the same log.
    bars = manage("events", "--type", "market.bar", "--since", platform.started, "--limit", "5")
    assert [json.loads(line)["type"] for line in bars.splitlines()] == ["market.bar"] * 5
    ran.add("run_feed")

    # The system checks go to the platform's port, not 8000, and every scenario passes there.
    settings = "from django.conf import settings; print(settings.SELFTEST_BASE_URL)"
    assert manage("shell", "-c", settings).splitlines()[-1] == platform.base
    # The integration suite: the e2e suite's performance scenario holds signal generation to a
    # time a machine busy with other tests need not meet.
    # Backtest parity skips, with its reason, on a book that runs the ai model alone.
    report = manage("selftest", "--suite", "integration")
    suites = re.findall(r"^(\w+): \d+ passed, 0 failed, (\d+) skipped", report, re.M)
    assert suites == [("integration", "1")], report
    assert "SKIP  backtest_parity" in report and "runs no rule strategy" in report, report

    manage(
        "createsuperuser", "--noinput", "--username", "ops", "--email", "ops@example.com",
        env={"DJANGO_SUPERUSER_PASSWORD": "ops password 1"},
    )  # fmt: skip
    assert log_in(platform, "ops", "ops password 1") == "in"
    manage(
        "shell", "-c",
        "from django.contrib.auth.models import User, Group; "
        "u = User.objects.create_user('olivia', password='operator password 1', is_staff=True); "
        "u.groups.add(Group.objects.get(name='Operator'))",
    )  # fmt: skip
    assert log_in(platform, "olivia", "operator password 1") == "in"

    # The fifth failure (QT_LOGIN_FAILURE_LIMIT) locks the account, even to the right password.
    failures = [log_in(platform, "olivia", "a wrong password") for _ in range(5)]
    assert failures == ["refused"] * 4 + ["locked"]
    assert log_in(platform, "olivia", "operator password 1") == "locked"
    manage("axes_reset")
    assert log_in(platform, "olivia", "operator password 1") == "in"

    assert "trained on" in manage("train_model")
    # docker-compose's first step, safe to run again on a prepared platform.
    manage("prepare_platform")
    assert (
        log_in(platform, "admin", (platform.var_dir / "admin-password").read_text().strip()) == "in"
    )
    # The README's deployment check, with the settings it says to add behind TLS.
    tls = {
        "DJANGO_SECURE_COOKIES": "true",
        "DJANGO_SECURE_SSL_REDIRECT": "true",
        "DJANGO_HSTS_SECONDS": "31536000",
        "DJANGO_HSTS_PRELOAD": "true",
    }
    manage("check", "--deploy", "--fail-level", "WARNING", env=tls)

    # The bar store, a backtest on it and the feature study, offline on the bundled history.
    window = manage("bars", "--symbol", "BTCUSDT", "--start", "2025-09-10T00:00Z",
                    "--end", "2025-09-10T01:00Z")  # fmt: skip
    assert len(window.splitlines()) >= 12, window
    report = manage(
        "backtest", "--strategy", "sma_crossover", "--symbols", "BTCUSDT",
        "--start", "2025-08-21T00:00:00+00:00", "--end", "2025-08-23T00:00:00+00:00",
    )  # fmt: skip
    assert "BTCUSDT" in report, report
    study = manage("feature_study", "--symbols", "BTCUSDT", "--folds", "2", "--only", "base")
    assert "base" in study, study
    # Two commands reach servers no test may: Binance (download_klines, tested at its HTTP
    # seam in tests/integration/marketdata/test_download_klines.py) and Telegram
    # (run_telegram_bot, run as this same command against a local Bot API in
    # tests/integration/notifications/test_telegram_bot.py).
    ran |= {"download_klines", "run_telegram_bot"}

    missing = readme_commands() - ran
    assert not missing, f"README.md shows manage.py {sorted(missing)}, which this test does not run"


def as_nobody(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*NOBODY, "bash", "-c", script], env=new_shell(), capture_output=True, text=True, timeout=60
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another local user needs root")
@pytest.mark.skipif(not shutil.which("setpriv"), reason="setpriv (util-linux) is not installed")
def test_another_local_user_can_read_and_reach_nothing(platform):
    var = platform.var_dir
    password = (var / "redis-password").read_text().strip()
    names = ["db.sqlite3", "db.sqlite3-wal", "db.sqlite3-shm", "secret-key", "run.env"]
    names += ["redis-password", "redis.conf", "admin-password"]
    private = [var / name for name in names]
    private += sorted((var / "log").iterdir()) + sorted((var / "redis").rglob("*.aof*"))
    assert all(path.exists() for path in private), [p for p in private if not p.exists()]
    assert any(".aof" in path.name for path in private)

    for path in [var, *var.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_dir():
            assert mode == 0o700, f"{path} is {mode:o}"
        elif path.is_file():
            assert mode == 0o600, f"{path} is {mode:o}"
        else:
            assert mode & 0o077 == 0, f"{path} is {mode:o}"

    # The user reaches var/ itself: only its modes keep them out.
    assert as_nobody(f"ls {platform.home}").stdout.split() == ["run.log", "var"]
    read = as_nobody(
        f'for f in {" ".join(map(str, private))}; do head -c1 "$f" >/dev/null && echo "$f"; done'
    )
    assert read.stdout == "", f"another user read:\n{read.stdout}"
    assert read.stderr.count("Permission denied") == len(private)

    # Redis wants the password: no command runs without it, not even a PING.
    probe = as_nobody(
        f"exec 3<>/dev/tcp/127.0.0.1/{platform.redis_port}; "
        "printf 'PING\\r\\nLPUSH qt:celery:exec_risk from-nobody\\r\\nQUIT\\r\\n' >&3; cat <&3"
    )
    assert probe.stdout.splitlines()[:2] == ["-NOAUTH Authentication required."] * 2, probe
    client = redis.Redis(port=platform.redis_port, password=password, decode_responses=True)
    assert "from-nobody" not in client.lrange("qt:celery:exec_risk", 0, -1)
    client.close()

    # Nor is the password anywhere that user can look: process arguments and environments.
    seen = as_nobody("cat /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null; true")
    assert "redis-server" in seen.stdout and password not in seen.stdout
    printed = platform.log.read_text()
    assert f"starting a local Redis server on port {platform.redis_port}" in printed
    assert password not in printed


def test_a_local_server_wants_the_password_it_was_started_with(tmp_path):
    password = 'with "quotes", a \\ and spaces'
    config = tmp_path / "redis.conf"
    write_password_config(config, password)
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    port = free_port()
    command = server_command(find_redis_server(install=False), port, tmp_path, config_file=config)
    assert password not in " ".join(command)
    server = Process(f"redis-{port}", command, os.environ, tmp_path / "log").start()
    try:
        url = f"redis://127.0.0.1:{port}/0"
        wait_until_answering(url_with_password(url, password), 15, server.popen)
        assert not redis_answers(url)
        assert not redis_answers(url_with_password(url, "another password"))
    finally:
        server.stop()


def test_a_second_run_uses_the_server_the_first_started_on_this_var(tmp_path, monkeypatch, capsys):
    """A server from an earlier run on this var/ (still up) answers only with var/'s password:
    the launcher finds it with that password instead of calling its port taken."""
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    password = run.read_or_create_secret(var_dir / "redis-password")
    write_password_config(tmp_path / "redis.conf", password)
    port = free_port()
    command = server_command(
        find_redis_server(install=False), port, tmp_path, config_file=tmp_path / "redis.conf"
    )
    server = Process(f"redis-{port}", command, os.environ, tmp_path / "log").start()
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_until_answering(url_with_password(url, password), 15, server.popen)
        monkeypatch.setenv("QT_VAR_DIR", str(var_dir))
        monkeypatch.setenv("REDIS_URL", url)
        env = run.prepare_environment()
    finally:
        server.stop()
    assert env["REDIS_URL"] == url_with_password(url, password)
    assert env["QT_START_REDIS"] == "false"
    printed = capsys.readouterr().out
    assert f"using the Redis server at redis://:***@127.0.0.1:{port}/0" in printed
    assert password not in printed
