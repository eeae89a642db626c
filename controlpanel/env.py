"""Typed readers for settings that come from the environment.

Each reader returns the parsed value or raises ``ImproperlyConfigured`` with a one-line message
that names the variable, the value it got and what it expected. ``manage.py``, the ASGI module and
the Celery app turn that error into a single line on stderr and a non-zero exit.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from trading.primitives import InvalidInput, read_symbol_list

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

Environ = Mapping[str, str]


def _raw(name: str, environ: Environ | None) -> str | None:
    value = (os.environ if environ is None else environ).get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _bad(name: str, value: str, expected: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{name}={value!r} is not valid: expected {expected}")


def env_str(name: str, default: str | None = None, *, environ: Environ | None = None) -> str:
    """Returns the variable's value, or ``default``; raises when both are missing."""
    value = _raw(name, environ)
    if value is not None:
        return value
    if default is None:
        raise ImproperlyConfigured(f"{name} is required but not set")
    return default


def env_bool(name: str, default: bool, *, environ: Environ | None = None) -> bool:
    value = _raw(name, environ)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _bad(name, value, "a boolean (true/false, 1/0, yes/no, on/off)")


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Environ | None = None,
) -> int:
    value = _raw(name, environ)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise _bad(name, value, "an integer") from None
    _check_range(name, value, number, minimum, maximum)
    return number


def env_float(
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    environ: Environ | None = None,
) -> float:
    value = _raw(name, environ)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise _bad(name, value, "a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise _bad(name, value, "a finite number")
    _check_range(name, value, number, minimum, maximum)
    return number


def env_decimal(
    name: str,
    default: str,
    *,
    minimum: str | None = None,
    maximum: str | None = None,
    environ: Environ | None = None,
) -> Decimal:
    """An exact decimal (money, rates); rejects NaN and infinities."""
    value = _raw(name, environ) or default
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise _bad(name, value, "a decimal number") from None
    if not number.is_finite():
        raise _bad(name, value, "a finite decimal number")
    if minimum is not None and number < Decimal(minimum):
        raise _bad(name, value, f"a number >= {minimum}")
    if maximum is not None and number > Decimal(maximum):
        raise _bad(name, value, f"a number <= {maximum}")
    return number


def _check_range(
    name: str, value: str, number: float, minimum: float | None, maximum: float | None
) -> None:
    if minimum is not None and number < minimum:
        raise _bad(name, value, f"a number >= {minimum}")
    if maximum is not None and number > maximum:
        raise _bad(name, value, f"a number <= {maximum}")


def env_list(name: str, default: list[str], *, environ: Environ | None = None) -> list[str]:
    """A comma-separated list; blank items are dropped."""
    value = _raw(name, environ)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_symbols(name: str, default: list[str], *, environ: Environ | None = None) -> list[str]:
    """A comma-separated list of exchange symbols in ASCII (lower case is upper-cased)."""
    value = _raw(name, environ)
    if value is None:
        return list(default)
    try:
        symbols = read_symbol_list(value)
    except InvalidInput as exc:
        raise _bad(name, value, f"symbols such as BTCUSDT,ETHUSDT ({exc})") from None
    if not symbols:
        raise _bad(name, value, "at least one symbol")
    return symbols


def env_choice(
    name: str, default: str, choices: tuple[str, ...], *, environ: Environ | None = None
) -> str:
    value = _raw(name, environ)
    if value is None:
        return default
    if value.lower() not in choices:
        raise _bad(name, value, "one of " + ", ".join(choices))
    return value.lower()


def env_url(
    name: str, default: str, schemes: tuple[str, ...], *, environ: Environ | None = None
) -> str:
    """A URL whose scheme is one of ``schemes`` and which names a host (or a file, for sqlite)."""
    value = _raw(name, environ) or default
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a non-numeric port
    except ValueError:
        raise _bad(name, value, "a URL with a numeric port") from None
    if parts.scheme not in schemes:
        raise _bad(name, value, "a URL starting with " + " or ".join(f"{s}://" for s in schemes))
    if not parts.scheme.startswith("sqlite") and not parts.hostname:
        raise _bad(name, value, "a URL with a host name")
    return value


def env_origins(name: str, default: list[str], *, environ: Environ | None = None) -> list[str]:
    """A comma-separated list of web origins, each ``http(s)://host[:port]`` and nothing more
    (a leading ``.`` or ``*.`` on the host stands for its subdomains)."""
    value = _raw(name, environ)
    if value is None:
        return list(default)
    origins = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        try:
            parts = urlsplit(item)
            parts.port  # noqa: B018 - raises ValueError on a non-numeric port
        except ValueError:
            raise _bad(name, item, "an origin with a numeric port") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _bad(name, item, "an origin such as https://trader.example.com")
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
            raise _bad(name, item, "an origin only: scheme, host and port, no path")
        origins.append(f"{parts.scheme}://{parts.netloc}")
    return origins
