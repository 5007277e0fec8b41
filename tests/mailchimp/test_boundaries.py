"""The adapter stays an adapter: the only importer of mailchimp3, free of Flask and the models."""
from __future__ import annotations

import ast
from pathlib import Path

PORTAL = Path(__file__).resolve().parents[2] / "portal"
ADAPTER = PORTAL / "mailchimp"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_only_the_adapter_imports_mailchimp3():
    offenders = [
        str(path.relative_to(PORTAL.parent)) for path in PORTAL.rglob("*.py")
        if ADAPTER not in path.parents and any(n.split(".")[0] == "mailchimp3" for n in _imports(path))
    ]
    assert offenders == []
    assert any("mailchimp3" in _imports(p) for p in ADAPTER.glob("*.py"))


def test_the_adapter_imports_neither_flask_nor_the_app():
    forbidden = ("flask", "flask_babel", "flask_sqlalchemy", "sqlalchemy", "portal.models", "portal.extensions",
                 "portal.config", "portal.sync", "portal.views")
    for path in ADAPTER.glob("*.py"):
        bad = [n for n in _imports(path) if n.split(".")[0] in forbidden or n.startswith(forbidden)]
        assert bad == [], f"{path.name} imports {bad}"
