"""The Mailchimp sandbox driven by Mailchimp's official Python client
(`mailchimp-marketing`): every call's effect is checked by reading it back."""

import hashlib
import json

import mailchimp_marketing as MailchimpMarketing
import pytest
from mailchimp_marketing.api_client import ApiClientError

LIST_BODY = {
    "name": "Python audience",
    "contact": {"company": "Acme", "address1": "1 Main St", "city": "Atlanta",
                "state": "GA", "zip": "30308", "country": "US"},
    "permission_reminder": "You bought from us.",
    "campaign_defaults": {"from_name": "Acme", "from_email": "news@acme.example",
                          "subject": "", "language": "en"},
    "email_type_option": False,
}


def md5(email):
    return hashlib.md5(email.lower().encode()).hexdigest()


@pytest.fixture(scope="module")
def client(sandbox):
    c = MailchimpMarketing.Client()
    c.set_config({"api_key": sandbox.credentials["mailchimp_api_key"]})
    # The client builds URLs as api_client.host + path.
    c.api_client.host = sandbox.urls["mailchimp"] + "/3.0"
    return c


@pytest.fixture()
def list_id(client):
    return client.lists.create_list(LIST_BODY)["id"]


def test_ping_and_root(client):
    assert client.ping.get() == {"health_status": "Everything's Chimpy!"}
    root = client.root.get_root()
    assert root["role"] == "owner"


def test_bad_key_is_401(sandbox):
    c = MailchimpMarketing.Client()
    c.set_config({"api_key": "ffffffffffffffffffffffffffffffff-us6"})
    c.api_client.host = sandbox.urls["mailchimp"] + "/3.0"
    with pytest.raises(ApiClientError) as err:
        c.ping.get()
    assert err.value.status_code == 401
    # problem+json is not "application/json", so the client hands back the raw text.
    assert "API Key Invalid" in err.value.text


def test_set_list_member_upserts_by_hash(client, list_id):
    email = "Ann.Python@Example.com"
    created = client.lists.set_list_member(list_id, md5(email), {
        "email_address": email, "status_if_new": "subscribed",
        "merge_fields": {"FNAME": "Ann", "LNAME": "Py"},
    })
    assert created["id"] == md5(email)
    client.lists.set_list_member(list_id, md5(email), {
        "email_address": email, "status_if_new": "pending",
        "merge_fields": {"FNAME": "Annie"},
    })
    member = client.lists.get_list_member(list_id, md5(email))
    assert member["status"] == "subscribed"
    assert member["merge_fields"]["FNAME"] == "Annie"
    assert member["merge_fields"]["LNAME"] == "Py"
    assert client.lists.get_list(list_id)["stats"]["member_count"] == 1


def test_compliance_state_through_the_client(client, list_id):
    email = "left@example.com"
    client.lists.set_list_member(list_id, md5(email), {
        "email_address": email, "status_if_new": "unsubscribed"})
    with pytest.raises(ApiClientError) as err:
        client.lists.update_list_member(list_id, md5(email), {"status": "subscribed"})
    assert err.value.status_code == 400
    assert "Member In Compliance State" in err.value.text
    assert client.lists.get_list_member(list_id, md5(email))["status"] == "unsubscribed"


def test_batch_list_members(client, list_id):
    client.lists.set_list_member(list_id, md5("old@example.com"), {
        "email_address": "old@example.com", "status_if_new": "subscribed"})
    result = client.lists.batch_list_members(list_id, {
        "members": [
            {"email_address": "b1@example.com", "status": "subscribed",
             "merge_fields": {"FNAME": "B1"}},
            {"email_address": "b2@example.com", "status": "unsubscribed"},
            {"email_address": "old@example.com", "status": "subscribed"},
            {"email_address": "broken", "status": "subscribed"},
        ],
    })
    assert result["total_created"] == 2
    assert result["error_count"] == 2
    codes = {e["email_address"]: e["error_code"] for e in result["errors"]}
    assert codes == {"old@example.com": "ERROR_CONTACT_EXISTS", "broken": "ERROR_GENERIC"}
    assert client.lists.get_list_member(list_id, md5("b1@example.com"))["merge_fields"]["FNAME"] == "B1"
    assert client.lists.get_list_member(list_id, md5("b2@example.com"))["status"] == "unsubscribed"


def test_get_list_members_info_since_last_changed(client, sandbox, list_id):
    sandbox.admin("mailchimp", "POST", "/clock", {"set": "2024-06-01T00:00:00Z"})
    client.lists.batch_list_members(list_id, {"members": [
        {"email_address": f"s{i}@example.com", "status": "subscribed"} for i in range(12)]})
    sandbox.admin("mailchimp", "POST", "/clock", {"set": "2024-06-02T00:00:00Z"})
    for i in (2, 5, 9):
        client.lists.update_list_member(list_id, md5(f"s{i}@example.com"), {"vip": True})

    seen, offset = [], 0
    while True:
        page = client.lists.get_list_members_info(
            list_id, since_last_changed="2024-06-02T00:00:00+00:00", count=2, offset=offset)
        assert page["total_items"] == 3
        if not page["members"]:
            break
        seen += [m["email_address"] for m in page["members"]]
        offset += len(page["members"])
    assert seen == ["s2@example.com", "s5@example.com", "s9@example.com"]
    everything = client.lists.get_list_members_info(list_id, count=1000)
    assert everything["total_items"] == 12
    vips = client.lists.get_list_members_info(list_id, vip_only=True, fields=["members.email_address"])
    assert sorted(m["email_address"] for m in vips["members"]) == seen
    assert set(vips["members"][0]) == {"email_address"}
    sandbox.admin("mailchimp", "POST", "/clock", {"real": True})


def test_add_list_merge_field(client, list_id):
    field = client.lists.add_list_merge_field(list_id, {
        "name": "Salesforce Id", "type": "text", "tag": "SFID"})
    assert field["tag"] == "SFID"
    listed = client.lists.get_list_merge_fields(list_id, count=100)
    assert "SFID" in [f["tag"] for f in listed["merge_fields"]]
    client.lists.set_list_member(list_id, md5("mf@example.com"), {
        "email_address": "mf@example.com", "status_if_new": "subscribed",
        "merge_fields": {"SFID": "003ABC"}})
    assert client.lists.get_list_member(list_id, md5("mf@example.com"))["merge_fields"]["SFID"] == "003ABC"
    with pytest.raises(ApiClientError) as err:
        client.lists.add_list_merge_field(list_id, {"name": "Bad", "type": "colour"})
    assert err.value.status_code == 400


def test_batches_through_the_client(client, list_id):
    batch = client.batches.start({"operations": [
        {"method": "PUT", "path": f"/lists/{list_id}/members/{md5('op@example.com')}",
         "operation_id": "op-1",
         "body": json.dumps({"email_address": "op@example.com", "status_if_new": "subscribed"})},
    ]})
    assert batch["status"] == "pending"
    assert client.batches.status(batch["id"])["status"] == "started"
    done = client.batches.status(batch["id"])
    assert done["status"] == "finished"
    assert done["errored_operations"] == 0
    assert client.lists.get_list_member(list_id, md5("op@example.com"))["status"] == "subscribed"


def test_member_paths_take_the_contact_id_which_an_email_change_keeps(client, list_id):
    """What crmsync's connector does: PATCH a linked member by contact_id
    (an email change moves it to the new hash), then archive and delete it."""
    first = client.lists.set_list_member(list_id, md5("move@example.com"), {
        "email_address": "move@example.com", "status_if_new": "subscribed"})
    contact = first["contact_id"]
    moved = client.lists.update_list_member(list_id, contact, {
        "email_address": "moved@example.com", "merge_fields": {"FNAME": "Mo"}})
    assert moved["contact_id"] == contact
    assert moved["id"] == md5("moved@example.com")
    assert client.lists.get_list_member(list_id, contact)["email_address"] == "moved@example.com"
    with pytest.raises(ApiClientError) as err:
        client.lists.get_list_member(list_id, md5("move@example.com"))
    assert err.value.status_code == 404
    client.lists.delete_list_member(list_id, contact)
    assert client.lists.get_list_member(list_id, contact)["status"] == "archived"
    archived = client.lists.get_list_members_info(list_id, status="archived", fields=["members.id"])
    assert archived["members"] == [{"id": md5("moved@example.com")}]
    client.lists.delete_list_member_permanent(list_id, contact)
    with pytest.raises(ApiClientError) as err:
        client.lists.set_list_member(list_id, md5("moved@example.com"), {
            "email_address": "moved@example.com", "status_if_new": "subscribed"})
    assert "Forgotten Email Not Subscribed" in err.value.text
