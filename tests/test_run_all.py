"""`make run` and the README (issue 12): the address printed is the one the e-mails link to, the
logins and the API token are printed, and the README says how to try the revoked-key case."""
from __future__ import annotations

from pathlib import Path

from scripts import run_all

ROOT = Path(__file__).resolve().parent.parent


def test_make_run_prints_the_address_the_emails_link_to_and_the_logins():
    from portal.cli import DEMO_CUSTOMER, DEMO_SUPPORT, DEMO_WORKSPACE

    env = {"PUBLIC_BASE_URL": "http://portal.localhost:5000", "MAILCHIMP_API_BASE": "http://127.0.0.1:8470/3.0/"}
    printed = run_all.banner(env, "anb_secret")
    assert "anaba portal:   http://portal.localhost:5000" in printed
    assert "127.0.0.1:5000" not in printed  # one address: logging in there would not serve e-mail links
    assert f"{DEMO_SUPPORT[0]} / {DEMO_SUPPORT[1]}" in printed and f"{DEMO_CUSTOMER[0]} / {DEMO_CUSTOMER[1]}" in printed
    assert "anb_secret" in printed
    assert DEMO_WORKSPACE == run_all.DEMO_WORKSPACE_NAME
    later = run_all.banner(env, None)
    assert "workspace new-token" in later and DEMO_WORKSPACE in later


def test_make_run_finds_the_api_token_seed_demo_printed():
    output = "demo workspace 'Atelier Lumière (démo)': 2000 contacts\ndemo API token: anb_abc123\nsupport login : x\n"
    assert run_all.api_token_in(output) == "anb_abc123"
    assert run_all.api_token_in("demo workspace: 2000 contacts\n") is None


def test_make_run_and_the_emails_share_one_default_address(tmp_path):
    from portal.config import load_settings

    settings = load_settings({"SECRET_KEY": "x", "FERNET_KEY": "x" * 43 + "="}, str(tmp_path))
    source = (ROOT / "scripts" / "run_all.py").read_text(encoding="utf-8")
    assert settings.PUBLIC_BASE_URL == "http://portal.localhost:5000"
    assert 'env.setdefault("PUBLIC_BASE_URL", f"http://portal.localhost:{PORTS[\'web\']}")' in source


def test_the_readme_says_what_make_run_prints_and_how_to_try_a_revoked_key():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "http://portal.localhost:5000" in readme and "http://127.0.0.1:5000" not in readme
    assert "support@anaba.localhost" in readme and "API token" in readme
    assert "/_sim/accounts/00000000000000000000000000000001-us1/revoke" in readme
    assert "/_sim/accounts/00000000000000000000000000000001-us1/restore" in readme
