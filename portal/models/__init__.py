"""The database models. Models hold data and small verbs; workflows live in crm/ and sync/."""
from sqlalchemy import event

from portal.db_setup import install_extensions
from portal.extensions import db
from portal.models.base import utcnow
from portal.models.enums import (ActivityAction, BackgroundProblem, Channel, ConnectorStatus, Consent, ConsentLockReason,
                                 ContactChange, NotSyncedReason, Role, RunKind, RunStatus, SyncEventKind, SyncState,
                                 WebhookEventStatus, WebhookProblem)
from portal.models.workspace import Workspace, User
from portal.models.contact import Contact, Tag, contact_tags, ConsentEvent, CONSENT_VALUES
from portal.models.connector import Connector, SyncRun, ContactSync, SyncEvent, PendingTagOp
from portal.models.activity import Activity, ActivityCampaign, ActivitySummary
from portal.models.email_log import EmailLog
from portal.models.csv_import import CsvImport
from portal.models.webhook_event import WebhookEvent

event.listen(db.metadata, "before_create", install_extensions)

__all__ = [
    "ActivityAction", "BackgroundProblem", "Channel", "ConnectorStatus", "Consent", "ConsentLockReason", "ContactChange",
    "NotSyncedReason", "Role", "RunKind", "RunStatus", "SyncEventKind", "SyncState", "WebhookEventStatus",
    "WebhookProblem", "utcnow", "Workspace", "User", "Contact", "Tag", "contact_tags", "ConsentEvent",
    "CONSENT_VALUES", "Connector", "SyncRun", "ContactSync", "SyncEvent", "PendingTagOp", "Activity",
    "ActivityCampaign", "ActivitySummary", "EmailLog", "CsvImport", "WebhookEvent",
]
