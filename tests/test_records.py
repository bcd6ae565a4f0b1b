"""README's record of processing activities (Art. 30 GDPR) names every column the store keeps.

The record is only worth something while it is complete: a migration that adds a table or a
column without saying in the README what it holds, why and for how long fails here.
"""

import re
from pathlib import Path

from mitreden.store import Store

README = Path(__file__).parents[1] / "README.md"
SECTION = "### Record of processing activities (Art. 30 GDPR)"
# A record row: | `table.column` | what it holds | why | how long |
ROW = re.compile(r"^\|\s*`([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)`\s*\|(.*)\|\s*$")
CELLS = ("what it holds", "why", "how long")


def real_columns(path: Path) -> set[str]:
    """Every `table.column` of a freshly migrated database, SQLite's own tables left out."""
    store = Store(path)
    try:
        tables = [
            name
            for (name,) in store.db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        return {
            f"{table}.{row[1]}"
            for table in tables
            for row in store.db.execute(f"PRAGMA table_info('{table}')")
        }
    finally:
        store.close()


def record_rows() -> dict[str, list[list[str]]]:
    """The record's rows by `table.column`, each as its remaining cells (holds, why, how long).

    Only the record's own subsection is read, up to the next top-level heading, so a table
    elsewhere in the README whose first cell looks like `a.b` is no record row."""
    lines = README.read_text(encoding="utf-8").splitlines()
    assert SECTION in lines, f"README.md has no subsection {SECTION!r}"
    rows: dict[str, list[list[str]]] = {}
    for line in lines[lines.index(SECTION) + 1 :]:
        if line.startswith("## "):
            break
        match = ROW.match(line)
        if match:
            name = f"{match.group(1)}.{match.group(2)}"
            cells = [cell.strip() for cell in match.group(3).split("|")]
            rows.setdefault(name, []).append(cells)
    return rows


def test_every_stored_column_has_a_record_row(tmp_path: Path) -> None:
    real = real_columns(tmp_path / "records.db")
    rows = record_rows()
    problems = []
    for name in sorted(real):
        entries = rows.get(name)
        if not entries:
            problems.append(f"{name}: no row in the record")
            continue
        if len(entries) > 1:
            problems.append(f"{name}: {len(entries)} rows, expected one")
        for cells in entries:
            if len(cells) != len(CELLS):
                problems.append(f"{name}: {len(cells)} cells after the name, expected 3")
            elif not all(cells):
                empty = [label for label, cell in zip(CELLS, cells, strict=True) if not cell]
                problems.append(f"{name}: empty {', '.join(empty)}")
    for name in sorted(set(rows) - real):
        problems.append(f"{name}: in the record, but the database has no such column")
    assert not problems, (
        f"README.md's {SECTION!r} does not match the schema:\n  " + "\n  ".join(problems)
    )

