"""The layers point one way (docs/architecture.md), checked with import-linter over the import graph.

Function-local imports count (grimp reads every import statement), so a layer cannot be crossed
by hiding the import inside a function.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = str(Path(sys.executable).with_name("lint-imports"))


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LINT, str(root / ".importlinter"), "--no-cache"], cwd=root, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


def test_every_layering_contract_is_kept():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


def test_a_sync_module_that_enqueues_a_job_breaks_the_layers(tmp_path):
    for name in ("portal", "mailchimp_sim"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path)
    push = tmp_path / "portal" / "sync" / "push.py"
    push.write_text(push.read_text() + "\n\ndef _later():\n    from portal import jobs  # hidden in a function\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "portal.sync.push -> portal.jobs" in result.stdout


def test_the_simulator_may_not_borrow_from_the_portal(tmp_path):
    for name in ("portal", "mailchimp_sim"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path)
    store = tmp_path / "mailchimp_sim" / "store.py"
    store.write_text(store.read_text() + "\nfrom portal.mailchimp.payload import subscriber_hash  # noqa\n")
    result = _lint(tmp_path)
    assert result.returncode != 0 and "The simulator imports nothing from the portal BROKEN" in result.stdout
