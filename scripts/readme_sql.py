"""The example queries of README.md (each a ```sql block after a ``<!-- readme-sql: title -->`` line).

``python scripts/readme_sql.py N`` prints query N (from 0), for ``lakeforge sql "$(…)"`` in
``make demo``; tests/spark/test_readme_sql.py runs every one of them.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"<!-- readme-sql: (?P<title>[^>]+?) -->\s*```sql\n(?P<sql>.*?)```", re.S)


def queries(readme: Path = README) -> list[tuple[str, str]]:
    """(title, SQL) of every example, in README order."""
    return [(m["title"], " ".join(m["sql"].split())) for m in _BLOCK.finditer(readme.read_text())]


if __name__ == "__main__":
    title, sql = queries()[int(sys.argv[1])]
    print(sql)
