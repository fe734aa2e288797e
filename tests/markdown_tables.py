"""The markdown tables a benchmark prints, read back as cells."""

from __future__ import annotations


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Each table of ``text`` (a run of lines starting with '|'), in order: its rows below the
    header and the separator, each a list of stripped cells."""
    tables: list[list[str]] = []
    previous_was_table = False
    for line in text.splitlines():
        in_table = line.startswith("|")
        if in_table and not previous_was_table:
            tables.append([])
        if in_table:
            tables[-1].append(line)
        previous_was_table = in_table
    return [
        [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
        for lines in tables
    ]
