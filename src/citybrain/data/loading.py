"""Loading department files into a catalog entry's table: typed, versioned, all or nothing.

A load reads every row, types each cell against the entry's information items and checks keys
(within the file, and against stored rows for ``append``). Rows are written in batches inside
a SAVEPOINT; if any row is bad, the savepoint is rolled back and the previous version stays
exactly as it was, while the ``DataLoad`` row with its report is still recorded (it is added
outside the savepoint). A successful load becomes version ``entry.version + 1`` and stamps
every row it writes with that version (``_load``).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from sqlalchemy import Table as SqlTable
from sqlalchemy import and_, bindparam, delete, func, insert, select, tuple_, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from citybrain.core import audit, clock
from citybrain.core.actor import Actor
from citybrain.core.errors import Invalid

from . import catalog, readers, storage
from .enums import LoadMode, LoadStatus
from .load_report import Report, header_mapping
from .models import CatalogEntry, DataLoad
from .values import FORMULA_STARTS, BadValue, converter, is_empty, looks_like_formula

BATCH_ROWS = 5000


@dataclass
class _Counts:
    read: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0


@dataclass
class _Column:
    position: int
    label: str  # the header as written in the file
    code: str
    required: bool
    convert: Callable[[Any], Any]


def load_rows(db: Session, *, entry_id: int, rows: Iterable[Mapping[str, Any]], mode: LoadMode | str,
              actor: Actor, filename: str = "", file_format: str = "rows") -> DataLoad:
    """Load rows keyed by item code or item name (信息项名称). Returns the load, loaded or refused."""
    def open_table(_entry: CatalogEntry) -> readers.Table:
        header, numbered = _from_mappings(rows)
        return readers.Table(file_format, header, numbered)

    load, _sample = _load(db, entry_id=entry_id, mode=mode, actor=actor, filename=filename,
                          open_table=open_table, file_format=file_format)
    return load


def load_file(db: Session, *, entry_id: int, data: bytes | BinaryIO | Path, filename: str,
              mode: LoadMode | str, actor: Actor, max_bytes: int | None = None) -> DataLoad:
    """Load a CSV (UTF-8 or GB18030, detected) or XLSX file. Returns the load, loaded or refused."""
    limit = max_bytes if max_bytes is not None else default_max_bytes()
    with _source(data, limit) as (f, size, digest):
        load, _sample = _load(db, entry_id=entry_id, mode=mode, actor=actor, filename=filename,
                              open_table=_file_opener(f, size, limit, filename), size=size, sha256=digest)
    return load


def preview_file(db: Session, *, entry_id: int, data: bytes | BinaryIO | Path, filename: str,
                 actor: Actor, mode: LoadMode | str = LoadMode.APPEND, max_bytes: int | None = None,
                 limit: int = 20) -> dict[str, Any]:
    """Read and check a file as a load would, store nothing: encoding, header mapping, typed rows, errors."""
    max_size = max_bytes if max_bytes is not None else default_max_bytes()
    with _source(data, max_size) as (f, size, digest):
        load, sample = _load(db, entry_id=entry_id, mode=mode, actor=actor, filename=filename,
                             open_table=_file_opener(f, size, max_size, filename), size=size, sha256=digest,
                             dry_run=True, sample_size=limit)
    return {"entry_id": entry_id, "filename": filename, "file_format": load.file_format, "encoding": load.encoding,
            "size_bytes": size, "mode": load.mode, "acceptable": load.status == LoadStatus.LOADED,
            "rows_read": load.rows_read, "header": load.report.get("header", []),
            "rows": [{k: _plain(v) for k, v in row.items()} for row in sample], "report": load.report}


def default_max_bytes() -> int:
    from citybrain.config import load_settings

    return load_settings().data_max_upload_mb * 1024 * 1024


def list_loads(db: Session, *, entry_id: int, limit: int = 50) -> list[DataLoad]:
    catalog.get_entry(db, entry_id=entry_id)
    q = select(DataLoad).where(DataLoad.entry_id == entry_id).order_by(DataLoad.id.desc()).limit(limit)
    return list(db.scalars(q))


def get_load(db: Session, *, load_id: int) -> DataLoad:
    from citybrain.core.errors import NotFound

    load = db.get(DataLoad, load_id)
    if load is None:
        raise NotFound(f"load {load_id} not found")
    return load


# ------------------------------------------------------------------------------ the pipeline


def _load(db: Session, *, entry_id: int, mode: LoadMode | str, actor: Actor, filename: str,
          open_table: Callable[[CatalogEntry], readers.Table], file_format: str = "", size: int = 0,
          sha256: str = "", dry_run: bool = False, sample_size: int = 0) -> tuple[DataLoad, list[dict[str, Any]]]:
    mode = _mode(mode)
    entry = catalog.get_entry(db, entry_id=entry_id)
    catalog.check_can_publish(actor, entry)
    if mode is LoadMode.UPSERT and not entry.key_fields:
        raise Invalid("upsert needs key fields; this resource has none (use append or replace)")
    if not dry_run:
        db.refresh(entry, with_for_update=True)  # one load at a time per resource (PostgreSQL)
    started = time.perf_counter()
    report, counts, sample = Report(), _Counts(), []
    load = DataLoad(entry_id=entry.id, mode=mode.value, status=LoadStatus.REFUSED.value, filename=filename[:200],
                    file_format=file_format, size_bytes=size, sha256=sha256, actor=actor.label[:100],
                    user_id=actor.user_id, created_at=clock.now())
    version = entry.version + 1
    savepoint = None if dry_run else db.begin_nested()
    try:
        table = open_table(entry)
        load.file_format, load.encoding = table.file_format, table.encoding
        columns = _columns(table.header, entry, mode, report)
        sql_table = storage.ensure_table(db, entry) if not dry_run else storage.table_for(entry)
        _run(db, sql_table, entry, columns, table, mode, version, report, counts, dry_run, sample, sample_size)
        if counts.read == 0 and not report.failed:
            report.problem("no rows: the file has a header but no data")
    except readers.FileProblem as exc:
        report.problem(str(exc))
    except DBAPIError as exc:
        report.problem(f"the database refused the rows: {str(exc.orig).strip().splitlines()[0][:300]}")
    except BaseException:
        if savepoint is not None:
            savepoint.rollback()
        raise
    ok = not report.failed
    if savepoint is not None:
        savepoint.commit() if ok else savepoint.rollback()
    load.rows_read = counts.read
    if ok:
        load.status = LoadStatus.LOADED.value
        load.rows_inserted, load.rows_updated, load.rows_deleted = counts.inserted, counts.updated, counts.deleted
    seconds = time.perf_counter() - started
    load.report = report.as_dict(seconds=seconds, rows=counts.read)
    if not dry_run:
        _record(db, entry, load, version, actor)
    return load, sample


def _record(db: Session, entry: CatalogEntry, load: DataLoad, version: int, actor: Actor) -> None:
    if load.status == LoadStatus.LOADED:
        table = storage.table_for(entry)
        entry.version = load.version = version
        entry.row_count = db.scalar(select(func.count()).select_from(table)) or 0
        entry.loaded_at = load.created_at
    db.add(load)
    db.flush()
    audit.record(db, actor=actor, action=f"data.load.{load.status}", object_type="data_catalog_entry",
                 object_id=entry.id, after={"load_id": load.id, "version": load.version, "mode": load.mode,
                                            "filename": load.filename, "rows_read": load.rows_read,
                                            "rows_inserted": load.rows_inserted, "rows_updated": load.rows_updated,
                                            "rows_deleted": load.rows_deleted,
                                            "errors": load.report.get("errors_total", 0)})


def _mode(mode: LoadMode | str) -> LoadMode:
    try:
        return LoadMode(mode)
    except ValueError:
        raise Invalid(f"unknown load mode {mode!r}: use append, replace or upsert") from None


def _columns(header: list[str], entry: CatalogEntry, mode: LoadMode, report: Report) -> list[_Column]:
    mapped = header_mapping(header, list(entry.items))
    report.header = [{"column": h, "item": i.code if i else None} for h, i in zip(header, mapped, strict=True)]
    present = {i.code for i in mapped if i}
    missing_keys = [k for k in entry.key_fields if k not in present]
    if mode is LoadMode.UPSERT and missing_keys:
        raise readers.FileProblem(f"upsert needs the key column(s): {', '.join(missing_keys)}")
    return [_Column(n, h, i.code, i.required, converter(i))
            for n, (h, i) in enumerate(zip(header, mapped, strict=True)) if i]


def _run(db: Session, table: SqlTable, entry: CatalogEntry, columns: list[_Column], source: readers.Table,
         mode: LoadMode, version: int, report: Report, counts: _Counts, dry_run: bool,
         sample: list[dict[str, Any]], sample_size: int) -> None:
    codes = {c.code for c in columns}
    keys = [k for k in entry.key_fields if k in codes] if len(codes & set(entry.key_fields)) == len(
        entry.key_fields) else []
    key_label = ", ".join(c.label for c in columns if c.code in keys)
    if mode is LoadMode.REPLACE and not dry_run:
        counts.deleted = db.execute(delete(table)).rowcount or 0
    first_seen: dict[tuple[Any, ...], int] = {}
    batch: list[tuple[int, tuple[Any, ...], dict[str, Any]]] = []
    for number, record in _typed(source, columns, report, counts):
        if len(sample) < sample_size:
            sample.append(record)
        if keys:
            key = tuple(record[k] for k in keys)
            if any(v is None for v in key):
                report.error(number, key_label, "", "key value is empty")
                continue
            first = first_seen.setdefault(key, number)
            if first != number:
                report.error(number, key_label, _key_text(key), "duplicate key in the file", first_row=first)
                continue
        else:
            key = ()
        batch.append((number, key, record))
        if len(batch) >= BATCH_ROWS:
            _flush(db, table, batch, keys, key_label, mode, version, report, counts, dry_run)
            batch = []
    if batch:
        _flush(db, table, batch, keys, key_label, mode, version, report, counts, dry_run)


def _typed(source: readers.Table, columns: list[_Column], report: Report,
           counts: _Counts) -> Iterator[tuple[int, dict[str, Any]]]:
    width = len(source.header)
    for number, cells in source.rows:
        counts.read += 1
        if len(cells) != width and (len(cells) < width or any(not is_empty(c) for c in cells[width:])):
            report.error(number, None, "", "wrong number of cells", detail=f"{len(cells)} cells, "
                         f"the header has {width}")
            continue
        record: dict[str, Any] = {}
        good = True
        for col in columns:
            raw = cells[col.position]
            if raw is None or raw == "" or is_empty(raw):
                if col.required:
                    report.error(number, col.label, "", "required value is empty")
                    good = False
                record[col.code] = None
                continue
            try:
                record[col.code] = col.convert(raw)
            except BadValue as exc:
                report.error(number, col.label, raw, str(exc))
                good = False
                continue
            if raw.__class__ is str and raw[:1] in FORMULA_STARTS and looks_like_formula(raw):
                report.warn(number, col.label, raw, "starts like a spreadsheet formula; stored as text")
        if good:
            yield number, record


def _flush(db: Session, table: SqlTable, batch: list[tuple[int, tuple[Any, ...], dict[str, Any]]],
           keys: list[str], key_label: str, mode: LoadMode, version: int, report: Report, counts: _Counts,
           dry_run: bool) -> None:
    stored = _stored_keys(db, table, keys, [k for _, k, _ in batch]) if keys and mode is not LoadMode.REPLACE else set()
    inserts, updates = [], []
    for number, key, record in batch:
        if key in stored and mode is LoadMode.APPEND:
            report.error(number, key_label, _key_text(key), "key already stored (use upsert to update)")
        elif key in stored:
            updates.append(record)
        else:
            inserts.append(record)
    if dry_run or report.failed:
        return  # keep checking the rest of the file for the report, but write nothing more
    if inserts:
        db.execute(insert(table), [{**r, "_load": version} for r in inserts])
        counts.inserted += len(inserts)
    if updates:
        _update(db, table, keys, updates, version)
        counts.updated += len(updates)


def _stored_keys(db: Session, table: SqlTable, keys: list[str], wanted: list[tuple[Any, ...]]) -> set[tuple[Any, ...]]:
    cols = [table.c[k] for k in keys]
    if len(cols) == 1:
        q = select(cols[0]).where(cols[0].in_([k[0] for k in wanted]))
    else:
        q = select(*cols).where(tuple_(*cols).in_(wanted))
    return {tuple(row) for row in db.execute(q)}


def _update(db: Session, table: SqlTable, keys: list[str], rows: list[dict[str, Any]], version: int) -> None:
    values = [c for c in rows[0] if c not in keys]
    stmt = (update(table).where(and_(*(table.c[k] == bindparam(f"key_{k}") for k in keys)))
            .values({**{c: bindparam(f"new_{c}") for c in values}, "_load": bindparam("new__load")}))
    db.execute(stmt, [{**{f"key_{k}": r[k] for k in keys}, **{f"new_{c}": r[c] for c in values},
                       "new__load": version} for r in rows])


def _key_text(key: tuple[Any, ...]) -> str:
    return " / ".join(str(v) for v in key)


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _from_mappings(rows: Iterable[Mapping[str, Any]]) -> tuple[list[str], Iterator[tuple[int, Sequence[Any]]]]:
    it = iter(rows)
    first = next(it, None)
    if first is None:
        return [], iter(())
    header = [str(k) for k in first]

    def numbered() -> Iterator[tuple[int, Sequence[Any]]]:
        yield 1, [first.get(k) for k in header]
        for n, row in enumerate(it, start=2):
            extra = [v for k, v in row.items() if k not in first]
            yield n, [row.get(k) for k in header] + extra  # extra cells make the row ragged

    return header, numbered()


# ---------------------------------------------------------------------------------- the file


@contextmanager
def _source(data: bytes | BinaryIO | Path, limit: int) -> Iterator[tuple[IO[bytes] | None, int, str]]:
    """The file as a seekable binary stream with its size and SHA-256; None when over ``limit``.

    A path or bytes is sized before it is read; a plain stream is copied to a temporary file
    with a running count that stops just past the limit."""
    if isinstance(data, bytes | bytearray):
        with _as_stream(bytes(data)) as f:
            yield _measured(f, len(data), limit)
    elif isinstance(data, Path):
        size = data.stat().st_size
        if size > limit:
            yield None, size, ""
            return
        with data.open("rb") as f:
            yield _measured(f, size, limit)
    else:
        with tempfile.SpooledTemporaryFile(max_size=8 << 20) as spool:
            seen = 0
            while chunk := data.read(1 << 20):
                seen += len(chunk)
                if seen > limit:
                    yield None, seen, ""
                    return
                spool.write(chunk)
            yield _measured(spool, seen, limit)


@contextmanager
def _as_stream(data: bytes) -> Iterator[IO[bytes]]:
    import io

    yield io.BytesIO(data)


def _measured(f: IO[bytes], size: int, limit: int) -> tuple[IO[bytes] | None, int, str]:
    if size > limit:
        return None, size, ""
    digest = hashlib.sha256()
    f.seek(0)
    while chunk := f.read(1 << 20):
        digest.update(chunk)
    f.seek(0)
    return f, size, digest.hexdigest()


def _file_opener(f: IO[bytes] | None, size: int, limit: int, filename: str) -> Callable[[CatalogEntry], readers.Table]:
    def open_table(entry: CatalogEntry) -> readers.Table:
        if f is None:
            raise readers.FileProblem(f"the file is larger than the limit of {limit / (1 << 20):g} MB "
                                      f"({size:,} bytes or more)")
        if size == 0:
            raise readers.FileProblem("the file is empty")
        head = f.read(8)
        f.seek(0)
        suffix = Path(filename).suffix.lower()
        if readers.is_xlsx(head):
            return readers.read_xlsx(f, sheet_names=(entry.name, entry.code))
        if suffix == ".xls" or head.startswith(b"\xd0\xcf\x11\xe0"):
            raise readers.FileProblem("old .xls workbooks are not read; save the sheet as .xlsx or CSV")
        if suffix == ".xlsx":
            raise readers.FileProblem("not a readable XLSX file (it is not a zip archive)")
        return readers.read_csv(f)

    return open_table


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
