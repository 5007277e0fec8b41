"""The campaign activity a customer and support see (R18): the contact's "Marketing communication"
tab, the contacts table's "opened in the last N weeks" / "never opened" filters, and support's
campaign activity card with "import now"."""
from __future__ import annotations

import re

import pytest
from flask_babel import force_locale

import factories
from activity_helpers import active_connector, activity, ago, campaign, summarize
from portal.extensions import db

HX = {"HX-Request": "true"}


def text(response) -> str:
    return response.get_data(as_text=True)


def campaign_order(html: str) -> list[str]:
    return re.findall(r'data-campaign-id="([^"]+)"', html)


# --------------------------------------------------------------------------- the record's tab

def test_the_tab_shows_each_campaign_with_what_the_contact_did(ui, workspace):
    connector = active_connector(workspace)
    contact = factories.contact(workspace)
    campaign(workspace, connector, "c-old", days_ago=30, title="Soldes d'hiver", subject="-30 % sur tout")
    campaign(workspace, connector, "c-new", days_ago=3, title="Nouveautés", subject="Nos nouveautés de décembre")
    campaign(workspace, connector, "c-mid", days_ago=10, title="Invitation salon")
    activity(contact, "c-old", "sent", ago(30))
    for hours in (1, 5, 30):
        activity(contact, "c-old", "open", ago(30 - hours / 24))
    activity(contact, "c-old", "click", ago(29), url="https://atelier.example.fr/soldes")
    activity(contact, "c-old", "click", ago(28), url="https://atelier.example.fr/soldes")
    activity(contact, "c-old", "click", ago(28.5), url="https://atelier.example.fr/contact")
    activity(contact, "c-new", "sent", ago(3))
    activity(contact, "c-new", "unsubscribe", ago(2))
    activity(contact, "c-mid", "hard_bounce", ago(10))

    html = text(ui.get(f"/contacts/{contact.id}/activity"))

    assert campaign_order(html) == ["c-new", "c-mid", "c-old"]  # newest send first
    old = html[html.index('data-campaign-id="c-old"'):]
    assert "Soldes d&#39;hiver" in old and "Subject: -30 % sur tout" in old
    assert "Received" in old and "Opened 3 times" in old
    assert old.index("https://atelier.example.fr/soldes") < old.index("https://atelier.example.fr/contact")
    assert "(2 times)" in old  # the same link clicked twice shows once, with its count
    new = html[html.index('data-campaign-id="c-new"'):html.index('data-campaign-id="c-mid"')]
    assert "Unsubscribed" in new and "Not opened" in new
    mid = html[html.index('data-campaign-id="c-mid"'):html.index('data-campaign-id="c-old"')]
    assert "Bounced (address rejected)" in mid and "Received" not in mid
    assert "3 campaigns" in html


def test_the_tab_pages_ten_campaigns_at_a_time(ui, workspace):
    connector = active_connector(workspace)
    contact = factories.contact(workspace)
    for n in range(12):
        campaign(workspace, connector, f"c{n:02d}", days_ago=40 - n)
        activity(contact, f"c{n:02d}", "sent", ago(40 - n))

    first = text(ui.get(f"/contacts/{contact.id}/activity"))
    assert campaign_order(first) == [f"c{n:02d}" for n in range(11, 1, -1)]
    assert "Older campaigns ›" in first and "Page 1 of 2" in first
    second = text(ui.get(f"/contacts/{contact.id}/activity?page=2", headers=HX))
    assert second.lstrip().startswith('<div id="contact-record"')  # htmx gets the record block only
    assert campaign_order(second) == ["c01", "c00"] and "‹ Newer campaigns" in second
    beyond = text(ui.get(f"/contacts/{contact.id}/activity?page=99"))
    assert campaign_order(beyond) == ["c01", "c00"]  # past the end: the last page
    assert ui.get(f"/contacts/{contact.id}/activity?page=abc").status_code == 200


def test_the_empty_tab_says_when_the_next_import_runs(ui, customer, workspace):
    from portal import labels
    from portal.sync.activity_import import next_import_at

    active_connector(workspace)
    contact = factories.contact(workspace)
    html = text(ui.get(f"/contacts/{contact.id}/activity"))
    assert "No campaign activity yet." in html
    with force_locale("en"):
        when = labels.paris_moment(next_import_at())
    assert when.startswith("Saturday,") and "(Paris time)" in when and "2:00" in when
    assert f"the next import runs on {when}" in html

    customer.locale = "fr"
    db.session.commit()
    french = text(ui.get(f"/contacts/{contact.id}/activity"))
    assert "Aucune activité de campagne pour l'instant." in french
    assert "samedi" in french and "02:00 (heure de Paris)" in french


def test_without_an_active_connector_the_tab_explains_where_activity_comes_from(ui, workspace):
    contact = factories.contact(workspace)
    html = text(ui.get(f"/contacts/{contact.id}/activity"))
    assert "No campaign activity yet." in html and "Once the Mailchimp connector is active" in html
    assert "next import" not in html


def test_another_workspaces_contact_has_no_activity_tab(ui, workspace):
    other = factories.workspace("Fleuriste Bleu")
    stranger = factories.contact(other, email="x@bleu.example.org")
    assert ui.get(f"/contacts/{stranger.id}/activity").status_code == 404


# --------------------------------------------------------------------------- the table's filters

@pytest.fixture
def engagement(workspace):
    """Contacts with every kind of campaign history, by first name."""
    connector = active_connector(workspace)
    for cid, days in (("c1", 70), ("c2", 20), ("c3", 6)):
        campaign(workspace, connector, cid, days_ago=days)
    people = {name: factories.contact(workspace, email=f"{name.lower()}@atelier.example.fr", first_name=name,
                                      last_name="Test") for name in ("Recent", "Old", "Clicker", "Never", "Nothing")}
    activity(people["Recent"], "c1", "sent", ago(70))
    activity(people["Recent"], "c3", "sent", ago(6))
    activity(people["Recent"], "c3", "open", ago(5))
    activity(people["Old"], "c1", "sent", ago(70))
    activity(people["Old"], "c1", "open", ago(69))
    activity(people["Clicker"], "c2", "sent", ago(20))
    activity(people["Clicker"], "c2", "click", ago(19), url="https://atelier.example.fr/")  # images off: no open
    activity(people["Never"], "c1", "sent", ago(70))
    activity(people["Never"], "c2", "sent", ago(20))
    activity(people["Never"], "c2", "unsubscribe", ago(19))
    summarize(workspace)
    return people


def names(html: str) -> list[str]:
    return sorted(n.split()[0] for n in re.findall(r'<a href="/contacts/\d+">([^<]+)</a>', html))


@pytest.mark.parametrize(("opened", "expected"), [
    ("1", ["Recent"]),
    ("4", ["Clicker", "Recent"]),
    ("13", ["Clicker", "Old", "Recent"]),
    ("never", ["Never"]),
    ("", ["Clicker", "Never", "Nothing", "Old", "Recent"]),
    ("bogus", ["Clicker", "Never", "Nothing", "Old", "Recent"]),  # ignored, not an error
    ("0", ["Clicker", "Never", "Nothing", "Old", "Recent"]),
])
def test_the_table_filters_on_opened_in_the_last_weeks_and_never_opened(ui, engagement, opened, expected):
    response = ui.get("/contacts/", query_string={"opened": opened}, headers=HX)
    assert response.status_code == 200
    html = text(response)
    assert names(html) == expected
    assert f"{len(expected)} contact" in html


def test_the_filter_is_offered_once_a_connector_exists_and_kept_in_links(ui, workspace, engagement):
    html = text(ui.get("/contacts/?opened=4"))
    assert '<select name="opened"' in html
    assert '<option value="4" selected>Opened in the last 4 weeks</option>' in html
    assert "<option value=\"never\">Received campaigns, never opened one</option>" in html
    assert "Clear filters" in html
    custom = text(ui.get("/contacts/?opened=3"))
    assert '<option value="3" selected>Opened in the last 3 weeks</option>' in custom


def test_without_a_connector_the_table_has_no_campaign_filter(ui, workspace):
    factories.contact(workspace)
    assert 'name="opened"' not in text(ui.get("/contacts/"))


def test_the_filter_combines_with_search_and_ignores_other_workspaces(ui, workspace, engagement):
    other = factories.workspace("Fleuriste Bleu")
    outsider = factories.contact(other, email="recent@bleu.example.org", first_name="Recent", last_name="Ailleurs")
    activity(outsider, "c3", "open", ago(1))
    summarize(other)
    html = text(ui.get("/contacts/", query_string={"opened": "4", "q": "recent"}, headers=HX))
    assert names(html) == ["Recent"]


# --------------------------------------------------------------------------- support's card

@pytest.fixture
def support(support_client, support_user):
    """Support's client, in English."""
    support_user.locale = "en"
    db.session.commit()
    return support_client


def test_support_starts_an_import_now_and_sees_it_queued(support, workspace, run_jobs):
    from portal.jobs import queue
    from portal.models import SyncRun

    connector = active_connector(workspace)
    page = text(support.get(f"/support/connectors/{connector.id}"))
    assert f'hx-get="/support/connectors/{connector.id}/activity"' in page
    card = text(support.get(f"/support/connectors/{connector.id}/activity", headers=HX))
    assert "Import campaign activity now" in card and "No import yet." in card
    assert "the next import runs on Saturday," in card and "(Paris time)" in card  # the next weekly import

    response = support.post(f"/support/connectors/{connector.id}/activity", headers=HX)
    assert response.status_code == 200
    card = text(response)
    run = db.session.scalar(db.select(SyncRun).where(SyncRun.kind == "activity_import"))
    assert run is not None and run.status == "queued" and run.connector_id == connector.id
    assert queue("reports").count == 1
    assert f'data-run-id="{run.id}"' in card and f'id="run-progress-{run.id}"' in card
    again = support.post(f"/support/connectors/{connector.id}/activity", headers=HX)
    assert db.session.scalar(db.select(db.func.count()).select_from(SyncRun)) == 1  # the same run
    assert again.status_code == 200


def test_import_now_without_htmx_redirects_with_a_message(support, workspace):
    connector = active_connector(workspace)
    response = support.post(f"/support/connectors/{connector.id}/activity")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/support/connectors/{connector.id}")


def test_import_now_is_refused_for_a_connector_that_is_not_active(support, workspace):
    connector = active_connector(workspace)
    connector.status = "paused"
    db.session.commit()
    response = support.post(f"/support/connectors/{connector.id}/activity", headers=HX)
    assert response.status_code == 409
    assert "Campaign activity is imported for active connectors only." in text(response)


def test_the_card_reports_a_finished_import_with_its_counts(support, workspace):
    from portal.models import RunStatus, SyncRun, utcnow

    connector = active_connector(workspace)
    db.session.add(SyncRun(connector_id=connector.id, workspace_id=workspace.id, kind="activity_import",
                           status=RunStatus.FINISHED, total=3, done=3, error_count=1, started_at=ago(0.01),
                           finished_at=utcnow(), counts={"campaigns": 3, "added": 1234, "no_contact": 56},
                           result={"errors": [{"campaign_id": "c9", "kind": "not_found"}]}))
    db.session.commit()
    card = text(support.get(f"/support/connectors/{connector.id}/activity", headers=HX))
    assert ">1,234<" in card
    assert ">56<" in card and "c9" in card


def test_customers_cannot_reach_the_support_card(customer_client, workspace):
    connector = active_connector(workspace)
    assert customer_client.post(f"/support/connectors/{connector.id}/activity", headers=HX).status_code in (302, 403)
    assert customer_client.get(f"/support/connectors/{connector.id}/activity").status_code in (302, 403)


# --------------------------------------------------------------------------- vocabulary

def test_every_activity_action_reads_in_french_and_in_english(app):
    from portal import labels
    from portal.models import ActivityAction

    for action in ActivityAction:
        with force_locale("fr"):
            french = labels.activity_action(action)
        with force_locale("en"):
            english = labels.activity_action(action)
        assert french and english and french != english and "_" not in english, action
