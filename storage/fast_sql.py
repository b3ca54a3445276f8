"""Hot-path statements: SQLAlchemy Core compiled once per dialect, run on the DBAPI cursor.

SQLAlchemy's execution path (cache key, compiled-cache lookup, result metadata, row processing)
costs tens to hundreds of microseconds of Python per statement, while SQLite answers a one-row
statement in a few. The statements that run for every delivered message, FETCH, STORE and
EXPUNGE are therefore written once as Core statements, compiled once per dialect here, and
executed straight on the session's DBAPI connection: the same transaction, the same SQL text
SQLAlchemy would send, the same bind processors (dates), without the per-call machinery.

Only plain bound parameters are supported (no ``expanding`` IN lists); results come back as
DBAPI tuples with no result processing, so hot-path queries select integers and strings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlmodel import Session

BuildFn = Callable[[str], ClauseElement]


class _Compiled:
    """One statement for one dialect: its SQL text and how to turn named values into params."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        self.sql = compiled.string
        self.positional = dialect.positional
        names = list(compiled.positiontup or []) if self.positional else list(compiled.binds)
        self.names = names
        self.fixed: dict[str, Any] = {}  # literals of the statement itself (``values(x=1)``)
        self.processors: dict[str, Callable[[Any], Any]] = {}
        for name in names:
            bind = compiled.binds[name]
            processor = bind.type._cached_bind_processor(dialect)
            if processor is not None:
                self.processors[name] = processor
            if not bind.required:
                self.fixed[name] = bind.effective_value

    def params(self, values: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        processed: dict[str, Any] = {}
        for name in self.names:
            value = values[name] if name in values else self.fixed[name]
            processor = self.processors.get(name)
            processed[name] = processor(value) if processor is not None else value
        if self.positional:
            return [processed[name] for name in self.names]
        return processed


class Prepared:
    """A statement built per dialect name (``"sqlite"``/``"postgresql"``) and cached compiled."""

    def __init__(self, build: BuildFn) -> None:
        self._build = build
        self._compiled: dict[str, _Compiled] = {}

    def _for(self, dialect: Dialect) -> _Compiled:
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = _Compiled(self._build(dialect.name), dialect)
            self._compiled[dialect.name] = compiled
        return compiled

    def execute(self, session: Session, values: Mapping[str, Any] | None = None) -> Any:
        """Run once; returns the DBAPI cursor (``rowcount``, ``fetchall``...)."""
        connection = session.connection()
        compiled = self._for(connection.dialect)
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(compiled.sql, compiled.params(values or {}))
        return cursor

    def execute_many(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run once per row of ``rows`` (one multi-row insert or update)."""
        if not rows:
            return
        connection = session.connection()
        compiled = self._for(connection.dialect)
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.executemany(compiled.sql, [compiled.params(row) for row in rows])  # type: ignore[arg-type]
        cursor.close()

    def all(self, session: Session, values: Mapping[str, Any] | None = None) -> list[Any]:
        cursor = self.execute(session, values)
        rows = cursor.fetchall()
        cursor.close()
        return list(rows)

    def first(self, session: Session, values: Mapping[str, Any] | None = None) -> Any | None:
        cursor = self.execute(session, values)
        row = cursor.fetchone()
        cursor.close()
        return row

    def rowcount(self, session: Session, values: Mapping[str, Any] | None = None) -> int:
        cursor = self.execute(session, values)
        count = int(cursor.rowcount)
        cursor.close()
        return count


FinishFn = Callable[[str, Any], Any]


class PreparedRows:
    """A multi-row INSERT: ``n`` rows in one statement, compiled once per dialect and ``n``.

    ``executemany`` steps the statement once per row, and on SQLite each step gives up Python's
    lock and takes it back; with other threads busy that wait, not SQLite, is what a batch of
    deliveries spends its write turn on. One statement for the batch steps once.
    ``finish(dialect, insert)`` adds what follows the VALUES (ON CONFLICT ...); the insert is
    the dialect's own (``excluded`` is there for upserts), and rows must not repeat a conflict
    key (PostgreSQL refuses to update a row twice in one statement).
    """

    MAX_ROWS = 200  # per statement (SQLite allows 32,766 bound values)

    def __init__(self, table: Any, columns: Sequence[str], finish: FinishFn | None = None):
        self.table = table
        self.columns = list(columns)
        self._finish = finish
        self._compiled: dict[tuple[str, int], _Compiled] = {}

    def _for(self, dialect: Dialect, count: int) -> _Compiled:
        compiled = self._compiled.get((dialect.name, count))
        if compiled is None:
            insert_fn = postgresql_insert if dialect.name == "postgresql" else sqlite_insert
            rows = [
                {c: bindparam(f"{c}_{i}", type_=self.table.c[c].type) for c in self.columns}
                for i in range(count)
            ]
            statement = insert_fn(self.table).values(rows)
            if self._finish is not None:
                statement = self._finish(dialect.name, statement)
            compiled = _Compiled(statement, dialect)
            self._compiled[(dialect.name, count)] = compiled
        return compiled

    def execute(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
        connection = session.connection()
        dbapi = connection.connection.dbapi_connection
        assert dbapi is not None
        for start in range(0, len(rows), self.MAX_ROWS):
            chunk = rows[start : start + self.MAX_ROWS]
            compiled = self._for(connection.dialect, len(chunk))
            values = {
                f"{column}_{index}": row[column]
                for index, row in enumerate(chunk)
                for column in self.columns
            }
            cursor = dbapi.cursor()
            cursor.execute(compiled.sql, compiled.params(values))
            cursor.close()
