"""`flask connector ...`: support operations on Mailchimp connectors, also used by tests.

    flask connector create --workspace NAME --api-key KEY --audience LIST_ID [--by EMAIL]
    flask connector validate CONNECTOR_ID --by EMAIL
    flask connector send-back CONNECTOR_ID --by EMAIL --reason TEXT
    flask connector list
    flask connector delete CONNECTOR_ID --by EMAIL
    flask connector reconcile CONNECTOR_ID
    flask connector resume-stale
"""
from __future__ import annotations

import click
from flask import Flask
from portal import jobs
from portal.crm.accounts import find_user, find_workspace
from portal.mailchimp import MailchimpError
from portal.models import User
from portal.sync import ConnectorError, lifecycle


def _user(email: str | None, *, support: bool = False) -> User | None:
    if not email:
        return None
    user = find_user(email)
    if user is None:
        raise click.ClickException(f"no user {email!r}")
    if support and not user.is_support:
        raise click.ClickException(f"{email} is not a support agent")
    return user


def register(app: Flask) -> None:
    """Attach the `connector` command group to `app.cli`."""
    @app.cli.group("connector")
    def connector_group():
        """Manage Mailchimp connectors."""

    @connector_group.command("create")
    @click.option("--workspace", "workspace_name", required=True, help="Workspace name.")
    @click.option("--api-key", required=True, help="Mailchimp API key (32 hex, dash, datacenter).")
    @click.option("--audience", required=True, help="Mailchimp audience (list) id.")
    @click.option("--by", "by", help="E-mail of the user submitting it.")
    @click.option("--no-create-missing", is_flag=True, help="Do not create missing merge fields; drop them.")
    def create_cmd(workspace_name, api_key, audience, by, no_create_missing):
        """Submit a connector with the default mapping; it waits for validation."""
        workspace = find_workspace(workspace_name)
        if workspace is None:
            raise click.ClickException(f"no workspace named {workspace_name!r}")
        try:
            connector = jobs.submit_connector(workspace.id, _user(by), api_key, audience, None,
                                              create_missing=not no_create_missing)
        except (ConnectorError, MailchimpError) as exc:
            raise click.ClickException(exc.message) from None
        click.echo(f"connector {connector.id} created for {workspace.name!r} "
                   f"(audience {connector.audience_name!r}); waiting for validation")

    @connector_group.command("validate")
    @click.argument("connector_id", type=int)
    @click.option("--by", "by", required=True, help="E-mail of the support agent.")
    def validate_cmd(connector_id, by):
        """Validate a connector: its initial copy starts (on the bulk queue)."""
        try:
            run = jobs.validate_connector(connector_id, _user(by, support=True))
        except ConnectorError as exc:
            raise click.ClickException(exc.message) from None
        click.echo(f"connector {connector_id} validated; initial copy run {run.id} queued ({run.total} contacts)")

    @connector_group.command("send-back")
    @click.argument("connector_id", type=int)
    @click.option("--by", "by", required=True, help="E-mail of the support agent.")
    @click.option("--reason", required=True, help="What the customer must change.")
    def send_back_cmd(connector_id, by, reason):
        """Send a connector back to its customer with a reason."""
        try:
            lifecycle.send_back(connector_id, _user(by, support=True), reason)
        except ConnectorError as exc:
            raise click.ClickException(exc.message) from None
        click.echo(f"connector {connector_id} sent back")

    @connector_group.command("list")
    def list_cmd():
        """List connectors (deleted ones too), newest first."""
        rows = sorted(lifecycle.connectors_with_workspaces(), key=lambda row: row[0].id, reverse=True)
        if not rows:
            click.echo("no connector")
        for connector, workspace in rows:
            click.echo(f"{connector.id}\t{connector.status}\t{workspace.name}\t{connector.audience_id}\t"
                       f"{connector.audience_name}\t{connector.api_key_hint}")

    @connector_group.command("delete")
    @click.argument("connector_id", type=int)
    @click.option("--by", "by", required=True, help="E-mail of the user deleting it.")
    def delete_cmd(connector_id, by):
        """Delete a connector (R9): replication stops, anaba's data and the audience stay."""
        try:
            lifecycle.delete_connector(connector_id, _user(by))
        except ConnectorError as exc:
            raise click.ClickException(exc.message) from None
        click.echo(f"connector {connector_id} deleted")

    @connector_group.command("reconcile")
    @click.argument("connector_id", type=int)
    def reconcile_cmd(connector_id):
        """Reconcile a connector with its audience now (R22), in the background."""
        try:
            run = jobs.reconcile_now(connector_id)
        except ConnectorError as exc:
            raise click.ClickException(exc.message) from None
        click.echo(f"connector {connector_id}: reconciliation run {run.id} queued")

    @connector_group.command("resume-stale")
    def resume_stale_cmd():
        """Re-enqueue runs whose worker died (or whose job was lost)."""
        ids = jobs.resume_stale_runs()
        click.echo(f"re-enqueued runs: {', '.join(map(str, ids)) or 'none'}")
