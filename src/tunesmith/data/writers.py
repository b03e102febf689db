"""Write records back to JSON, JSONL, CSV or Parquet (atomically), keeping the input's format."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from tunesmith.utils.errors import DataFormatError
from tunesmith.utils.io import atomic_path, write_text


def write_records(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows in the format given by the file extension."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".json":
        return write_text(path, json.dumps(rows, ensure_ascii=False, indent=1) + "\n")
    if ext == ".jsonl":
        return write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    if ext == ".csv":
        fields: list[str] = []
        for r in rows:
            fields += [k for k in r if k not in fields]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v
                             for k, v in r.items()})
        return write_text(path, buf.getvalue())
    if ext == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        with atomic_path(path) as tmp:
            pq.write_table(pa.Table.from_pylist(rows), tmp)
        return path
    raise DataFormatError(f"{path}: cannot write '{ext}' files", hint="use .json, .jsonl, .csv or .parquet")
