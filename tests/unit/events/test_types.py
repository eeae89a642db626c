"""Every event type the code publishes is one of EventType's, so counters by type start complete."""

from __future__ import annotations

import ast

from tests.support.processes import ROOT
from trading.events.types import EventType

# How the code makes an event: new_event(type, ...), Event(type=...), and the two helpers that
# call new_event for a whole flow, events.add(type, ...) and _announce(type, ...).
MAKERS = {"new_event", "Event", "_announce"}


def _literal_type(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        maker = func.id in MAKERS
    else:
        maker = (
            isinstance(func, ast.Attribute)
            and func.attr == "add"
            and isinstance(func.value, ast.Name)
            and func.value.id == "events"
        )
    if not maker:
        return None
    given = [kw.value for kw in call.keywords if kw.arg == "type"] or call.args[:1]
    if given and isinstance(given[0], ast.Constant) and isinstance(given[0].value, str):
        return given[0].value
    return None


def published_types() -> dict[str, str]:
    """Event types the code makes with a literal type -> a file that makes it."""
    found = {}
    for package in ("trading", "controlpanel"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Call) and (kind := _literal_type(node)):
                    found.setdefault(kind, str(path.relative_to(ROOT)))
    return found


def test_every_event_type_the_code_publishes_is_an_event_type():
    published = published_types()
    assert {"market.bar", "order.filled", "service.recovered"} <= set(published)
    unknown = {kind: where for kind, where in published.items() if kind not in set(EventType)}
    assert unknown == {}
