"""Dispatch `python -m bench NAME ...` to bench/NAME.py's main(argv)."""
from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main() -> None:
    """Run the named benchmark."""
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if not m.name.startswith("_"))
    if len(sys.argv) < 2 or sys.argv[1] not in names:
        sys.exit(f"usage: python -m bench {{{','.join(names)}}} [options]")
    module = importlib.import_module(f"bench.{sys.argv[1]}")
    module.main(sys.argv[2:])


if __name__ == "__main__":
    main()
