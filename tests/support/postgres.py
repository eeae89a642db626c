"""A private PostgreSQL server for a test, when this machine has PostgreSQL's programs."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from deploy.redis_server import free_port


def postgres_programs() -> Path | None:
    """The directory of ``initdb``, ``pg_ctl`` and ``postgres``, or None when not installed."""
    initdb = shutil.which("initdb")
    if initdb is None:
        return None
    directory = Path(initdb).resolve().parent
    if all((directory / name).exists() for name in ("pg_ctl", "postgres")):
        return directory
    return None


class LocalPostgres:
    """A server on 127.0.0.1 on a free port with its data in a directory of its own, holding one
    database owned by one user, as the postgres image makes from POSTGRES_DB, POSTGRES_USER and
    POSTGRES_PASSWORD. PostgreSQL refuses to run as root, so as root it runs as ``postgres``."""

    def __init__(self, programs: Path, database: str, user: str, password: str) -> None:
        self.programs = programs
        self.database, self.user, self.password = database, user, password
        self.port = free_port()
        # Its own directory under /tmp: the server's user must be able to reach it.
        self.root = Path(tempfile.mkdtemp(prefix="qt-postgres-"))
        self.data_dir = self.root / "data"
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def run(self, program: str, *args: str) -> None:
        command = [*self.as_user, str(self.programs / program), *args]
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
        assert result.returncode == 0, f"{program}: {result.stdout}{result.stderr}"

    def start(self) -> LocalPostgres:
        if self.as_user:
            shutil.chown(self.root, "postgres")
        password_file = self.root / "password"
        password_file.write_text(self.password + "\n")
        if self.as_user:
            shutil.chown(password_file, "postgres")
        self.run(
            "initdb", "-D", str(self.data_dir), "-U", self.user, "--pwfile", str(password_file),
            "--auth-local", "trust", "--auth-host", "scram-sha-256", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.root / "server.log"),
            "-o", options, "-w", "start",
        )  # fmt: skip
        command = f"CREATE DATABASE {self.database} OWNER {self.user}"
        self.run("psql", "-h", str(self.root), "-p", str(self.port), "-U", self.user,
                 "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", command)  # fmt: skip
        return self

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self.run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
