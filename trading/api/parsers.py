"""The API's JSON parser: DRF's, with exact numbers and bounded nesting."""

from __future__ import annotations

import codecs
from decimal import Decimal

from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.settings import api_settings
from rest_framework.utils import json

# No request of this API nests deeper than a few levels; a deeper document is an attack or a bug.
MAX_DEPTH = 32


class JSONParser(parsers.JSONParser):
    """Reads JSON numbers with a fraction or exponent as ``Decimal`` (``0.1`` stays 0.1, however
    many digits a client sends), and refuses a document nested deeper than ``MAX_DEPTH`` with a
    ``ParseError`` (400) instead of letting the parser's recursion fail the request."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        options = {"parse_float": Decimal}
        if not api_settings.STRICT_JSON:
            options["parse_constant"] = None
        try:
            data = json.load(codecs.getreader(encoding)(stream), **options)
        except RecursionError:
            raise ParseError(_too_deep()) from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        if depth_exceeds(data, MAX_DEPTH):
            raise ParseError(_too_deep())
        return data


def depth_exceeds(data: object, limit: int) -> bool:
    """True when ``data`` holds objects or lists nested more than ``limit`` levels deep. Walks
    without recursion, so any depth the parser could build is measured."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _too_deep() -> str:
    return f"JSON parse error - nested deeper than {MAX_DEPTH} levels"
