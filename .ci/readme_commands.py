"""Print the commands of a Markdown file's first ```bash block, one a line (comments and blank lines dropped).

The CI runs exactly these, and tests/docs/test_readme.py reads the same block, so the README cannot drift from
what is checked.

Example:
    $ python3 .ci/readme_commands.py README.md
"""

import sys
from pathlib import Path


def first_bash_block(text: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index("```bash") + 1
    end = lines.index("```", start)
    return [line.strip() for line in lines[start:end] if line.strip() and not line.lstrip().startswith("#")]


if __name__ == "__main__":
    print("\n".join(first_bash_block(Path(sys.argv[1]).read_text(encoding="utf-8"))))
