"""`flask` sub-commands: users, workspaces, demo data, campaign activity (connector commands live in
cli_connector).

Commands read their arguments and call one function of ``portal.crm`` (or ``portal.jobs``).
"""
from __future__ import annotations

import secrets

import click
from flask import Flask

from portal.crm.accounts import (AccountError, contact_count, create_user, find_workspace, get_or_create_workspace,
                                 new_api_token)
from portal.models import User

DEMO_WORKSPACE = "Atelier Lumière (démo)"
DEMO_SUPPORT = ("support@anaba.localhost", "support-demo")
DEMO_CUSTOMER = ("camille@atelier-lumiere.localhost", "client-demo")


def register_cli(app: Flask) -> None:
    """Attach the commands to `app.cli`."""

    @app.cli.command("create-user")
    @click.argument("email")
    @click.option("--role", type=click.Choice([r.value for r in User.ROLES]), required=True)
    @click.option("--workspace", "workspace_name", help="Workspace name (customers only).")
    @click.option("--password", help="Password; a random one is generated and printed when omitted.")
    def create_user_cmd(email, role, workspace_name, password):
        """Create a support agent or a customer user."""
        workspace = None
        if workspace_name:
            workspace = find_workspace(workspace_name)
            if workspace is None:
                raise click.ClickException(f"no workspace named {workspace_name!r} (flask workspace create NAME)")
        password = password or secrets.token_urlsafe(12)
        try:
            create_user(email, role, password, workspace)
        except AccountError as exc:
            raise click.BadParameter(str(exc)) from None
        click.echo(f"user {email} ({role}) password: {password}")

    @app.cli.group("workspace")
    def workspace_group():
        """Manage workspaces."""

    @workspace_group.command("create")
    @click.argument("name")
    def workspace_create(name):
        """Create a workspace and print its API token (shown only once)."""
        try:
            ws, token = get_or_create_workspace(name)
        except AccountError as exc:
            raise click.BadParameter(str(exc), param_hint="NAME") from None
        if token is None:
            raise click.ClickException(f"workspace {name!r} already exists (id {ws.id})")
        click.echo(f"workspace {ws.id} {name!r} created; API token: {token}")

    @workspace_group.command("new-token")
    @click.argument("name")
    def workspace_new_token(name):
        """Replace a workspace's API token and print the new one."""
        ws = find_workspace(name)
        if ws is None:
            raise click.ClickException(f"no workspace named {name!r}")
        token = new_api_token(ws)
        click.echo(f"API token for {name!r}: {token}")

    @app.cli.command("seed-demo")
    @click.option("--contacts", default=2000, show_default=True)
    def seed_demo(contacts):
        """Create the demo workspace, its users and contacts (idempotent)."""
        from portal.crm.demo import insert_contacts

        ws, token = get_or_create_workspace(DEMO_WORKSPACE)
        create_user(DEMO_SUPPORT[0], "support", DEMO_SUPPORT[1], None, "Sam (support anaba)")
        create_user(DEMO_CUSTOMER[0], "customer", DEMO_CUSTOMER[1], ws, "Camille Carrel")
        existing = contact_count(ws.id)
        if not existing:
            insert_contacts(ws.id, contacts, seed=2026)
        click.echo(f"demo workspace {DEMO_WORKSPACE!r}: {existing or contacts} contacts")
        if token:
            click.echo(f"demo API token: {token}")
        click.echo(f"support login : {DEMO_SUPPORT[0]} / {DEMO_SUPPORT[1]}")
        click.echo(f"customer login: {DEMO_CUSTOMER[0]} / {DEMO_CUSTOMER[1]}")

    @app.cli.group("activity")
    def activity_group():
        """Campaign activity imported from Mailchimp (R18)."""

    @activity_group.command("import")
    @click.option("--connector", "connector_id", type=int, required=True, help="Connector id (flask connector list).")
    @click.option("--foreground", is_flag=True, help="Run it in this process and wait, instead of queueing it.")
    def activity_import_cmd(connector_id, foreground):
        """Import the connector's campaign activity now (queued on `reports`, or here with --foreground)."""
        from portal import jobs
        from portal.models import RunStatus
        from portal.sync import ConnectorError
        from portal.sync import runs as sync_runs

        try:
            run = jobs.import_activity_now(connector_id, in_background=not foreground)
        except ConnectorError as exc:
            raise click.ClickException(exc.message) from None
        if not foreground:
            click.echo(f"activity import run {run.id} queued for connector {connector_id}")
            return
        jobs.import_activity(run.id)
        run = sync_runs.get(run.id)
        counts = run.counts or {}
        click.echo(f"activity import run {run.id}: {run.status}; campaigns {counts.get('campaigns', 0)}, "
                   f"activities added {counts.get('added', 0)}, skipped (no contact) {counts.get('no_contact', 0)}, "
                   f"errors {run.error_count}")
        if run.status != RunStatus.FINISHED:
            raise click.ClickException(run.message or f"run {run.status}")
