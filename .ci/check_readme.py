"""Type-check README's Python snippets with `mypy --strict`, as CI does for the package.

Each ```python block of README.md becomes a module of its own (they are written to stand
alone); the script exits non-zero when mypy finds an error in any of them.

    python .ci/check_readme.py [README.md]
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    readme = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "README.md"
    blocks = re.findall(r"^```python\n(.*?)^```", readme.read_text(), re.S | re.M)
    if not blocks:
        print(f"no python snippets in {readme}")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        for number, block in enumerate(blocks):
            (Path(tmp) / f"readme_snippet_{number:02d}.py").write_text(block)
        command = [sys.executable, "-m", "mypy", "--strict", "--config-file",
                   str(ROOT / "pyproject.toml"), tmp]  # fmt: skip
        result = subprocess.run(command, cwd=ROOT, check=False)
    print(f"{len(blocks)} README snippets type-checked")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
