"""The catalogue of system checks: the original spec's integration harness (10 scenarios) and
end-to-end suite (8 scenarios), run against the running platform.

Every scenario reaches the platform the way its users and services do: the web pages over HTTP
(``ctx.get``), Celery for calls between services, Redis for the event log, the database for the
fate of signals. It trades only through ``ctx.sandbox_signal``, on the sandbox account, and
closes what it opens (the runner flattens the sandbox at the end as a safety net). An outcome
is PASS only for what actually ran and held; FAIL carries the numbers; SKIP says why the
scenario could not run safely here.
"""

from __future__ import annotations

# Importing a suite's module registers its scenarios (``trading.selftest.base.scenario``), in
# the order they are declared.
from trading.selftest.scenarios import e2e, integration, parity

__all__ = ["e2e", "integration", "parity"]
