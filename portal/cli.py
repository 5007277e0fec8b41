"""`flask` sub-commands: users, workspaces, demo data (connector commands live in cli_connector)."""
from __future__ import annotations

import secrets

import click
from flask import Flask
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Contact, User, Workspace

DEMO_WORKSPACE = "Atelier Lumière (démo)"
DEMO_SUPPORT = ("support@anaba.localhost", "support-demo")
DEMO_CUSTOMER = ("camille@atelier-lumiere.localhost", "client-demo")


def get_or_create_workspace(name: str) -> tuple[Workspace, str | None]:
    """The workspace called `name`, created if needed; the new API token when created."""
    ws = db.session.scalar(select(Workspace).where(Workspace.name == name))
    if ws:
        return ws, None
    ws = Workspace(name=name)
    token = ws.new_api_token()
    db.session.add(ws)
    db.session.commit()
    return ws, token


def create_user(email: str, role: str, password: str, workspace: Workspace | None, name: str = "") -> User:
    """Create a user (or reset an existing one's password and role)."""
    if role not in User.ROLES:
        raise click.BadParameter(f"role must be one of {', '.join(User.ROLES)}")
    if role == "customer" and workspace is None:
        raise click.BadParameter("a customer needs --workspace")
    workspace_id = workspace.id if (workspace and role == "customer") else None
    user = db.session.scalar(select(User).where(func.lower(User.email) == email.lower()))
    if user is None:
        user = User(email=email)
    user.role = role
    user.name = name or user.name or email.split("@")[0]
    user.workspace_id = workspace_id
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user


def register_cli(app: Flask) -> None:
    """Attach the commands to `app.cli`."""

    @app.cli.command("create-user")
    @click.argument("email")
    @click.option("--role", type=click.Choice(User.ROLES), required=True)
    @click.option("--workspace", "workspace_name", help="Workspace name (customers only).")
    @click.option("--password", help="Password; a random one is generated and printed when omitted.")
    def create_user_cmd(email, role, workspace_name, password):
        """Create a support agent or a customer user."""
        workspace = None
        if workspace_name:
            workspace = db.session.scalar(select(Workspace).where(Workspace.name == workspace_name))
            if workspace is None:
                raise click.ClickException(f"no workspace named {workspace_name!r} (flask workspace create NAME)")
        password = password or secrets.token_urlsafe(12)
        create_user(email, role, password, workspace)
        click.echo(f"user {email} ({role}) password: {password}")

    @app.cli.group("workspace")
    def workspace_group():
        """Manage workspaces."""

    @workspace_group.command("create")
    @click.argument("name")
    def workspace_create(name):
        """Create a workspace and print its API token (shown only once)."""
        ws, token = get_or_create_workspace(name)
        if token is None:
            raise click.ClickException(f"workspace {name!r} already exists (id {ws.id})")
        click.echo(f"workspace {ws.id} {name!r} created; API token: {token}")

    @workspace_group.command("new-token")
    @click.argument("name")
    def workspace_new_token(name):
        """Replace a workspace's API token and print the new one."""
        ws = db.session.scalar(select(Workspace).where(Workspace.name == name))
        if ws is None:
            raise click.ClickException(f"no workspace named {name!r}")
        token = ws.new_api_token()
        db.session.commit()
        click.echo(f"API token for {name!r}: {token}")

    @app.cli.command("seed-demo")
    @click.option("--contacts", default=2000, show_default=True)
    def seed_demo(contacts):
        """Create the demo workspace, its users and contacts (idempotent)."""
        from portal.crm.demo import insert_contacts

        ws, token = get_or_create_workspace(DEMO_WORKSPACE)
        create_user(DEMO_SUPPORT[0], "support", DEMO_SUPPORT[1], None, "Sam (support anaba)")
        create_user(DEMO_CUSTOMER[0], "customer", DEMO_CUSTOMER[1], ws, "Camille Carrel")
        existing = db.session.scalar(select(func.count()).select_from(Contact).where(Contact.workspace_id == ws.id))
        if not existing:
            insert_contacts(ws.id, contacts, seed=2026)
            from portal.db_setup import refresh_statistics

            refresh_statistics(db.engine)
        click.echo(f"demo workspace {DEMO_WORKSPACE!r}: {existing or contacts} contacts")
        if token:
            click.echo(f"demo API token: {token}")
        click.echo(f"support login : {DEMO_SUPPORT[0]} / {DEMO_SUPPORT[1]}")
        click.echo(f"customer login: {DEMO_CUSTOMER[0]} / {DEMO_CUSTOMER[1]}")

    import importlib

    try:
        cli_connector = importlib.import_module("portal.cli_connector")
    except ModuleNotFoundError as exc:  # arrives with the connector issue
        if exc.name != "portal.cli_connector":
            raise
        cli_connector = None
    if cli_connector is not None:
        cli_connector.register(app)
