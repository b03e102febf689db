"""Read dataset files (JSON, JSONL, CSV, Parquet, TXT) into RawRecords that remember their line.

Every parse failure names the file and line, so a user can open the file and fix it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tunesmith.data.records import Origin, RawRecord
from tunesmith.utils.errors import DataFormatError

SUPPORTED = (".json", ".jsonl", ".csv", ".parquet", ".txt")


def _record_lines(text: str) -> list[int]:
    """1-based line where each top-level element of a JSON array starts (one pass over the text)."""
    lines: list[int] = []
    depth, line, in_str, esc = 0, 1, False, False
    for ch in text:
        if ch == "\n":
            line += 1
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
            if depth == 1:
                lines.append(line)
        elif ch in "[{":
            if depth == 1:
                lines.append(line)
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif depth == 1 and not ch.isspace() and ch != ",":
            if not lines or lines[-1] != line:
                lines.append(line)
    return lines


def read_json(path: Path) -> list[RawRecord]:
    text = path.read_text(encoding="utf-8-sig")
    stripped = text.lstrip()
    if stripped and stripped[0] == "{" and "\n" in stripped.strip():
        # Likely JSON Lines saved with a .json extension.
        try:
            return read_jsonl(path)
        except DataFormatError:
            pass
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(
            f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}",
            hint="fix the syntax at that line (a missing comma or quote is the usual cause)",
        ) from exc
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise DataFormatError(f"{path}: the top level must be a list of records, got {type(data).__name__}")
    out = []
    lines = _record_lines(text) if len(data) > 1 or text.lstrip().startswith("[") else [1]
    for i, rec in enumerate(data):
        line = lines[i] if i < len(lines) and len(lines) == len(data) else i + 1
        if not isinstance(rec, dict):
            raise DataFormatError(
                f"{path}:{line}: record {i + 1}: expected an object {{...}}, got {type(rec).__name__}"
            )
        out.append(RawRecord(rec, Origin(str(path), line)))
    return out


def read_jsonl(path: Path) -> list[RawRecord]:
    out = []
    with path.open(encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(
                    f"{path}:{lineno}: malformed JSON line: {exc.msg} (column {exc.colno})",
                    hint="each line must be one complete JSON object",
                ) from exc
            if not isinstance(rec, dict):
                raise DataFormatError(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
            out.append(RawRecord(rec, Origin(str(path), lineno)))
    return out


def read_csv(path: Path) -> list[RawRecord]:
    out = []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        for i, row in enumerate(reader):
            rec = {k: v for k, v in row.items() if k is not None}
            out.append(RawRecord(rec, Origin(str(path), i + 2)))  # line 1 is the header
    return out


def read_parquet(path: Path) -> list[RawRecord]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return [RawRecord(rec, Origin(str(path), i + 1)) for i, rec in enumerate(table.to_pylist())]


def read_txt(path: Path) -> list[RawRecord]:
    """Plain text: blank-line-separated documents become one record each."""
    text = path.read_text(encoding="utf-8-sig")
    out, buf, start = [], [], 1
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            if not buf:
                start = lineno
            buf.append(line)
        elif buf:
            out.append(RawRecord({"text": "\n".join(buf)}, Origin(str(path), start)))
            buf = []
    if buf:
        out.append(RawRecord({"text": "\n".join(buf)}, Origin(str(path), start)))
    return out


READERS = {".json": read_json, ".jsonl": read_jsonl, ".csv": read_csv, ".parquet": read_parquet, ".txt": read_txt}


def read_records(path: str | Path) -> list[RawRecord]:
    """Read one file or every supported file in a folder."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in SUPPORTED)
        if not files:
            raise DataFormatError(f"{p}: folder has no data files ({', '.join(SUPPORTED)})")
        return [r for f in files for r in read_records(f)]
    if not p.exists():
        raise DataFormatError(f"{p}: file not found", hint="check the path or dataset_dir")
    reader = READERS.get(p.suffix.lower())
    if reader is None:
        raise DataFormatError(
            f"{p}: unsupported file type '{p.suffix}'", hint=f"use one of {', '.join(SUPPORTED)}"
        )
    records = reader(p)
    if not records:
        raise DataFormatError(f"{p}: the file has no records")
    return records
