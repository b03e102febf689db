"""The README's config table is generated from the schema and must be current."""

from pathlib import Path

from tunesmith.config.docs import END, START, config_table

ROOT = Path(__file__).resolve().parents[3]


def test_readme_config_table_is_current() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split(START, 1)[1].split(END, 1)[0]
    assert table.strip() == config_table().strip(), "run: python -m tunesmith.config.docs README.md"
