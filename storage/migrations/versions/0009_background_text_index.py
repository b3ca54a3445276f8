"""SQLite: message text enters the FTS5 index in the background, behind a watermark

Indexing a 10 KB message for FTS5 trigram search costs about 0.4 ms of CPU, and the insert
trigger spent it inside the delivery transaction, under SQLite's one write lock. The insert
trigger goes; storage/text_indexer.py indexes new rows in short write jobs of its own, and
``search_index_state.indexed_upto`` says how far it got: every message_text row with an id up
to it is in message_text_fts, none above it is (search scans those few rows directly).

The delete trigger may only remove rows that are in the index (an FTS5 external-content
'delete' of a row it never saw corrupts the index), and lowers the watermark to the highest id
left: SQLite gives a new row the highest id plus one, so an id above what is left may be given
again, and it must not be below the watermark then (it would never be indexed). Rows are never
updated (nothing updates message_text), so there is no update trigger, as before.

PostgreSQL is unchanged: its pg_trgm GIN indexes already defer work to their pending list.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
# message_text and message_text_fts come from 0002, a sibling branch of 0008.
depends_on: str | Sequence[str] | None = "0002"

WATERMARK = "(SELECT indexed_upto FROM search_index_state)"


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("DROP TRIGGER IF EXISTS message_text_ai")
    op.execute("DROP TRIGGER IF EXISTS message_text_ad")
    op.execute(
        "CREATE TABLE search_index_state (id INTEGER PRIMARY KEY CHECK (id = 1), "
        "indexed_upto INTEGER NOT NULL)"
    )
    # Every row there is now was indexed by the old insert trigger.
    op.execute(
        "INSERT INTO search_index_state (id, indexed_upto) "
        "SELECT 1, coalesce(max(id), 0) FROM message_text"
    )
    # One trigger, statements in this order: the index entry goes (only if it is there), then
    # the watermark comes down to the highest id left. No WHEN clause: the watermark must come
    # down on every delete, indexed row or not.
    op.execute(
        "CREATE TRIGGER message_text_ad AFTER DELETE ON message_text BEGIN "
        "INSERT INTO message_text_fts(message_text_fts, rowid, headers, body) "
        f"SELECT 'delete', old.id, old.headers, old.body WHERE old.id <= {WATERMARK}; "
        "UPDATE search_index_state SET indexed_upto = "
        "min(indexed_upto, (SELECT coalesce(max(id), 0) FROM message_text)); END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # The tail first, so that the index is complete for the insert trigger's world again.
    op.execute(
        "INSERT INTO message_text_fts(rowid, headers, body) "
        f"SELECT id, headers, body FROM message_text WHERE id > {WATERMARK} ORDER BY id"
    )
    op.execute("DROP TRIGGER IF EXISTS message_text_ad")
    op.execute("DROP TABLE search_index_state")
    op.execute(
        "CREATE TRIGGER message_text_ai AFTER INSERT ON message_text BEGIN "
        "INSERT INTO message_text_fts(rowid, headers, body) "
        "VALUES (new.id, new.headers, new.body); END"
    )
    op.execute(
        "CREATE TRIGGER message_text_ad AFTER DELETE ON message_text BEGIN "
        "INSERT INTO message_text_fts(message_text_fts, rowid, headers, body) "
        "VALUES ('delete', old.id, old.headers, old.body); END"
    )
