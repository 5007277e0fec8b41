"""Paging limits and the mailchimp3 traps of API-NOTES §14.12–14.13."""

from __future__ import annotations

import pytest


def fill(mc, list_id, n):
    """Add ``n`` subscribed members by batches of 500."""
    for start in range(0, n, 500):
        mc.lists.update_members(list_id, {"members": [
            {"email_address": f"m{i:05d}@anaba.fr", "status": "subscribed"}
            for i in range(start, min(n, start + 500))]})


def test_count_is_capped_at_1000(mc, list_id):
    fill(mc, list_id, 1100)
    page = mc.lists.members.all(list_id, count=5000, fields="members.id,total_items")
    assert len(page["members"]) == 1000 and page["total_items"] == 1100


def test_get_all_pages_through_and_concatenates_links(mc, list_id):
    fill(mc, list_id, 7)
    everything = mc.lists.members.all(list_id, get_all=True, count=3)
    assert len(everything["members"]) == 7
    assert len(everything["_links"]) == 3 * len(mc.lists.members.all(list_id)["_links"])


def test_uppercase_hex_hash_is_rejected_by_mailchimp3(mc, list_id):
    member = mc.lists.members.create(list_id, {"email_address": "a@anaba.fr", "status": "subscribed"})
    with pytest.raises(ValueError):
        mc.lists.members.get(list_id, member["id"].upper())


def test_lists_show_stats_and_subscribe_urls(mc, list_id):
    fill(mc, list_id, 3)
    member = mc.lists.members.get(list_id, "m00000@anaba.fr")
    mc.lists.members.update(list_id, member["id"], {"status": "unsubscribed"})
    lst = mc.lists.get(list_id)
    assert lst["subscribe_url_short"].startswith("http://eepurl.com/")
    assert f"id={list_id}" in lst["subscribe_url_long"]
    assert (lst["stats"]["member_count"], lst["stats"]["unsubscribe_count"]) == (2, 1)
    assert mc.lists.all(email="m00001@anaba.fr")["total_items"] == 1
