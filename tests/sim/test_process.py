"""Running the simulator: bootstrap options and the ``--data`` SQLite file."""

from __future__ import annotations

from mailchimp3 import MailChimp

from mailchimp_sim.testing import SimulatorProcess

DEMO_KEY = "0" * 31 + "1-us1"


def client(sim, key=DEMO_KEY):
    """A mailchimp3 client for ``key`` pointed at the simulator."""
    mc = MailChimp(mc_api=key, timeout=10)
    mc.base_url = sim.api_base
    return mc


def test_bootstrap_key_and_list_exist_at_start_and_state_survives_a_restart(tmp_path):
    data = tmp_path / "sim.sqlite"
    args = ["--bootstrap-key", DEMO_KEY, "--bootstrap-list", "Demo"]
    with SimulatorProcess(data=data, extra_args=args) as sim:
        mc = client(sim)
        lists = mc.lists.all()["lists"]
        assert [lst["name"] for lst in lists] == ["Demo"]
        list_id = lists[0]["id"]
        mc.lists.members.create(list_id, {"email_address": "kept@anaba.fr", "status": "subscribed",
                                          "tags": ["Clients"]})
        gone = mc.lists.members.create(list_id, {"email_address": "gone@anaba.fr",
                                                 "status": "subscribed"})
        mc.lists.members.delete_permanent(list_id, gone["id"])
    assert data.exists()
    with SimulatorProcess(data=data, extra_args=args) as sim:
        mc = client(sim)
        assert [lst["id"] for lst in mc.lists.all()["lists"]] == [list_id]
        kept = mc.lists.members.get(list_id, "kept@anaba.fr")
        assert [t["name"] for t in kept["tags"]] == ["Clients"]
        restored = mc.lists.update_members(list_id, {"members": [
            {"email_address": "gone@anaba.fr", "status": "subscribed"}]})
        assert "permanently deleted" in restored["errors"][0]["error"]
        assert mc.lists.members.create(list_id, {"email_address": "new@anaba.fr",
                                                 "status": "subscribed"})["web_id"] != kept["web_id"]


def test_server_pid_is_the_process_holding_the_state(sim):
    import psutil

    started = psutil.Process(sim.process.pid)
    serving = sim.server_pid
    assert serving == sim.process.pid or serving in [c.pid for c in started.children(recursive=True)]


def test_werkzeug_server_option_serves_the_same_api():
    with SimulatorProcess(extra_args=["--server", "werkzeug"]) as sim:
        key = sim.control.new_account()
        assert client(sim, key).ping.get() == {"health_status": "Everything's Chimpy!"}
        assert sim.server_pid == sim.process.pid


def test_simulator_process_takes_a_per_member_latency():
    with SimulatorProcess(latency_per_member_ms=2.5) as sim:
        key = sim.control.new_account()
        lst = sim.control.create_list(key)
        client(sim, key).lists.update_members(lst["id"], {"members": [
            {"email_address": f"m{i}@anaba.fr", "status": "subscribed"} for i in range(4)]})
        entry = sim.control.requests_log()[-1]
        assert (entry["items"], entry["modelled_latency_ms"]) == (4, 10.0)


def test_campaigns_and_gdpr_fields_survive_a_restart(tmp_path):
    data = tmp_path / "sim.sqlite"
    args = ["--bootstrap-key", DEMO_KEY]
    with SimulatorProcess(data=data, extra_args=args) as sim:
        mc = client(sim)
        list_id = sim.control.create_list(DEMO_KEY, name="GDPR", marketing_permissions=True)["id"]
        mc.lists.update_members(list_id, {"members": [
            {"email_address": f"r{i}@anaba.fr", "status": "subscribed"} for i in range(30)]})
        campaign = sim.control.send_campaign(list_id, seed=5, open_rate=0.9,
                                             send_time="2026-01-01T00:00:00+00:00")
        report = mc.reports.get(campaign["id"])
        activity = mc.reports.email_activity.all(campaign["id"], get_all=True)["emails"]
        member = mc.lists.members.get(list_id, "r1@anaba.fr")
        history = mc.lists.members.activity.all(list_id, "r1@anaba.fr")["activity"]
    with SimulatorProcess(data=data, extra_args=args) as sim:
        mc = client(sim)
        assert mc.reports.get(campaign["id"]) == report
        assert mc.reports.email_activity.all(campaign["id"], get_all=True)["emails"] == activity
        assert mc.lists.members.get(list_id, "r1@anaba.fr")["marketing_permissions"] == \
            member["marketing_permissions"]
        assert mc.lists.members.activity.all(list_id, "r1@anaba.fr")["activity"] == history
        later = sim.control.send_campaign(list_id, seed=6)
        assert later["web_id"] != campaign["web_id"]
        assert len(mc.lists.members.activity.all(list_id, "r2@anaba.fr")["activity"]) >= 2
