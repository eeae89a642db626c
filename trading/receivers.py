"""Django signal receivers of the trading app."""

from __future__ import annotations


def ensure_roles_after_migrate(sender, **kwargs) -> None:
    from trading.roles import ensure_roles

    ensure_roles()
