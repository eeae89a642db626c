"""Statements on the signal's path, written by the ORM once per process, run again with new values.

Building and compiling a queryset costs Django about 0.2-0.5 ms of Python, several times what
SQLite takes to answer; a signal makes a dozen such reads. A ``Prepared`` read is an ordinary
queryset whose varying values are marked with ``Param``: the first run compiles it (for the
database it runs on), and every run after reuses the SQL, the columns' converters and the way
rows become model instances (``select_related`` included), with the marked values put in.

    open_positions = Prepared(lambda: Position.objects.filter(
        account_id=Param("account", Position._meta.get_field("account")), status="open"))
    open_positions.objects(account=account.pk)

Only what a queryset's own iteration does is reused, so the rows are those the ORM would give.

Writes the same way: a ``PreparedUpdate`` is a queryset's ``update()`` of named fields, and
``save_fields(instance, fields)`` is ``instance.save(update_fields=fields)`` (each field's
``pre_save`` included, so ``auto_now`` fields move), both compiled once. No model signals are
sent; the platform connects none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, connections, transaction
from django.db.models import Expression, Field, Model, QuerySet
from django.db.models.query import ModelIterable, get_related_populators
from django.db.models.sql import UpdateQuery
from django.db.transaction import TransactionManagementError


class Param(Expression):
    """A value given at each run of a prepared statement, made ready for the database as
    ``field`` would make it: for a comparison, or with ``save`` for a value written."""

    def __init__(self, name: str, field: Field, *, save: bool = False) -> None:
        super().__init__(output_field=field)
        self.name = name
        self.prep_field = field
        self.save = save

    def prepare(self, value: Any, connection) -> Any:
        if self.save:
            return self.prep_field.get_db_prep_save(value, connection)
        return self.prep_field.get_db_prep_value(value, connection, prepared=False)

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


class _CompiledOnce:
    """A statement built by ``build`` and compiled at its first run on each database."""

    def __init__(self, build: Callable[[], QuerySet]) -> None:
        self._build = build
        self._compiled: dict[str, Any] = {}

    def _compile(self, using: str) -> Any:
        compiled = self._compiled.get(using)
        if compiled is None:
            compiled = self._compiled[using] = self._first(using)
        return compiled

    def _first(self, using: str) -> Any:
        raise NotImplementedError


class Prepared(_CompiledOnce):
    """A read compiled once per process and database (see the module's docstring)."""

    def objects(self, using: str = "default", **values: Any) -> list[Model]:
        """The model instances of the rows, as iterating the queryset would give them (for a
        queryset of model instances; ``rows`` for the others)."""
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
        params = _params(compiled.params, values, connection)
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        if compiled.converters:
            rows = list(compiled.compiler.apply_converters(rows, compiled.converters))
        return rows

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


def _params(template: Sequence[Any], values: dict[str, Any], connection) -> list[Any]:
    return [p.prepare(values[p.name], connection) if isinstance(p, Param) else p for p in template]


class PreparedUpdate(_CompiledOnce):
    """``build()``'s queryset updated with the values of ``fields``, compiled once per process
    and database; ``run`` returns the number of rows changed, as ``update()`` does."""

    def __init__(self, build: Callable[[], QuerySet], fields: Sequence[str]) -> None:
        super().__init__(build)
        self._fields = tuple(fields)

    def run(self, using: str = "default", **values: Any) -> int:
        sql, template = self._compile(using)
        connection = connections[using]
        with transaction.mark_for_rollback_on_error(using), connection.cursor() as cursor:
            cursor.execute(sql, _params(template, values, connection))
            return cursor.rowcount

    def _first(self, using: str) -> tuple[str, tuple[Any, ...]]:
        queryset = self._build()
        meta = queryset.model._meta
        query = queryset.query.chain(UpdateQuery)
        query.add_update_values(
            {name: Param(name, meta.get_field(name), save=True) for name in self._fields}
        )
        if query.related_updates:
            raise ValueError("a prepared update changes the fields of one model")
        sql, params = query.get_compiler(using=using).as_sql()
        return sql, tuple(params)


_SAVES: dict[tuple[type[Model], tuple[str, ...]], PreparedUpdate] = {}


def save_fields(instance: Model, fields: Sequence[str], using: str = "default") -> None:
    """``instance.save(update_fields=fields)``, compiled once per model and fields: each field's
    ``pre_save`` gives its value. Raises ``DatabaseError`` when the row is gone, as ``save``
    does."""
    model = type(instance)
    key = (model, tuple(fields))
    update = _SAVES.get(key)
    if update is None:
        update = _SAVES[key] = PreparedUpdate(
            lambda: model._base_manager.filter(pk=Param("pk", model._meta.pk)), fields
        )
    meta = model._meta
    values = {name: meta.get_field(name).pre_save(instance, False) for name in fields}
    if update.run(using, pk=instance.pk, **values) != 1:
        raise DatabaseError("Save with update_fields did not affect any rows.")
