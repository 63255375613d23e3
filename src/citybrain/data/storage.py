"""Each catalog entry's rows in a typed table of their own, ``ds_<entry id>``.

The table is described by the entry's information items: one column per item (named by the
item's code), plus ``_id`` (row id, as in the CKAN DataStore) and ``_load`` (the version of the
load that last wrote the row). A unique index on the entry's key fields makes upserts and
duplicate-key detection possible. Creating and widening the table happens in the caller's
transaction, so a refused load or a rolled-back edit leaves no half-made table behind
(PostgreSQL and SQLite both have transactional DDL).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
)
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateIndex, CreateTable, DropTable
from sqlalchemy.types import TypeEngine

from citybrain.core.db import UTCDateTime

from .enums import ItemType
from .models import CatalogEntry, InfoItem

SYSTEM_COLUMNS = ("_id", "_load")


def table_name(entry_id: int) -> str:
    return f"ds_{int(entry_id)}"


def column_type(item: InfoItem) -> TypeEngine:
    kind = ItemType(item.data_type)
    if kind is ItemType.STRING:
        return String(item.length) if item.length and item.length <= 1000 else Text()
    return {
        ItemType.INTEGER: BigInteger(),
        ItemType.DECIMAL: Float(),
        ItemType.DATE: Date(),
        ItemType.DATETIME: UTCDateTime(),
        ItemType.BOOLEAN: Boolean(),
    }[kind]


def table_for(entry: CatalogEntry, metadata: MetaData | None = None) -> Table:
    """The SQLAlchemy Table of an entry's rows (not bound to anything; build queries with it)."""
    md = metadata if metadata is not None else MetaData()
    name = table_name(entry.id)
    cols = [Column("_id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
            Column("_load", Integer, nullable=False)]
    cols += [Column(i.code, column_type(i), nullable=True) for i in entry.items]
    table = Table(name, md, *cols)
    if entry.key_fields:
        Index(f"ux_{name}_key", *(table.c[k] for k in entry.key_fields), unique=True)
    return table


def exists(db: Session, entry: CatalogEntry) -> bool:
    return inspect(db.connection()).has_table(table_name(entry.id))


def ensure_table(db: Session, entry: CatalogEntry) -> Table:
    """Create the entry's table, or add columns for new items; never drops or retypes a column."""
    table = table_for(entry)
    conn = db.connection()
    insp = inspect(conn)
    if not insp.has_table(table.name):
        conn.execute(CreateTable(table))
        for index in table.indexes:
            conn.execute(CreateIndex(index))
        return table
    present = {c["name"] for c in insp.get_columns(table.name)}
    for col in table.columns:
        if col.name not in present:
            ddl_type = col.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD COLUMN "{col.name}" {ddl_type}')
    indexes = {ix["name"] for ix in insp.get_indexes(table.name)}
    for index in table.indexes:
        if index.name not in indexes:
            conn.execute(CreateIndex(index))
    return table


def drop_table(db: Session, entry: CatalogEntry) -> None:
    conn = db.connection()
    if inspect(conn).has_table(table_name(entry.id)):
        conn.execute(DropTable(table_for(entry)))
