"""Tags, static segments and tag search (API-NOTES §4, §14.8)."""

from __future__ import annotations

import time

import requests
from mailchimp3.helpers import get_subscriber_hash
from mailchimp3.mailchimpclient import MailChimpError
import pytest


def add(mc, list_id, email):
    """Add a member through mailchimp3."""
    return mc.lists.members.create(list_id, {"email_address": email, "status": "subscribed"})


def test_tag_post_returns_204_and_auto_creates_tags(sim, mc, list_id, api_key):
    member = add(mc, list_id, "a@anaba.fr")
    response = requests.post(f"{sim.api_base}lists/{list_id}/members/{member['id']}/tags",
                             auth=("x", api_key), timeout=10,
                             json={"tags": [{"name": "Clients", "status": "active"}]})
    assert response.status_code == 204 and response.content == b""
    assert response.headers["Content-Type"].startswith("application/json")
    tags = mc.lists.members.tags.all(list_id, member["id"])
    assert [t["name"] for t in tags["tags"]] == ["Clients"] and tags["total_items"] == 1
    segments = mc.lists.segments.all(list_id, get_all=False, type="static")
    assert [(s["name"], s["member_count"]) for s in segments["segments"]] == [("Clients", 1)]


def test_inactivating_an_absent_tag_is_fine(mc, list_id):
    member = add(mc, list_id, "a@anaba.fr")
    assert mc.lists.members.tags.update(list_id, member["id"], {
        "tags": [{"name": "Never", "status": "inactive"}]}) is None
    assert mc.lists.members.tags.all(list_id, member["id"])["tags"] == []


def test_inactivating_a_tag_removes_it_from_the_member(mc, list_id):
    member = add(mc, list_id, "a@anaba.fr")
    mc.lists.members.tags.update(list_id, member["id"], {"tags": [
        {"name": "A", "status": "active"}, {"name": "B", "status": "active"}]})
    mc.lists.members.tags.update(list_id, member["id"], {"tags": [{"name": "a", "status": "inactive"}]})
    got = mc.lists.members.get(list_id, member["id"])
    assert [t["name"] for t in got["tags"]] == ["B"] and got["tags_count"] == 1


def test_tags_on_non_member_is_404(mc, list_id):
    with pytest.raises(MailChimpError) as info:
        mc.lists.members.tags.update(list_id, get_subscriber_hash("no@anaba.fr"),
                                     {"tags": [{"name": "X", "status": "active"}]})
    assert info.value.args[0]["status"] == 404


def test_tags_in_post_body_are_applied_on_create_but_not_by_put(mc, list_id):
    created = mc.lists.members.create(list_id, {"email_address": "a@anaba.fr",
                                                "status": "subscribed", "tags": ["Clients"]})
    assert [t["name"] for t in created["tags"]] == ["Clients"]
    updated = mc.lists.members.create_or_update(list_id, created["id"], {
        "email_address": "a@anaba.fr", "status_if_new": "subscribed", "tags": ["Other"]})
    assert [t["name"] for t in updated["tags"]] == ["Clients"]


def test_static_segment_bulk_add_and_remove(mc, list_id):
    for email in ("a@anaba.fr", "b@anaba.fr", "c@anaba.fr"):
        add(mc, list_id, email)
    segment = mc.lists.segments.create(list_id, {"name": "Clients", "static_segment": ["a@anaba.fr"]})
    assert segment["type"] == "static" and segment["member_count"] == 1
    result = mc.lists.segments.update_members(list_id, segment["id"], {
        "members_to_add": ["b@anaba.fr", "c@anaba.fr", "ghost@anaba.fr"],
        "members_to_remove": ["a@anaba.fr"]})
    assert (result["total_added"], result["total_removed"], result["error_count"]) == (2, 1, 1)
    assert result["errors"][0]["email_addresses"] == ["ghost@anaba.fr"]
    assert mc.lists.segments.get(list_id, segment["id"])["member_count"] == 2


def test_segment_bulk_over_500_is_refused(mc, list_id):
    segment = mc.lists.segments.create(list_id, {"name": "Big", "static_segment": []})
    with pytest.raises(MailChimpError) as info:
        mc.lists.segments.update_members(list_id, segment["id"], {
            "members_to_add": [f"m{i}@anaba.fr" for i in range(501)]})
    err = info.value.args[0]
    assert (err["status"], err["title"]) == (400, "Invalid Resource")
    assert err["detail"] == ("Maximum allowed member items exceeded, please provide at most 500 "
                             "items in members_to_add field or members_to_remove field")


def test_tag_search_is_a_prefix_match(mc, list_id):
    member = add(mc, list_id, "a@anaba.fr")
    mc.lists.members.tags.update(list_id, member["id"], {"tags": [
        {"name": "Clients", "status": "active"}, {"name": "Prospects", "status": "active"}]})
    found = mc._get(f"lists/{list_id}/tag-search", name="cli")
    assert [t["name"] for t in found["tags"]] == ["Clients"]
    assert mc._get(f"lists/{list_id}/tag-search")["total_items"] == 2


def test_deleting_a_segment_removes_the_tag_from_members(mc, list_id):
    member = add(mc, list_id, "a@anaba.fr")
    mc.lists.members.tags.update(list_id, member["id"], {"tags": [{"name": "X", "status": "active"}]})
    segment = mc.lists.segments.all(list_id, get_all=False)["segments"][0]
    mc.lists.segments.delete(list_id, segment["id"])
    assert mc.lists.members.get(list_id, member["id"])["tags"] == []


def test_add_and_remove_one_member_of_a_static_segment(mc, list_id):
    add(mc, list_id, "a@anaba.fr")
    segment = mc.lists.segments.create(list_id, {"name": "Clients", "static_segment": []})
    # mailchimp3 insists on a status here (the endpoint reads only email_address)
    member = mc.lists.segments.members.create(list_id, segment["id"], {
        "email_address": "a@anaba.fr", "status": "subscribed"})
    assert member["email_address"] == "a@anaba.fr"
    assert [t["name"] for t in member["tags"]] == ["Clients"]
    assert mc.lists.segments.get(list_id, segment["id"])["member_count"] == 1
    assert mc.lists.segments.members.delete(list_id, segment["id"], member["id"]) is None
    assert mc.lists.segments.get(list_id, segment["id"])["member_count"] == 0
    assert mc.lists.members.get(list_id, member["id"])["tags"] == []


def test_adding_a_non_member_to_a_segment_is_404(mc, list_id):
    segment = mc.lists.segments.create(list_id, {"name": "Clients", "static_segment": []})
    with pytest.raises(MailChimpError) as info:
        mc.lists.segments.members.create(list_id, segment["id"], {
            "email_address": "no@anaba.fr", "status": "subscribed"})
    assert info.value.args[0]["status"] == 404


def test_every_tag_change_moves_last_changed(mc, list_id):
    member = add(mc, list_id, "a@anaba.fr")
    seen = [member["last_changed"]]

    def changed():
        """The member's last_changed now."""
        return mc.lists.members.get(list_id, member["id"])["last_changed"]

    steps = [
        lambda: mc.lists.members.tags.update(list_id, member["id"], {
            "tags": [{"name": "A", "status": "active"}]}),
        lambda: mc.lists.segments.create(list_id, {"name": "B", "static_segment": ["a@anaba.fr"]}),
        lambda: mc.lists.segments.update_members(list_id, seg_id("B"), {
            "members_to_remove": ["a@anaba.fr"]}),
        lambda: mc.lists.segments.members.create(list_id, seg_id("B"), {
            "email_address": "a@anaba.fr", "status": "subscribed"}),
        lambda: mc.lists.segments.delete(list_id, seg_id("A")),
    ]

    def seg_id(name):
        """The id of the segment called ``name``."""
        return next(s["id"] for s in mc.lists.segments.all(list_id, get_all=True)["segments"]
                    if s["name"] == name)

    for step in steps:
        time.sleep(1.05)
        step()
        seen.append(changed())
    assert seen == sorted(set(seen)), seen
