"""Give the demo's simulated Mailchimp audience some history, once: members that match demo
contacts with other values (R4: anaba will overwrite them), members anaba does not know (left
alone), and members who unsubscribed themselves or bounced (R6: imported as consent).

Usage: python scripts/seed_demo_audience.py API_KEY AUDIENCE_NAME (needs MAILCHIMP_API_BASE).
"""
from __future__ import annotations

import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(api_key: str, audience_name: str) -> None:
    """Fill the audience when it is empty; do nothing otherwise."""
    from sqlalchemy import select

    from mailchimp_sim.testing import SimControl
    from portal import create_app
    from portal.cli import DEMO_WORKSPACE
    from portal.extensions import db
    from portal.mailchimp.client import MailchimpClient
    from portal.models import Contact, Workspace

    base = os.environ["MAILCHIMP_API_BASE"]
    client = MailchimpClient(api_key, base_url=base, timeout=(3.05, 30))
    audience = next((a for a in client.get_lists() if a["name"] == audience_name), None)
    if audience is None or audience.get("member_count", audience.get("stats", {}).get("member_count", 0)):
        return
    app = create_app()
    with app.app_context():
        ws = db.session.scalar(select(Workspace).where(Workspace.name == DEMO_WORKSPACE))
        emails = list(db.session.scalars(
            select(Contact.email).where(Contact.workspace_id == ws.id, Contact.email.like("%@%.%"))
            .order_by(Contact.id).limit(300)
        ))
    rnd = random.Random(7)
    members = [{"email_address": e, "status": "subscribed",
                "merge_fields": {"FNAME": rnd.choice(["Jean", "Marie", "Ancien prénom"]), "LNAME": "Ancien nom"}}
               for e in emails[:250]]
    members += [{"email_address": f"lecteur{i}@exemple-newsletter.fr", "status": "subscribed",
                 "merge_fields": {"FNAME": "Lecteur", "LNAME": str(i)}} for i in range(100)]
    for start in range(0, len(members), 500):
        client.batch_subscribe(audience["id"], members[start:start + 500], update_existing=True)
    control = SimControl(base.split("/3.0")[0])
    for email in emails[250:270]:
        client.batch_subscribe(audience["id"], [{"email_address": email, "status": "subscribed"}], update_existing=True)
        control.member_action(audience["id"], email, "unsubscribe-via-form")
    for email in emails[270:280]:
        client.batch_subscribe(audience["id"], [{"email_address": email, "status": "subscribed"}], update_existing=True)
        control.member_action(audience["id"], email, "bounce")
    print(f"demo audience {audience_name!r} seeded with {len(members) + 30} members")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
