"""Campaign activity as the import leaves it, written directly (for the pages, the filters and the API)."""
from __future__ import annotations

from datetime import datetime, timedelta

from portal.extensions import db
from portal.models import Activity, ActivityCampaign, Connector, ConnectorStatus, utcnow


def active_connector(workspace) -> Connector:
    """An active connector for `workspace` (its key is never used: nothing here calls Mailchimp)."""
    from flask import current_app

    from portal.mailchimp import encrypt_secret

    connector = Connector(workspace_id=workspace.id, status=ConnectorStatus.ACTIVE, audience_id="aud1",
                          audience_name="Clients", api_key_hint="…-us1", field_mapping=[], merge_fields_to_create=[],
                          api_key_encrypted=encrypt_secret("0" * 32 + "-us1", current_app.config["FERNET_KEY"]))
    db.session.add(connector)
    db.session.commit()
    return connector


def campaign(workspace, connector, campaign_id: str, *, days_ago: float, title: str = "", subject: str = ""
             ) -> ActivityCampaign:
    """A campaign sent `days_ago` days ago to the connector's audience."""
    row = ActivityCampaign(workspace_id=workspace.id, connector_id=connector.id, campaign_id=campaign_id,
                           list_id=connector.audience_id, title=title or f"Campagne {campaign_id}",
                           subject=subject or f"Objet {campaign_id}", send_time=ago(days_ago), emails_sent=1,
                           recipients_done=True)
    db.session.add(row)
    db.session.commit()
    return row


def ago(days: float) -> datetime:
    """A whole-second time `days` days ago (Mailchimp's precision)."""
    return (utcnow() - timedelta(days=days)).replace(microsecond=0)


def activity(contact, campaign_id: str, action: str, at: datetime, url: str = "", occurrence: int = 0) -> Activity:
    """One activity row of `contact` (committed)."""
    row = Activity(workspace_id=contact.workspace_id, contact_id=contact.id, campaign_id=campaign_id, action=action,
                   occurred_at=at, url=url, url_key=url[:60], occurrence=occurrence)
    db.session.add(row)
    db.session.commit()
    return row


def summarize(workspace) -> None:
    """What the end of an import does: the per-contact summary the contacts table's filters read."""
    from portal.sync.activity_import import refresh_summary

    refresh_summary(workspace.id)  # every contact of the workspace
    db.session.commit()
