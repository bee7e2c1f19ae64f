"""The ActiveCampaign sandbox driven by the third-party `activecampaign-python`
client (GearPlug, PyPI `activecampaign-python`): every write is read back.

The client builds `{url}/api/3{endpoint}`, sends `Api-Token`, and returns the
parsed JSON body whatever the status, so error answers are asserted by body.
"""

import time

import pytest
import requests
from activecampaign.client import Client

VENDOR = "activecampaign"


@pytest.fixture()
def ac(sandbox):
    sandbox.reset(VENDOR)
    return Client(sandbox.urls[VENDOR], sandbox.credentials["activecampaign_api_token"])


def test_wrong_token_is_refused(sandbox):
    bad = Client(sandbox.urls[VENDOR], "not-the-token")
    assert bad.contacts.list_all_contacts() == {
        "message": "You are not authorized to access this resource"
    }


def test_create_read_update_delete_contact(ac):
    created = ac.contacts.create_a_contact(
        {"contact": {"email": "ann@acme.test", "firstName": "Ann", "lastName": "Lee", "phone": "555"}}
    )
    cid = created["contact"]["id"]
    got = ac.contacts.retrieve_a_contact(cid)
    assert got["contact"]["email"] == "ann@acme.test"
    assert got["contact"]["firstName"] == "Ann"
    assert got["contact"]["phone"] == "555"

    ac.contacts.update_a_contact(cid, {"contact": {"lastName": "Lim"}})
    assert ac.contacts.retrieve_a_contact(cid)["contact"]["lastName"] == "Lim"

    dup = ac.contacts.create_a_contact({"contact": {"email": "ANN@acme.test"}})
    assert dup["errors"][0]["code"] == "duplicate"
    assert dup["errors"][0]["source"]["pointer"] == "/data/attributes/email"

    assert ac.contacts.delete_a_contact(cid) == {}
    assert ac.contacts.retrieve_a_contact(cid) == {
        "message": f"No Result found for Subscriber with id {cid}"
    }


def test_create_or_update_contact_dedupes_by_email(ac, sandbox):
    first = ac.contacts.create_or_update_contact({"contact": {"email": "Bob@Example.com", "firstName": "Bob"}})
    second = ac.contacts.create_or_update_contact({"contact": {"email": "bob@example.com", "lastName": "Ray"}})
    assert first["contact"]["id"] == second["contact"]["id"]
    listed = ac.contacts.list_all_contacts(email="BOB@example.com")
    assert listed["meta"]["total"] == "1"
    assert listed["contacts"][0]["firstName"] == "Bob"
    assert listed["contacts"][0]["lastName"] == "Ray"
    state = sandbox.admin(VENDOR, "GET", "/state")
    # One contact; the latest write sets the stored spelling.
    assert [c["email"] for c in state["contacts"]] == ["bob@example.com"]


def test_list_contacts_pages_by_id(ac, sandbox):
    sandbox.admin(VENDOR, "POST", "/seed", {"generate_contacts": {"count": 130, "prefix": "p", "domain": "x.io"}})
    seen, last = [], 0
    while True:
        page = ac.contacts.list_all_contacts(**{"orders[id]": "ASC", "id_greater": last, "limit": 50})
        assert page["meta"]["total"] == str(130 - len(seen))
        if not page["contacts"]:
            break
        ids = [int(c["id"]) for c in page["contacts"]]
        assert ids == sorted(ids) and ids[0] > last
        seen += ids
        last = ids[-1]
    assert len(seen) == 130 == len(set(seen))
    calls = sandbox.calls(VENDOR)["by_endpoint"]
    assert calls["GET /api/3/contacts"] == 4


def test_updated_after_with_the_sandbox_clock(ac, sandbox):
    sandbox.admin(VENDOR, "POST", "/clock", {"set": "2024-05-01T10:00:00Z"})
    try:
        for i in range(3):
            ac.contacts.create_or_update_contact({"contact": {"email": f"u{i}@x.io"}})
        sandbox.admin(VENDOR, "POST", "/clock", {"advance_secs": 86400})
        ac.contacts.create_or_update_contact({"contact": {"email": "u2@x.io", "firstName": "Changed"}})
        # The filter is a day (account time zone), strict: a time part is ignored.
        for after in ["2024-05-02", "2024-05-02 23:30:00"]:
            changed = ac.contacts.list_all_contacts(**{"filters[updated_after]": after})
            assert changed["meta"]["total"] == "1"
            assert changed["contacts"][0]["email"] == "u2@x.io"
            assert changed["contacts"][0]["udate"] == "2024-05-02T05:00:00-05:00"
        assert ac.contacts.list_all_contacts(**{"filters[updated_after]": "2024-05-01"})["meta"]["total"] == "3"
        assert ac.contacts.list_all_contacts(**{"filters[updated_after]": "2024-05-03"})["meta"]["total"] == "0"
    finally:
        sandbox.admin(VENDOR, "POST", "/clock", {"real": True})


def test_custom_fields_and_values(ac):
    field = ac.contacts.create_a_custom_field({"field": {"title": "Industry", "type": "text"}})["field"]
    assert field["perstag"] == "INDUSTRY"
    assert [f["title"] for f in ac.contacts.list_all_custom_fields()["fields"]] == ["Industry"]
    synced = ac.contacts.create_or_update_contact(
        {"contact": {"email": "f@x.io", "fieldValues": [{"field": field["id"], "value": "Retail"}]}}
    )
    cid = synced["contact"]["id"]
    values = ac.contacts.retrieve_a_contacts_field_values(cid)["fieldValues"]
    assert [(v["field"], v["value"]) for v in values] == [(field["id"], "Retail")]

    fv = ac.contacts.create_a_custom_field_value({"fieldValue": {"contact": cid, "field": field["id"], "value": "Finance"}})
    fv_id = fv["fieldValue"]["id"]
    assert fv_id == values[0]["id"]
    ac.contacts.update_a_custom_field_value_for_contact({"fieldValue": {"value": "Energy"}}, fv_id)
    assert ac.contacts.retrieve_a_custom_field_value(fv_id)["fieldValue"]["value"] == "Energy"
    assert ac.contacts.list_all_custom_field_values()["meta"]["total"] == "1"


def test_tags(ac):
    tag = ac.tags.create_a_tag({"tag": {"tag": "created-from-salesforce", "tagType": "contact", "description": ""}})["tag"]
    ac.tags.create_a_tag({"tag": {"tag": "vip", "tagType": "contact", "description": ""}})
    found = ac.tags.list_all_tags(search="salesforce")
    assert [t["tag"] for t in found["tags"]] == ["created-from-salesforce"]
    assert ac.tags.retrieve_a_tag(tag["id"])["tag"]["tag"] == "created-from-salesforce"

    cid = ac.contacts.create_or_update_contact({"contact": {"email": "t@x.io"}})["contact"]["id"]
    ct = ac.contacts.add_a_tag_to_contact({"contactTag": {"contact": cid, "tag": tag["id"]}})["contactTag"]
    tags_of = ac.contacts.retrieve_contact_tags(cid)["contactTags"]
    assert [t["tag"] for t in tags_of] == [tag["id"]]
    assert ac.contacts.list_all_contacts(tagid=tag["id"])["meta"]["total"] == "1"
    assert ac.contacts.remove_a_tag_from_a_contact(ct["id"]) == {}
    assert ac.contacts.retrieve_contact_tags(cid)["contactTags"] == []


def test_bulk_import_then_info(ac, sandbox):
    url = f"{sandbox.urls[VENDOR]}/api/3"
    headers = {"Api-Token": sandbox.credentials["activecampaign_api_token"]}
    contacts = [{"email": f"b{i}@x.io", "first_name": f"B{i}", "tags": ["imported"]} for i in range(12)]
    contacts.append({"email": "B0@X.io", "last_name": "Again"})
    r = requests.post(f"{url}/import/bulk_import", json={"contacts": contacts}, headers=headers, timeout=10)
    assert r.status_code == 200
    assert r.json()["queued_contacts"] == 13
    info = requests.get(f"{url}/import/info", params={"batchId": r.json()["batchId"]}, headers=headers, timeout=10).json()
    assert info["status"] == "completed"
    assert len(info["success"]) == 13 and info["failure"] == []
    assert info["success"][0] == info["success"][12]
    b0 = ac.contacts.list_all_contacts(email="b0@x.io")["contacts"][0]
    assert (b0["firstName"], b0["lastName"]) == ("B0", "Again")
    tag = ac.tags.list_all_tags(search="imported")["tags"][0]
    assert ac.contacts.list_all_contacts(tagid=tag["id"])["meta"]["total"] == "12"


def test_automations_campaigns_activities(ac, sandbox):
    sandbox.admin(VENDOR, "POST", "/seed", {
        "contacts": [{"id": 5, "email": "act@x.io"}],
        "automations": [{"id": 2, "name": "Welcome", "labels": ["Salesforce"]}, {"id": 3, "name": "Other"}],
        "campaigns": [{"id": 7, "name": "June", "labels": ["Salesforce"], "sdate": "2024-06-01T10:00:00Z"}],
        "activities": [{"contact": 5, "type": "click", "campaign": 7, "tstamp": "2024-06-01T10:10:00Z"}],
        "trackingLogs": [{"contact": 5, "type": "open", "campaign": 7, "tstamp": "2024-06-01T10:05:00Z"}],
    })
    autos = ac.automations.list_all_automations(**{"filters[label_name]": "salesforce"})
    assert [a["name"] for a in autos["automations"]] == ["Welcome"]
    camps = ac.campaigns.list_all_campaigns()
    assert [(c["name"], c["labels"]) for c in camps["campaigns"]] == [("June", ["Salesforce"])]
    added = ac.contacts.add_a_contact_to_an_automation({"contactAutomation": {"contact": 5, "automation": 2}})
    assert added["contactAutomation"]["automation"] == "2"
    of = ac.contacts.list_all_automations_the_contacts_is_in(5)["contactAutomations"]
    assert [x["automation"] for x in of] == ["2"]
    acts = ac.activities.list_all_activities(5)["activities"]
    assert [a["reference_type"] for a in acts] == ["AutomationEntered", "LinkClick"]
    logs = ac.contacts.retrieve_a_contacts_tracking_logs(5)["trackingLogs"]
    assert [(t["type"], t["campaignid"]) for t in logs] == [("open", "7")]


def test_rate_limit_burst_gets_429(limited_sandbox):
    ac = Client(limited_sandbox.urls[VENDOR], limited_sandbox.credentials["activecampaign_api_token"])
    url = f"{limited_sandbox.urls[VENDOR]}/api/3/contacts"
    headers = {"Api-Token": limited_sandbox.credentials["activecampaign_api_token"]}
    statuses = []
    started = time.monotonic()
    with requests.Session() as s:
        for _ in range(20):
            r = s.get(url, headers=headers, timeout=10)
            statuses.append(r.status_code)
            if r.status_code == 429:
                assert r.headers["Retry-After"] == "1"
                assert r.json() == {"message": "Too Many Requests"}
    # A bucket of 5 that refills 5 per second: at most 5 + what the elapsed time refilled.
    refilled = int((time.monotonic() - started) * 5)
    assert 5 <= statuses.count(200) <= 5 + refilled
    assert statuses.count(429) == 20 - statuses.count(200) > 0
    limited_sandbox.admin(VENDOR, "POST", "/clock", {"advance_secs": 2})
    assert ac.contacts.list_all_contacts()["meta"]["total"] == "0"
