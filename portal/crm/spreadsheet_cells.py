"""Cells of the CSV files people open in a spreadsheet (exports, rejects): text a spreadsheet would
run as a formula is neutralised on the way out and restored on the way back in."""
from __future__ import annotations

# What a spreadsheet runs as a formula when a cell starts with it (OWASP "CSV injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def protect_cell(value: object) -> str:
    """A cell for a CSV file people open in a spreadsheet: text a spreadsheet would run as a formula
    gets a leading `'` (which spreadsheets show as "this is text" and do not keep)."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def unprotect_cell(value: str) -> str:
    """A cell as it was before :func:`protect_cell` (a rejects file, fixed and imported again)."""
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_START) else value
