"""Every HTTP call crmsync's Mailchimp connector makes
(host/connectors/src/mailchimp/), made through Mailchimp's official Python
client (`mailchimp-marketing`) with the connector's parameters and body shapes,
each answer checked against what Mailchimp documents: the status, the body
against the OpenAPI spec (the spec and its documented exceptions are loaded as
in test_openapi_mailchimp.py), and the behaviour the connector relies on.

One test per connector call (named `test_<call>`, the connector's `what` label);
docs/SANDBOX.md maps each call to its test.
"""

import hashlib
import io
import json
import tarfile

import mailchimp_marketing as MailchimpMarketing
import pytest
import requests
from mailchimp_marketing.api_client import ApiClientError
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

from test_openapi_mailchimp import LIST_BODY, Checker, spec_dict  # noqa: F401 (a fixture)


def md5(email):
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


class Traffic:
    """Records each response the client received and validates it against the spec."""

    def __init__(self, client, openapi):
        self.openapi = openapi
        self.responses = []
        send = client.api_client.request

        def recording(*args, **kwargs):
            r = send(*args, **kwargs)
            self.responses.append(r)
            return r

        client.api_client.request = recording

    def check(self, status):
        """The last answer: `status`, problem+json when an error, and its body
        valid for the operation in the spec."""
        r = self.responses[-1]
        assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:300]}"
        if status >= 400:
            assert r.headers["content-type"].startswith("application/problem+json")
            problem = r.json()
            assert {"type", "title", "status", "detail", "instance"} <= set(problem)
            assert problem["status"] == status
        elif status == 204:
            assert r.content == b""
        self.openapi.validate_response(RequestsOpenAPIRequest(r.request), RequestsOpenAPIResponse(r))
        return r.json() if r.content else None


@pytest.fixture(scope="module")
def checker(sandbox, spec_dict):  # noqa: F811
    return Checker(sandbox, spec_dict)


@pytest.fixture()
def mc(sandbox, checker):
    """A client on a fresh sandbox, and its traffic."""
    sandbox.reset("mailchimp")
    c = MailchimpMarketing.Client()
    c.set_config({"api_key": sandbox.credentials["mailchimp_api_key"]})
    c.api_client.host = sandbox.urls["mailchimp"] + "/3.0"
    return c, Traffic(c, checker.openapi)


@pytest.fixture()
def audience(mc):
    client, _ = mc
    return client.lists.create_list(LIST_BODY)["id"]


def problem(err):
    """The problem document of an ApiClientError (problem+json arrives as text)."""
    return json.loads(err.value.text)


def put_body(email, merge=None, status_if_new="subscribed", unsubscribe=False):
    """The connector's PUT body (write.rs `Member::put_body`)."""
    b = {"email_address": email}
    if merge:
        b["merge_fields"] = merge
    if unsubscribe:
        b["status"] = "unsubscribed"
    b["status_if_new"] = "unsubscribed" if unsubscribe else status_if_new
    return b


def test_connect(mc, sandbox):
    """`GET /3.0/?fields=account_name,role`: the user's role decides whether
    the key may write (manager or higher)."""
    client, traffic = mc
    root = client.root.get_root(fields=["account_name", "role"])
    assert traffic.check(200) == root
    assert set(root) == {"account_name", "role"}
    assert root["role"] == "owner" and isinstance(root["account_name"], str)
    viewer = "beefbeefbeefbeefbeefbeefbeefbeef-us6"
    sandbox.admin("mailchimp", "POST", "/seed", {"api_keys": [{"key": viewer, "role": "viewer"}]})
    client.set_config({"api_key": viewer})
    assert client.root.get_root(fields=["account_name", "role"])["role"] == "viewer"
    traffic.check(200)


def test_audience(mc, audience):
    """`GET /lists/{id}?fields=id,name`; an unknown audience is a 404 problem."""
    client, traffic = mc
    got = client.lists.get_list(audience, fields=["id", "name"])
    assert traffic.check(200) == {"id": audience, "name": LIST_BODY["name"]}
    assert got == {"id": audience, "name": LIST_BODY["name"]}
    with pytest.raises(ApiClientError) as err:
        client.lists.get_list("nosuchlist", fields=["id", "name"])
    assert err.value.status_code == 404
    assert traffic.check(404)["title"] == "Resource Not Found"


def test_merge_fields(mc, audience):
    """`GET /lists/{id}/merge-fields?count=1000&fields=merge_fields.tag,merge_fields.type`:
    every field's tag and type, nothing else (a new audience has FNAME, LNAME,
    ADDRESS and PHONE)."""
    client, traffic = mc
    page = client.lists.get_list_merge_fields(
        audience, count=1000, fields=["merge_fields.tag", "merge_fields.type"])
    assert traffic.check(200) == page
    assert set(page) == {"merge_fields"}
    fields = {f["tag"]: f["type"] for f in page["merge_fields"]}
    assert all(set(f) == {"tag", "type"} for f in page["merge_fields"])
    assert {"FNAME": "text", "LNAME": "text", "ADDRESS": "address", "PHONE": "phone"}.items() <= fields.items()


def test_add_merge_field(mc, audience):
    """`POST /lists/{id}/merge-fields` `{name, type, required, tag}`: the new
    field's `tag` (uppercase); a taken tag and an unknown type are 400 problems;
    the audience's field cap (30 off Premium) is a 400 problem too."""
    client, traffic = mc
    made = client.lists.add_list_merge_field(
        audience, {"name": "Salesforce Score", "type": "number", "required": False, "tag": "SFSCORE"})
    assert traffic.check(200) == made
    assert (made["tag"], made["type"], made["required"]) == ("SFSCORE", "number", False)
    assert isinstance(made["merge_id"], int)
    # Without a tag Mailchimp makes one.
    auto = client.lists.add_list_merge_field(audience, {"name": "Region", "type": "text", "required": False})
    traffic.check(200)
    assert auto["tag"] and auto["tag"] == auto["tag"].upper()
    with pytest.raises(ApiClientError) as err:
        client.lists.add_list_merge_field(
            audience, {"name": "Again", "type": "text", "required": False, "tag": "SFSCORE"})
    assert err.value.status_code == 400
    traffic.check(400)
    with pytest.raises(ApiClientError) as err:
        client.lists.add_list_merge_field(audience, {"name": "Colour", "type": "colour", "required": False})
    assert err.value.status_code == 400
    traffic.check(400)

    listed = client.lists.get_list_merge_fields(audience, count=1000, fields=["merge_fields.tag"])
    n = len(listed["merge_fields"])
    for i in range(30 - n):
        client.lists.add_list_merge_field(audience, {"name": f"Extra {i}", "type": "text", "required": False})
    with pytest.raises(ApiClientError) as err:
        client.lists.add_list_merge_field(audience, {"name": "One too many", "type": "text", "required": False})
    assert err.value.status_code == 400
    traffic.check(400)


def test_member(mc, audience):
    """`GET /lists/{id}/members/{key}` by subscriber hash or contact_id: the
    member with `contact_id`, `last_changed`, `status`, `merge_fields`; an
    archived member still answers 200 with status `archived`; an unknown or
    permanently deleted one is a 404 problem."""
    client, traffic = mc
    email = "Get.Me@Example.com"
    made = client.lists.set_list_member(audience, md5(email), put_body(email, {"FNAME": "Get"}))
    by_hash = client.lists.get_list_member(audience, md5(email))
    assert traffic.check(200) == by_hash
    by_id = client.lists.get_list_member(audience, made["contact_id"])
    traffic.check(200)
    assert by_hash == by_id
    assert by_hash["id"] == md5(email) and by_hash["contact_id"] == made["contact_id"]
    assert by_hash["email_address"] == email and by_hash["status"] == "subscribed"
    assert by_hash["merge_fields"]["FNAME"] == "Get"
    assert isinstance(by_hash["last_changed"], str) and by_hash["last_changed"]

    client.lists.delete_list_member(audience, made["contact_id"])
    assert client.lists.get_list_member(audience, md5(email))["status"] == "archived"
    traffic.check(200)
    client.lists.delete_list_member_permanent(audience, made["contact_id"])
    for key in (md5(email), made["contact_id"], md5("nobody@example.com")):
        with pytest.raises(ApiClientError) as err:
            client.lists.get_list_member(audience, key)
        assert err.value.status_code == 404
        assert traffic.check(404)["title"] == "Resource Not Found"


def test_members(mc, sandbox, audience):
    """`GET /lists/{id}/members?sort_field=last_changed&sort_dir=ASC&count&offset&since_last_changed`
    (the change read): oldest change first, `since_last_changed` inclusive
    (the connector skips what it saw in that second), archived members left out."""
    client, traffic = mc
    sandbox.admin("mailchimp", "POST", "/clock", {"set": "2024-03-01T10:00:00Z"})
    for e in ("c@example.com", "a@example.com", "b@example.com", "gone@example.com"):
        client.lists.set_list_member(audience, md5(e), put_body(e))
    sandbox.admin("mailchimp", "POST", "/clock", {"set": "2024-03-01T10:00:05Z"})
    client.lists.update_list_member(audience, md5("c@example.com"), {"merge_fields": {"FNAME": "C"}})
    sandbox.admin("mailchimp", "POST", "/clock", {"set": "2024-03-01T10:00:07Z"})
    client.lists.delete_list_member(audience, md5("gone@example.com"))
    sandbox.admin("mailchimp", "POST", "/clock", {"set": "2024-03-01T10:00:09Z"})
    client.lists.update_list_member(audience, md5("a@example.com"), {"merge_fields": {"FNAME": "A"}})
    try:
        def read(since, count, offset):
            page = client.lists.get_list_members_info(
                audience, sort_field="last_changed", sort_dir="ASC", count=count, offset=offset,
                since_last_changed=since)
            assert traffic.check(200) == page
            return page

        page = read("2024-03-01T10:00:00Z", 1000, 0)
        assert [m["email_address"] for m in page["members"]] == ["b@example.com", "c@example.com", "a@example.com"]
        assert page["total_items"] == 3
        assert [m["last_changed"][:19] for m in page["members"]] == [
            "2024-03-01T10:00:00", "2024-03-01T10:00:05", "2024-03-01T10:00:09"]
        assert all(m["contact_id"] for m in page["members"])
        # Inclusive: a member changed in the very second of the cursor is read again.
        page = read("2024-03-01T10:00:05Z", 1000, 0)
        assert [m["email_address"] for m in page["members"]] == ["c@example.com", "a@example.com"]
        # Offset paging within one window.
        page = read("2024-03-01T10:00:00Z", 1, 1)
        assert [m["email_address"] for m in page["members"]] == ["c@example.com"]
        assert page["total_items"] == 3
        assert read("2024-03-01T10:00:10Z", 1000, 0)["members"] == []
    finally:
        sandbox.admin("mailchimp", "POST", "/clock", {"real": True})


def test_list_ids(mc, audience):
    """`GET /lists/{id}/members?fields=members.contact_id,total_items&count&offset`:
    only those fields, archived members left out."""
    client, traffic = mc
    ids = [client.lists.set_list_member(audience, md5(e), put_body(e))["contact_id"]
           for e in ("i1@example.com", "i2@example.com", "i3@example.com")]
    client.lists.delete_list_member(audience, ids[1])
    page = client.lists.get_list_members_info(
        audience, fields=["members.contact_id", "total_items"], count=1, offset=0)
    assert traffic.check(200) == page
    assert set(page) == {"members", "total_items"}
    assert page["total_items"] == 2
    assert page["members"] == [{"contact_id": ids[0]}]
    rest = client.lists.get_list_members_info(
        audience, fields=["members.contact_id", "total_items"], count=1000, offset=1)
    traffic.check(200)
    assert rest["members"] == [{"contact_id": ids[2]}]


def test_archived_members(mc, audience):
    """`GET /lists/{id}/members?status=archived&fields=members.id,total_items&count&offset`:
    the subscriber hashes of archived members only."""
    client, traffic = mc
    for e in ("keep@example.com", "arch1@example.com", "arch2@example.com"):
        client.lists.set_list_member(audience, md5(e), put_body(e))
    client.lists.delete_list_member(audience, md5("arch1@example.com"))
    client.lists.delete_list_member(audience, md5("arch2@example.com"))
    page = client.lists.get_list_members_info(
        audience, status="archived", fields=["members.id", "total_items"], count=1000, offset=0)
    assert traffic.check(200) == page
    assert page["total_items"] == 2
    assert sorted(m["id"] for m in page["members"]) == sorted(
        [md5("arch1@example.com"), md5("arch2@example.com")])
    assert all(set(m) == {"id"} for m in page["members"])
    second = client.lists.get_list_members_info(
        audience, status="archived", fields=["members.id", "total_items"], count=1, offset=1)
    traffic.check(200)
    assert len(second["members"]) == 1 and second["total_items"] == 2


def test_patch_member(mc, audience):
    """`PATCH /lists/{id}/members/{contact_id}` `{email_address?, merge_fields?, status?}`:
    an email change keeps the contact_id and moves the hash; no status means the
    status stays (an unsubscribed member is never re-subscribed); `status:
    unsubscribed` unsubscribes; subscribing an unsubscribed member is 400
    "Member In Compliance State"; an address taken by another member is 400
    "Member Exists"; an unknown contact_id is a 404 problem."""
    client, traffic = mc
    cid = client.lists.set_list_member(audience, md5("p@example.com"),
                                       put_body("p@example.com", {"FNAME": "P"}))["contact_id"]
    moved = client.lists.update_list_member(audience, cid, {
        "email_address": "p2@example.com", "merge_fields": {"LNAME": "Two"}})
    assert traffic.check(200) == moved
    assert (moved["contact_id"], moved["id"]) == (cid, md5("p2@example.com"))
    assert moved["merge_fields"]["FNAME"] == "P" and moved["merge_fields"]["LNAME"] == "Two"
    assert moved["status"] == "subscribed"

    left = client.lists.update_list_member(audience, cid, {"status": "unsubscribed"})
    traffic.check(200)
    assert left["status"] == "unsubscribed"
    still = client.lists.update_list_member(audience, cid, {"merge_fields": {"FNAME": "Still"}})
    traffic.check(200)
    assert (still["status"], still["merge_fields"]["FNAME"]) == ("unsubscribed", "Still")
    with pytest.raises(ApiClientError) as err:
        client.lists.update_list_member(audience, cid, {"status": "subscribed"})
    assert err.value.status_code == 400
    assert traffic.check(400)["title"] == "Member In Compliance State"
    assert client.lists.get_list_member(audience, cid)["status"] == "unsubscribed"

    client.lists.set_list_member(audience, md5("other@example.com"), put_body("other@example.com"))
    with pytest.raises(ApiClientError) as err:
        client.lists.update_list_member(audience, cid, {"email_address": "other@example.com"})
    assert err.value.status_code == 400
    assert traffic.check(400)["title"] == "Member Exists"
    with pytest.raises(ApiClientError) as err:
        client.lists.update_list_member(audience, "0123456789", {"merge_fields": {"FNAME": "x"}})
    assert err.value.status_code == 404
    assert traffic.check(404)["title"] == "Resource Not Found"


def test_put_member(mc, audience):
    """`PUT /lists/{id}/members/{hash}` `{email_address, merge_fields?, status?, status_if_new}`:
    creates with `status_if_new`, updates an existing member without touching its
    status; `status: unsubscribed` unsubscribes; a permanently deleted address is
    400 "Forgotten Email Not Subscribed"; a bad address is 400 "Invalid Resource"."""
    client, traffic = mc
    email = "Put@Example.com"
    made = client.lists.set_list_member(audience, md5(email), put_body(email, {"FNAME": "Put"}, "pending"))
    assert traffic.check(200) == made
    assert (made["id"], made["status"], made["merge_fields"]["FNAME"]) == (md5(email), "pending", "Put")
    assert made["contact_id"]
    again = client.lists.set_list_member(audience, md5(email), put_body(email, {"LNAME": "Er"}, "subscribed"))
    traffic.check(200)
    assert (again["contact_id"], again["status"]) == (made["contact_id"], "pending")
    assert again["merge_fields"]["FNAME"] == "Put" and again["merge_fields"]["LNAME"] == "Er"

    gone = client.lists.set_list_member(audience, md5(email), put_body(email, unsubscribe=True))
    traffic.check(200)
    assert gone["status"] == "unsubscribed"
    back = client.lists.set_list_member(audience, md5(email), put_body(email, {"FNAME": "Back"}, "subscribed"))
    traffic.check(200)
    assert back["status"] == "unsubscribed", "status_if_new must not re-subscribe"

    tx = client.lists.set_list_member(audience, md5("tx@example.com"),
                                      put_body("tx@example.com", status_if_new="transactional"))
    traffic.check(200)
    assert tx["status"] == "transactional"

    client.lists.delete_list_member_permanent(audience, made["contact_id"])
    with pytest.raises(ApiClientError) as err:
        client.lists.set_list_member(audience, md5(email), put_body(email))
    assert err.value.status_code == 400
    assert traffic.check(400)["title"] == "Forgotten Email Not Subscribed"
    with pytest.raises(ApiClientError) as err:
        client.lists.set_list_member(audience, md5("no-at-sign"), put_body("no-at-sign"))
    assert err.value.status_code == 400
    assert traffic.check(400)["title"] == "Invalid Resource"


def test_batch_subscribe(mc, audience):
    """`POST /lists/{id}` `{members: [{email_address, merge_fields, status}], update_existing: false}`:
    HTTP 200; new members under `new_members` with their contact_id; an existing
    member is left alone, reported as ERROR_CONTACT_EXISTS (the connector then PUTs it);
    a permanently deleted address is a per-member error."""
    client, traffic = mc
    old = client.lists.set_list_member(audience, md5("old@example.com"),
                                       put_body("old@example.com", {"FNAME": "Old"}))
    reply = client.lists.batch_list_members(audience, {
        "members": [
            {"email_address": "n1@example.com", "merge_fields": {"FNAME": "N1"}, "status": "subscribed"},
            {"email_address": "n2@example.com", "status": "unsubscribed"},
            {"email_address": "old@example.com", "merge_fields": {"FNAME": "New"}, "status": "subscribed"},
        ],
        "update_existing": False,
    })
    assert traffic.check(200) == reply
    assert (reply["total_created"], reply["total_updated"], reply["error_count"]) == (2, 0, 1)
    created = {m["email_address"]: m for m in reply["new_members"]}
    assert set(created) == {"n1@example.com", "n2@example.com"}
    assert all(m["contact_id"] for m in created.values())
    assert created["n2@example.com"]["status"] == "unsubscribed"
    assert reply["updated_members"] == []
    assert [(e["email_address"], e["error_code"]) for e in reply["errors"]] == [
        ("old@example.com", "ERROR_CONTACT_EXISTS")]
    assert isinstance(reply["errors"][0]["error"], str) and reply["errors"][0]["error"]
    kept = client.lists.get_list_member(audience, old["contact_id"])
    assert kept["merge_fields"]["FNAME"] == "Old"

    client.lists.delete_list_member_permanent(audience, md5("n1@example.com"))
    reply = client.lists.batch_list_members(audience, {
        "members": [{"email_address": "n1@example.com", "status": "subscribed"}], "update_existing": False})
    traffic.check(200)
    assert reply["total_created"] == 0
    assert [e["email_address"] for e in reply["errors"]] == ["n1@example.com"]
    assert "permanently deleted" in reply["errors"][0]["error"]


def test_archive_member(mc, audience):
    """`DELETE /lists/{id}/members/{contact_id}` (on_delete = archive): 204 and
    the member reads `archived`; an unknown member is a 404 problem (the
    connector takes it as already gone)."""
    client, traffic = mc
    cid = client.lists.set_list_member(audience, md5("a@example.com"), put_body("a@example.com"))["contact_id"]
    client.lists.delete_list_member(audience, cid)
    traffic.check(204)
    assert client.lists.get_list_member(audience, cid)["status"] == "archived"
    with pytest.raises(ApiClientError) as err:
        client.lists.delete_list_member(audience, "0123456789")
    assert err.value.status_code == 404
    assert traffic.check(404)["title"] == "Resource Not Found"


def test_delete_member(mc, audience):
    """`POST /lists/{id}/members/{contact_id}/actions/delete-permanent`
    (on_delete = delete): 204, the member is gone (404); again is a 404 problem."""
    client, traffic = mc
    cid = client.lists.set_list_member(audience, md5("d@example.com"), put_body("d@example.com"))["contact_id"]
    client.lists.delete_list_member_permanent(audience, cid)
    traffic.check(204)
    with pytest.raises(ApiClientError):
        client.lists.get_list_member(audience, md5("d@example.com"))
    traffic.check(404)
    with pytest.raises(ApiClientError) as err:
        client.lists.delete_list_member_permanent(audience, cid)
    assert err.value.status_code == 404
    assert traffic.check(404)["title"] == "Resource Not Found"


def test_batch_submit_status_and_results(mc, audience):
    """`POST /batches` of `PUT …/members/{hash}` operations (operation_id = the
    write's index, body the PUT body as a JSON string), `GET /batches/{id}`
    until `finished`, then `response_body_url` fetched without the key: a
    gzipped tar of JSON arrays of `{status_code, operation_id, response}`; a
    failed operation carries its problem document."""
    client, traffic = mc
    client.lists.set_list_member(audience, md5("unsub@example.com"),
                                 put_body("unsub@example.com", unsubscribe=True))
    client.lists.set_list_member(audience, md5("forgot@example.com"), put_body("forgot@example.com"))
    client.lists.delete_list_member_permanent(audience, md5("forgot@example.com"))
    emails = ["b0@example.com", "unsub@example.com", "forgot@example.com"]
    ops = [{
        "method": "PUT",
        "path": f"/lists/{audience}/members/{md5(e)}",
        "operation_id": str(i),
        "body": json.dumps(put_body(e, {"FNAME": f"B{i}"})),
    } for i, e in enumerate(emails)]
    submitted = client.batches.start({"operations": ops})
    assert traffic.check(200) == submitted
    assert submitted["id"] and submitted["status"] == "pending"
    assert submitted["total_operations"] == 3
    for _ in range(10):
        batch = client.batches.status(submitted["id"])
        assert traffic.check(200) == batch
        if batch["status"] == "finished":
            break
        assert batch["status"] in ("pending", "preprocessing", "started", "finalizing")
    assert batch["status"] == "finished"
    assert (batch["finished_operations"], batch["errored_operations"]) == (3, 1)
    assert batch["response_body_url"]

    archive = requests.get(batch["response_body_url"], timeout=10)  # no key: pre-signed storage
    assert archive.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(archive.content), mode="r:gz") as tar:
        results = [r for m in tar.getmembers() if m.isfile() for r in json.load(tar.extractfile(m))]
    by_op = {r["operation_id"]: r for r in results}
    assert set(by_op) == {"0", "1", "2"}
    assert all(isinstance(r["response"], str) for r in results)
    new = json.loads(by_op["0"]["response"])
    assert by_op["0"]["status_code"] == 200 and new["contact_id"] and new["status"] == "subscribed"
    unsub = json.loads(by_op["1"]["response"])
    assert by_op["1"]["status_code"] == 200 and unsub["status"] == "unsubscribed"
    assert unsub["merge_fields"]["FNAME"] == "B1"
    assert by_op["2"]["status_code"] == 400
    assert json.loads(by_op["2"]["response"])["title"] == "Forgotten Email Not Subscribed"

    with pytest.raises(ApiClientError) as err:
        client.batches.status("nosuchbatch")
    assert err.value.status_code == 404
    traffic.check(404)
