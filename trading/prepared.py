"""Reads on the signal's path, written by the ORM once per process and run again with new values.

Building and compiling a queryset costs Django about 0.2-0.5 ms of Python, several times what
SQLite takes to answer; a signal makes a dozen such reads. A ``Prepared`` read is an ordinary
queryset whose varying values are marked with ``Param``: the first run compiles it (for the
database it runs on), and every run after reuses the SQL, the columns' converters and the way
rows become model instances (``select_related`` included), with the marked values put in.

    open_positions = Prepared(lambda: Position.objects.filter(
        account_id=Param("account", Position._meta.get_field("account")), status="open"))
    open_positions.objects(account=account.pk)

Only what a queryset's own iteration does is reused, so the rows are those the ORM would give.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connections, transaction
from django.db.models import Expression, Field, Model, QuerySet
from django.db.models.query import ModelIterable, get_related_populators
from django.db.transaction import TransactionManagementError


class Param(Expression):
    """A value given at each run of a ``Prepared`` read, made ready for the database as
    ``field`` would make it."""

    def __init__(self, name: str, field: Field) -> None:
        super().__init__(output_field=field)
        self.name = name
        self.target = field

    def as_sql(self, compiler, connection):
        return "%s", [self]

    def __repr__(self) -> str:
        return f"Param({self.name!r})"


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple[Any, ...]
    compiler: Any
    converters: dict
    # For model rows: the model, its columns' attribute names and place, and select_related's.
    model: type[Model] | None
    init_list: list[str]
    start: int
    end: int
    related: list
    locks: bool


class Prepared:
    """A read compiled once per process and database (see the module's docstring)."""

    def __init__(self, build: Callable[[], QuerySet]) -> None:
        self._build = build
        self._compiled: dict[str, _Compiled] = {}

    def objects(self, using: str = "default", **values: Any) -> list[Model]:
        """The model instances of the rows, as iterating the queryset would give them."""
        compiled = self._compile(using)
        rows = self._rows(compiled, using, values)
        model = compiled.model
        instances = []
        for row in rows:
            obj = model.from_db(using, compiled.init_list, row[compiled.start : compiled.end])
            for populator in compiled.related:
                populator.populate(row, obj)
            instances.append(obj)
        return instances

    def rows(self, using: str = "default", **values: Any) -> list[tuple]:
        """The rows as tuples of converted values, in the queryset's select order (for
        ``values_list`` and aggregates by ``annotate``)."""
        return [tuple(row) for row in self._rows(self._compile(using), using, values)]

    def _rows(self, compiled: _Compiled, using: str, values: dict[str, Any]) -> list:
        connection = connections[using]
        if (
            compiled.locks
            and connection.get_autocommit()
            and connection.features.has_select_for_update
        ):
            raise TransactionManagementError(
                "select_for_update cannot be used outside of a transaction."
            )
        params = [
            p.target.get_db_prep_value(values[p.name], connection, prepared=False)
            if isinstance(p, Param)
            else p
            for p in compiled.params
        ]
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        if compiled.converters:
            rows = list(compiled.compiler.apply_converters(rows, compiled.converters))
        return rows

    def _compile(self, using: str) -> _Compiled:
        compiled = self._compiled.get(using)
        if compiled is None:
            compiled = self._compiled[using] = self._first(using)
        return compiled

    def _first(self, using: str) -> _Compiled:
        queryset = self._build().using(using)
        compiler = queryset.query.get_compiler(using=using)
        locks = bool(queryset.query.select_for_update)
        if locks:
            # Compiled with the lock clause the database takes, as inside a transaction.
            with transaction.atomic(using=using):
                sql, params = compiler.as_sql()
        else:
            sql, params = compiler.as_sql()
        converters = compiler.get_converters([s[0] for s in compiler.select[: compiler.col_count]])
        model, init_list, start, end, related = None, [], 0, 0, []
        if queryset._iterable_class is ModelIterable and compiler.klass_info:
            info = compiler.klass_info
            model = info["model"]
            start, end = info["select_fields"][0], info["select_fields"][-1] + 1
            init_list = [f[0].target.attname for f in compiler.select[start:end]]
            related = get_related_populators(info, compiler.select, using)
        return _Compiled(
            sql=sql,
            params=tuple(params),
            compiler=compiler,
            converters=converters,
            model=model,
            init_list=init_list,
            start=start,
            end=end,
            related=related,
            locks=locks,
        )
