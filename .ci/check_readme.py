"""Type-check README's Python snippets with `mypy --strict`, as CI does for the package.

Each ```python block of README.md (or of each Markdown file given, such as docs/*.md) becomes a
module of its own (they are written to stand alone); the script exits non-zero when mypy finds
an error in any of them, or when the files hold no snippet at all.

    python .ci/check_readme.py [README.md docs/*.md]
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    pages = [Path(arg) for arg in sys.argv[1:]] or [ROOT / "README.md"]
    blocks = [
        (page, block)
        for page in pages
        for block in re.findall(r"^```python\n(.*?)^```", page.read_text(), re.S | re.M)
    ]
    if not blocks:
        print(f"no python snippets in {', '.join(map(str, pages))}")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        for number, (page, block) in enumerate(blocks):
            (Path(tmp) / f"{page.stem.lower()}_snippet_{number:02d}.py").write_text(block)
        command = [sys.executable, "-m", "mypy", "--strict", "--config-file",
                   str(ROOT / "pyproject.toml"), tmp]  # fmt: skip
        result = subprocess.run(command, cwd=ROOT, check=False)
    print(f"{len(blocks)} snippets type-checked ({', '.join(map(str, pages))})")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
