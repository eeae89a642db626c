"""Imports what every process of ``make run`` imports, under the interpreter it runs with, and
prints as JSON the distributions those imports come from and every distribution installed.

Run from the repository root in a virtual environment built from requirements.txt alone (as
tests/integration/test_runtime_requirements.py does): an import that fails there is a process
that dies at start on a fresh clone. Exits 1 after naming every import that failed.

    python -m tests.support.runtime_imports
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import shutil
import sys
import traceback
from collections.abc import Callable
from importlib import metadata

# Whatever the interpreter loads before this module (site, .pth hooks) is not the platform's.
_AT_START = set(sys.modules)

# Project packages: every module of them is imported by some process.
PROJECT_PACKAGES = ("controlpanel", "trading", "deploy")

# Modules the processes load by name at run time, so that no project module imports them:
# the servers' command lines, uvicorn[standard]'s extras, the worker's pool and supervisord's
# RPC interface (deploy/supervisord.conf).
ENTRY_POINTS = (
    "gunicorn.app.wsgiapp",
    "gunicorn.workers.sync",
    "uvicorn.__main__",
    "uvicorn.main",
    "uvicorn.loops.uvloop",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.protocols.websockets.websockets_sansio_impl",
    "uvicorn.lifespan.on",
    "celery.__main__",
    "celery.bin.celery",
    "celery.bin.worker",
    "celery.bin.beat",
    "celery.apps.worker",
    "celery.apps.beat",
    "celery.worker.components",
    "celery.worker.consumer",
    "celery.backends.redis",
    "kombu.transport.redis",
    "django_celery_beat.schedulers",
    "channels_redis.core",
    "prometheus_client.multiprocess",
    "supervisor.supervisord",
    "supervisor.supervisorctl",
    "supervisor.rpcinterface",
)

failures: list[str] = []


def attempt(what: str, action: Callable[[], object]) -> None:
    """Runs ``action``; a failure is recorded, not raised, so that one run names them all."""
    try:
        action()
    except Exception as exc:
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        failures.append(
            f"{what}: {type(exc).__name__}: {exc} (raised in {frame.filename}:{frame.lineno})"
        )


def import_project() -> None:
    for package_name in PROJECT_PACKAGES:
        package = importlib.import_module(package_name)
        for module in pkgutil.walk_packages(
            package.__path__,
            f"{package_name}.",
            onerror=lambda name: failures.append(f"{name}: {sys.exc_info()[1]!r}"),
        ):
            attempt(module.name, lambda name=module.name: importlib.import_module(name))


def load_gunicorn() -> None:
    """The web process: gunicorn reads deploy/gunicorn.conf.py, loads the WSGI application and
    its worker class, as ``python -m gunicorn -c deploy/gunicorn.conf.py ...`` does."""
    from gunicorn.app.wsgiapp import WSGIApplication

    argv = sys.argv
    sys.argv = ["gunicorn", "-c", "deploy/gunicorn.conf.py", "controlpanel.wsgi:application"]
    try:
        application = WSGIApplication()
        application.load()
        assert application.cfg.worker_class is not None
    finally:
        sys.argv = argv


def load_uvicorn() -> None:
    """The websocket process: the ASGI application, protocols and event loop uvicorn picks."""
    import uvicorn

    config = uvicorn.Config("controlpanel.asgi:application", host="127.0.0.1", port=0)
    config.load()
    config.get_loop_factory()


def load_celery() -> None:
    """The workers and beat: every tasks module, the broker transport, the result backend, the
    worker pool and the beat scheduler, as the Celery app configures them."""
    from celery.concurrency import get_implementation
    from celery.utils.imports import symbol_by_name

    from controlpanel.celery import app

    app.loader.import_default_modules()
    with app.connection_for_write() as connection:
        assert connection.transport is not None
    assert app.backend is not None
    get_implementation(app.conf.worker_pool)
    symbol_by_name(app.conf.beat_scheduler)


def load_django_parts() -> None:
    """Pieces Django imports on first use: URL patterns, template tag libraries, the channel
    layer and every management command (migrate, bootstrap_admin, train_model, run_feed...)."""
    from channels.layers import get_channel_layer
    from django.core.management import get_commands, load_command_class
    from django.template import engines
    from django.urls import get_resolver

    assert get_resolver().url_patterns
    engines.all()
    assert get_channel_layer() is not None
    for name, app_name in get_commands().items():
        attempt(f"manage.py {name}", lambda a=app_name, n=name: load_command_class(a, n))


def distributions_in_use() -> dict[str, str]:
    providers = metadata.packages_distributions()
    top_level = {name.partition(".")[0] for name in set(sys.modules) - _AT_START}
    names = {
        distribution
        for module in top_level
        if module not in sys.stdlib_module_names
        for distribution in providers.get(module, ())
    }
    return {name: metadata.version(name) for name in sorted(names, key=str.lower)}


def main() -> None:
    # The settings the test suite uses: a private var directory, a Redis URL nothing contacts.
    import tests.environment

    try:
        import django

        attempt("django.setup()", django.setup)
        if not failures:
            import_project()
            attempt("gunicorn (web)", load_gunicorn)
            attempt("uvicorn (websocket)", load_uvicorn)
            attempt("celery (workers, beat)", load_celery)
            attempt("django", load_django_parts)
        for name in ENTRY_POINTS:
            attempt(name, lambda name=name: importlib.import_module(name))
    finally:
        shutil.rmtree(tests.environment.VAR_DIR, ignore_errors=True)
    if failures:
        print("imports that fail under", sys.executable, file=sys.stderr)
        for failure in failures:
            print("  " + failure, file=sys.stderr)
        sys.exit(1)
    installed = {d.metadata["Name"]: d.version for d in metadata.distributions()}
    print(json.dumps({"imported": distributions_in_use(), "installed": installed}, indent=1))


if __name__ == "__main__":
    main()
