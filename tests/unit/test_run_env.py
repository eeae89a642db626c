"""What make run writes into var/ (run.env, secrets, modes) and what the entry points read back."""

from __future__ import annotations

import stat
from pathlib import Path

from controlpanel.startup import load_run_env
from deploy import run
from deploy.redis_server import free_port, masked_url, url_password, url_with_password


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_run_env_fills_in_what_the_environment_does_not_set_and_an_exported_value_wins(tmp_path):
    (tmp_path / "run.env").write_text(
        "# a comment\nPORT=18000\nDJANGO_SECRET_KEY=from=run.env\nREDIS_URL=redis://:pw@h:1/0\n"
    )
    environ = {"QT_VAR_DIR": str(tmp_path), "PORT": "9000", "REDIS_URL": "  "}
    assert load_run_env(environ) == ["DJANGO_SECRET_KEY", "REDIS_URL"]
    assert environ == {
        "QT_VAR_DIR": str(tmp_path),
        "PORT": "9000",
        "DJANGO_SECRET_KEY": "from=run.env",
        "REDIS_URL": "redis://:pw@h:1/0",
    }


def test_without_run_env_nothing_is_filled_in(tmp_path):
    environ = {"QT_VAR_DIR": str(tmp_path)}
    assert load_run_env(environ) == []
    assert environ == {"QT_VAR_DIR": str(tmp_path)}


def test_a_password_goes_into_a_redis_url_and_never_out_of_it_when_printed():
    url = url_with_password("redis://127.0.0.1:6379/0", "p@ss:w/rd")
    assert url_password(url) == "p@ss:w/rd"
    assert masked_url(url) == "redis://:***@127.0.0.1:6379/0"
    assert masked_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert url_password("redis://127.0.0.1:6379/0") is None


def test_a_second_run_on_the_same_var_keeps_its_secrets_and_makes_an_old_var_private(
    tmp_path, monkeypatch, capsys
):
    var_dir = tmp_path / "var"
    for name in ("DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "WS_PORT", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QT_VAR_DIR", str(var_dir))
    monkeypatch.setenv("PORT", "18000")
    # Nothing answers there: make run is to start its own server.
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    first = run.prepare_environment()
    password = (var_dir / "redis-password").read_text().strip()
    assert first["REDIS_URL"] == url_with_password(first["REDIS_URL"], password)
    assert first["QT_START_REDIS"] == "true"
    assert str(var_dir / "redis.conf") in first["QT_REDIS_COMMAND"]
    assert password not in first["QT_REDIS_COMMAND"] + capsys.readouterr().out

    # What an earlier version left: everything readable by everyone.
    (var_dir / "log" / "web.log").write_text("a token in a log line\n")
    for path in [var_dir, *var_dir.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    second = run.prepare_environment()
    assert second["REDIS_URL"] == first["REDIS_URL"]
    assert second["DJANGO_SECRET_KEY"] == first["DJANGO_SECRET_KEY"]
    for path in [var_dir, *var_dir.rglob("*")]:
        assert mode(path) == (0o700 if path.is_dir() else 0o600), path

    written = {"QT_VAR_DIR": str(var_dir)}
    load_run_env(written)
    assert written == {
        "QT_VAR_DIR": str(var_dir),
        "HOST": "127.0.0.1",
        "PORT": "18000",
        "WS_PORT": "18001",
        "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1,[::1]",
        "DJANGO_SECRET_KEY": first["DJANGO_SECRET_KEY"],
        "REDIS_URL": first["REDIS_URL"],
        "QT_REDIS_PREFIX": "qt",
    }
