"""A workspace holding every kind of contact, and the figures every page must then show (issue 12).

Twelve live contacts and an audience of four members:

| contact | why | first copy |
|---|---|---|
| 3 new opt-in contacts, and Gilles, the oldest of two contacts sharing an address | eligible, not in the audience | created (4) |
| Bruno, in the audience with another first name; Chloé, in the audience with anaba's values | members that match | updated (2; Chloé already current) |
| Denis, opt-out | R14 | not synced (opt_out) |
| Émile, consent unknown | R14 | not synced (no_consent) |
| Gaëlle, sharing Gilles's address | one member per address (R19) | not synced (shared_email) |
| Hugo, no e-mail | R2 | not synced (no_email) |
| Inès, who unsubscribed herself through a Mailchimp form | consent imported and locked (R6, R16) | not synced (consent_locked) |
| Fanny, an address Mailchimp refuses | R19 | error (invalid_email) |

The audience also holds one member no contact has (left alone, R4).
"""
from __future__ import annotations

import factories

EXPECTED = {"contacts": 12, "created": 4, "updated": 2, "unchanged": 0, "not_synced": 5, "errors": 1}
EXPECTED_NOT_SYNCED = {"opt_out": 1, "no_consent": 1, "shared_email": 1, "no_email": 1, "consent_locked": 1}
EXPECTED_ERRORS = {"invalid_email": 1}
SHARED = "famille.garnier@courriel.fr"


def build(workspace, sim, sim_key, *, mc_request) -> dict:
    """The contacts and the audience; returns ``{"list_id", name: contact}``.

    `mc_request(method, path, **kw)` calls the simulator's Mailchimp API as Mailchimp's own UI would.
    """
    from portal.extensions import db

    people = {}
    for first in ("Anne", "Arthur", "Aline"):
        people[first] = factories.contact(workspace, email=f"{first.lower()}@courriel.fr", first_name=first,
                                          last_name="Nouveau", consent="opt_in")
    # Gilles, created first, owns the shared address until the customer chooses (the owner rule).
    people["Gilles"] = factories.contact(workspace, email=SHARED, first_name="Gilles", last_name="Garnier",
                                         consent="opt_in")
    people["Gaëlle"] = factories.contact(workspace, email=SHARED, first_name="Gaëlle", last_name="Garnier",
                                         consent="opt_in")
    people["Bruno"] = factories.contact(workspace, email="bruno@courriel.fr", first_name="Bruno", last_name="Blanc",
                                        consent="opt_in", street="3 rue Mercière", postal_code="69002",
                                        city="Lyon", country="France")
    people["Chloé"] = factories.contact(workspace, email="chloe@courriel.fr", first_name="Chloé", last_name="Carrel",
                                        consent="opt_in")
    people["Denis"] = factories.contact(workspace, email="denis@courriel.fr", first_name="Denis", consent="opt_out")
    people["Émile"] = factories.contact(workspace, email="emile@courriel.fr", first_name="Émile")
    people["Hugo"] = factories.contact(workspace, email=None, first_name="Hugo", last_name="Sans-Adresse")
    people["Inès"] = factories.contact(workspace, email="ines@courriel.fr", first_name="Inès", consent="opt_in")
    fanny = factories.contact(workspace, email="fanny@courriel.fr", first_name="Fanny", consent="opt_in")
    # An address the contact form refuses too, as it arrives from an old import: Mailchimp would refuse it.
    fanny.email = "fanny.martin@courriel..fr"
    fanny.refresh_derived()
    db.session.commit()
    people["Fanny"] = fanny

    list_id = sim.control.create_list(sim_key, "Newsletter")["id"]
    members = [
        {"email_address": "bruno@courriel.fr", "status": "subscribed", "merge_fields": {"FNAME": "Bruneau"}},
        {"email_address": "chloe@courriel.fr", "status": "subscribed",
         "merge_fields": {"FNAME": "Chloé", "LNAME": "Carrel"}},
        {"email_address": "ines@courriel.fr", "status": "subscribed"},
        {"email_address": "lecteur@exemple-newsletter.fr", "status": "subscribed"},
    ]
    for member in members:
        mc_request("POST", f"lists/{list_id}/members", json=member)
    sim.control.member_action(list_id, "ines@courriel.fr", "unsubscribe-via-form")
    return {"list_id": list_id, **people}
