"""Writing a measured table into the README, between `<!-- NAME:start -->` and `<!-- NAME:end -->`."""

import sys
from pathlib import Path


def replace_section(readme: Path, name: str, table: str) -> None:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = readme.read_text()
    if start not in text or end not in text:
        print(f"{readme} has no {start} ... {end} section; not updated", file=sys.stderr)
        return
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{table}\n{end}{tail}")
    print(f"updated {readme}")
