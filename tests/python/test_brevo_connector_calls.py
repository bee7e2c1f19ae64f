"""Every HTTP call crmsync's Brevo connector makes (host/connectors/src/brevo/),
made through Brevo's official Python SDK (`brevo-python`) with the connector's
parameters and body shapes, each answer checked against what Brevo documents:
the status, the body against Brevo's OpenAPI spec (loaded as in
test_openapi_brevo.py, whose documented exceptions apply), the
`x-sib-ratelimit-*` headers, and the behaviour the connector relies on.

One test per connector call (named `test_<call>`, the connector's `what`
label); docs/SANDBOX.md maps each call to its test.
"""

from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
import pytest
import requests
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from requests.structures import CaseInsensitiveDict

from test_openapi_brevo import Checker, spec_dict  # noqa: F401 (a fixture)

brevo = pytest.importorskip("brevo")
from brevo.core.api_error import ApiError  # noqa: E402
from brevo.errors import BadRequestError, NotFoundError  # noqa: E402

RATE_HEADERS = ("x-sib-ratelimit-limit", "x-sib-ratelimit-remaining", "x-sib-ratelimit-reset")


def _as_requests(resp):
    """An httpx response as a requests one, for openapi-core's requests adapter."""
    req = resp.request
    prepared = requests.Request(
        req.method, str(req.url), headers=dict(req.headers), data=req.content or None).prepare()
    r = requests.Response()
    r.status_code = resp.status_code
    r._content = resp.content
    r.headers = CaseInsensitiveDict(resp.headers)
    r.request = prepared
    r.url = str(req.url)
    return r


class Traffic:
    """Every response the SDK received, each checkable against the spec."""

    def __init__(self, checker):
        self.checker = checker
        self.responses = []

    def hook(self, response):
        response.read()
        self.responses.append(response)

    @property
    def last(self):
        return self.responses[-1]

    def check(self, status, *, spec=True):
        """The last answer: `status`, the rate-limit headers, Brevo's
        `{code, message}` when an error, and (unless `spec=False`, for the
        exceptions test_openapi_brevo.py documents) its body valid for the
        operation in the spec."""
        resp = self.last
        assert resp.status_code == status, f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text[:300]}"
        for h in RATE_HEADERS:
            assert resp.headers[h].isdigit(), h
        body = resp.json() if resp.content else None
        if status >= 400:
            assert isinstance(body["code"], str) and isinstance(body["message"], str)
            assert self.checker.schema_errors("errorModel", {"code": body["code"], "message": body["message"]}) == [] \
                or body["code"] == "too_many_requests"
        elif status in (201, 204) and body is None:
            assert resp.content == b""
        if spec:
            r = _as_requests(resp)
            self.checker.openapi.validate_response(RequestsOpenAPIRequest(r.request), RequestsOpenAPIResponse(r))
        return body


@pytest.fixture(scope="module")
def checker(sandbox, spec_dict):  # noqa: F811
    return Checker(sandbox, spec_dict)


def make_client(sb, checker):
    traffic = Traffic(checker)
    http = httpx.Client(event_hooks={"response": [traffic.hook]}, timeout=30)
    client = brevo.Brevo(api_key=sb.credentials["brevo_api_key"], base_url=sb.urls["brevo"] + "/v3",
                         max_retries=0, httpx_client=http)
    return client, traffic


@pytest.fixture()
def bv(sandbox, checker):
    """A client on a fresh sandbox at a fixed time, and its traffic."""
    sandbox.reset("brevo")
    sandbox.admin("brevo", "POST", "/clock", {"set": "2024-05-01T09:00:00Z"})
    return make_client(sandbox, checker)


@pytest.fixture()
def list_id(bv):
    client, _ = bv
    return client.contacts.create_list(name="Synced", folder_id=1).id


def attrs(contact):
    a = contact.attributes
    return a.model_dump() if hasattr(a, "model_dump") else dict(a or {})


def set_clock(sandbox, at):
    sandbox.admin("brevo", "POST", "/clock", {"set": at})


def test_connect(bv):
    """`GET /account`: 200 with the account's email and plan."""
    client, traffic = bv
    account = client.account.get_account()
    body = traffic.check(200)
    assert account.email == body["email"] and "@" in body["email"]
    assert isinstance(body["plan"], list) and body["plan"]


def test_list(bv, list_id):
    """`GET /contacts/lists/{id}`: the configured list; an unknown one is 404
    `document_not_found` (the connector names the list in its error)."""
    client, traffic = bv
    got = client.contacts.get_list(list_id)
    body = traffic.check(200)
    assert (got.id, got.name) == (list_id, "Synced") and body["folderId"] == 1
    with pytest.raises(NotFoundError) as err:
        client.contacts.get_list(99999)
    assert traffic.check(404)["code"] == "document_not_found"
    assert err.value.body["code"] == "document_not_found"


def test_lists(bv):
    """`GET /contacts/lists?limit=50&offset=&sort=asc` (the list found by name):
    lists oldest first, with `id` and `name`, `count` the total, paged by offset."""
    client, traffic = bv
    made = [client.contacts.create_list(name=f"List {i}", folder_id=1).id for i in range(3)]
    page = client.contacts.get_lists(limit=50, offset=0, sort="asc")
    body = traffic.check(200)
    assert [l["id"] for l in body["lists"]] == sorted(made)
    assert [l["name"] for l in body["lists"]] == ["List 0", "List 1", "List 2"]
    assert body["count"] == 3 and page.count == 3
    rest = client.contacts.get_lists(limit=50, offset=2, sort="asc")
    traffic.check(200)
    assert [l.id for l in rest.lists] == [max(made)]
    with pytest.raises(BadRequestError):
        client.contacts.get_lists(limit=51, offset=0, sort="asc")
    traffic.check(400)


def test_folders(bv):
    """`GET /contacts/folders?limit=1&offset=0`: the first folder's id (every
    account has one)."""
    client, traffic = bv
    page = client.contacts.get_folders(limit=1, offset=0)
    body = traffic.check(200)
    assert len(body["folders"]) == 1 and isinstance(body["folders"][0]["id"], int)
    assert page.folders[0].id == body["folders"][0]["id"] and body["count"] >= 1


def test_create_folder_and_list(bv):
    """`POST /contacts/folders {name}` then `POST /contacts/lists {name, folderId}`:
    201 `{id}` each; the list is in that folder."""
    client, traffic = bv
    folder = client.contacts.create_folder(name="crmsync")
    assert traffic.check(201) == {"id": folder.id}
    made = client.contacts.create_list(name="Salesforce", folder_id=folder.id)
    assert traffic.check(201) == {"id": made.id}
    assert client.contacts.get_list(made.id).folder_id == folder.id


def test_attributes(bv):
    """`GET /contacts/attributes`: each attribute's `name`, `category`, `type`."""
    client, traffic = bv
    listed = client.contacts.get_attributes()
    body = traffic.check(200)
    by_name = {a["name"]: a for a in body["attributes"]}
    assert {"FIRSTNAME", "LASTNAME", "SMS"} <= set(by_name)
    assert (by_name["FIRSTNAME"]["category"], by_name["FIRSTNAME"]["type"]) == ("normal", "text")
    assert len(listed.attributes) == len(body["attributes"])


def test_create_attribute(bv):
    """`POST /contacts/attributes/normal/{NAME} {type}` for each type the
    connector infers (text, float, boolean, date): 201, no body, then listed;
    the same again is 400 `{code, message}` (the connector takes it as made
    meanwhile)."""
    client, traffic = bv
    for name, kind in (("SF_TEXT", "text"), ("SF_SCORE", "float"), ("SF_VIP", "boolean"), ("SF_SINCE", "date")):
        assert client.contacts.create_attribute("normal", name, type=kind) is None
        traffic.check(201)
    with pytest.raises(BadRequestError) as err:
        client.contacts.create_attribute("normal", "SF_SCORE", type="float")
    assert err.value.body == traffic.check(400)
    listed = {a.name: (a.category, a.type) for a in client.contacts.get_attributes().attributes}
    assert listed["SF_SCORE"] == ("normal", "float")
    assert listed["SF_VIP"] == ("normal", "boolean")
    assert listed["SF_SINCE"] == ("normal", "date")
    # A typed value now sticks.
    cid = client.contacts.create_contact(
        email="typed@example.com", attributes={"SF_SCORE": 4.5, "SF_VIP": True, "SF_SINCE": "2024-01-31"}).id
    assert attrs(client.contacts.get_contact_info(str(cid), identifier_type="contact_id")) == {
        "SF_SCORE": 4.5, "SF_VIP": True, "SF_SINCE": "2024-01-31"}


def test_contacts(bv, sandbox, list_id):
    """`GET /contacts?listIds=&limit=&offset=&sort=asc&modifiedSince=<…SSSZ>` (the
    change read): only the list's contacts, in creation order, `modifiedSince`
    inclusive to the millisecond, each with `id`, `email`, `modifiedAt`,
    `attributes`, `emailBlacklisted`; offset paging; `sort=desc` newest first."""
    client, traffic = bv
    ids = []
    for i in range(4):
        set_clock(sandbox, f"2024-05-01T09:00:0{i}.250Z")
        ids.append(client.contacts.create_contact(email=f"l{i}@example.com", list_ids=[list_id]).id)
    client.contacts.create_contact(email="elsewhere@example.com")
    set_clock(sandbox, "2024-05-01T09:10:00.125Z")
    client.contacts.update_contact(str(ids[1]), identifier_type="contact_id", attributes={"FIRSTNAME": "One"})

    def read(**q):
        page = client.contacts.get_contacts(list_ids=list_id, **q)
        body = traffic.check(200)
        assert page.count == body["count"]
        return body

    everything = read(limit=1000, offset=0, sort="asc")
    assert [c["id"] for c in everything["contacts"]] == ids and everything["count"] == 4
    changed = read(limit=1000, offset=0, sort="asc", modified_since="2024-05-01T09:10:00.125Z")
    assert [c["id"] for c in changed["contacts"]] == [ids[1]]
    c = changed["contacts"][0]
    assert c["modifiedAt"].startswith("2024-05-01T09:10:00.125")
    assert (c["email"], c["emailBlacklisted"], c["attributes"]) == ("l1@example.com", False, {"FIRSTNAME": "One"})
    assert read(limit=1000, offset=0, sort="asc", modified_since="2024-05-01T09:10:00.126Z")["count"] == 0
    window = read(limit=2, offset=2, sort="asc", modified_since="2024-05-01T09:00:01.250Z")
    assert [c["id"] for c in window["contacts"]] == ids[3:] and window["count"] == 3
    newest = read(limit=2, offset=0, sort="desc")
    assert [c["id"] for c in newest["contacts"]] == [ids[3], ids[2]]
    assert newest["contacts"][0]["createdAt"].startswith("2024-05-01T09:00:03.250")


def test_contacts_by_id(bv):
    """`GET /contacts?ids=1,2&limit=20&sort=asc`: those contacts (an unknown id
    is simply absent), as the connector sends them (comma-joined) and as the SDK
    does (one `ids` a value)."""
    client, traffic = bv
    a = client.contacts.create_contact(email="a@example.com", attributes={"FIRSTNAME": "A"}).id
    b = client.contacts.create_contact(email="b@example.com").id
    client.contacts.create_contact(email="c@example.com")
    joined = client.contacts.get_contacts(ids=f"{b},{a},99999", limit=20, sort="asc")
    assert "ids=" in str(traffic.last.request.url) and "%2C" in str(traffic.last.request.url)
    body = traffic.check(200)
    assert [c["id"] for c in body["contacts"]] == [a, b] and joined.count == 2
    assert body["contacts"][0]["attributes"] == {"FIRSTNAME": "A"}
    split = client.contacts.get_contacts(ids=[b, a], limit=20, sort="asc")
    traffic.check(200)
    assert [c.id for c in split.contacts] == [a, b]
    with pytest.raises(BadRequestError):
        client.contacts.get_contacts(ids=",".join(str(n) for n in range(1, 22)), limit=20, sort="asc")
    traffic.check(400)


def test_contact_by_email(bv):
    """`GET /contacts/{email}?identifierType=email_id` (find by email, and the
    id after a 204 upsert): the contact, whatever the case of the address and
    with a `+` in it; an unknown address is 404 `document_not_found`."""
    client, traffic = bv
    cid = client.contacts.create_contact(email="ann+crm@example.com").id
    found = client.contacts.get_contact_info("ann+crm@example.com", identifier_type="email_id")
    body = traffic.check(200)
    assert (found.id, body["id"], body["email"]) == (cid, cid, "ann+crm@example.com")
    assert {"id", "email", "emailBlacklisted", "smsBlacklisted", "createdAt", "modifiedAt", "listIds",
            "attributes"} <= set(body)
    assert client.contacts.get_contact_info("Ann+CRM@Example.com", identifier_type="email_id").id == cid
    # The connector percent-encodes the `+` (the SDK leaves it): the same contact.
    assert client.contacts.get_contact_info("ann%2Bcrm@example.com", identifier_type="email_id").id == cid
    assert "/contacts/ann%2Bcrm@example.com?" in str(traffic.last.request.url)
    traffic.check(200)
    with pytest.raises(NotFoundError) as err:
        client.contacts.get_contact_info("nobody@example.com", identifier_type="email_id")
    assert traffic.check(404)["code"] == "document_not_found"
    assert err.value.status_code == 404


def test_contact_by_id(bv):
    """`GET /contacts/{id}?identifierType=contact_id` (before an email change):
    the contact's `email` and `emailBlacklisted`; unknown → 404."""
    client, traffic = bv
    cid = client.contacts.create_contact(email="blk@example.com", email_blacklisted=True).id
    got = client.contacts.get_contact_info(str(cid), identifier_type="contact_id")
    body = traffic.check(200)
    assert (got.email, body["emailBlacklisted"]) == ("blk@example.com", True)
    with pytest.raises(NotFoundError):
        client.contacts.get_contact_info("99999", identifier_type="contact_id")
    assert traffic.check(404)["code"] == "document_not_found"


def test_update_contact(bv, sandbox):
    """`PUT /contacts/{id}?identifierType=contact_id {attributes, emailBlacklisted?}`:
    204, no body; `attributes.EMAIL` changes the address (a restated
    `emailBlacklisted: true` keeps the contact unsubscribed); `""` clears an
    attribute; the change moves `modifiedAt`; an address another contact has is
    400 `duplicate_parameter`; unknown id → 404; a bad phone → 400."""
    client, traffic = bv
    cid = client.contacts.create_contact(
        email="old@example.com", email_blacklisted=True, attributes={"FIRSTNAME": "Old", "LASTNAME": "Name"}).id
    set_clock(sandbox, "2024-05-01T09:30:00Z")
    assert client.contacts.update_contact(
        str(cid), identifier_type="contact_id",
        attributes={"EMAIL": "new@example.com", "FIRSTNAME": "New", "LASTNAME": ""},
        email_blacklisted=True) is None
    traffic.check(204)
    got = client.contacts.get_contact_info(str(cid), identifier_type="contact_id")
    assert (got.email, got.email_blacklisted) == ("new@example.com", True)
    assert attrs(got) == {"FIRSTNAME": "New"}
    assert got.modified_at.startswith("2024-05-01T09:30:00")
    with pytest.raises(NotFoundError):
        client.contacts.get_contact_info("old@example.com", identifier_type="email_id")

    client.contacts.update_contact(str(cid), identifier_type="contact_id", email_blacklisted=True)
    traffic.check(204)
    client.contacts.create_contact(email="taken@example.com")
    with pytest.raises(BadRequestError) as err:
        client.contacts.update_contact(str(cid), identifier_type="contact_id", attributes={"EMAIL": "taken@example.com"})
    dup = traffic.check(400)
    assert (dup["code"], dup["metadata"]["duplicate_identifiers"]) == ("duplicate_parameter", ["email"])
    assert err.value.body == dup
    assert client.contacts.get_contact_info(str(cid), identifier_type="contact_id").email == "new@example.com"
    with pytest.raises(NotFoundError) as err:
        client.contacts.update_contact("99999", identifier_type="contact_id", attributes={"FIRSTNAME": "x"})
    assert traffic.check(404)["code"] == "document_not_found"
    assert err.value.status_code == 404
    with pytest.raises(BadRequestError):
        client.contacts.update_contact(str(cid), identifier_type="contact_id", attributes={"SMS": "0612"})
    assert traffic.check(400)["code"] == "invalid_parameter"


def test_create_contact(bv, list_id):
    """`POST /contacts {email, updateEnabled: true, attributes?, listIds, emailBlacklisted?}`:
    201 `{id}` for a new contact; 204 with no body (no id) for an existing one,
    which joins the list and keeps what was not sent — a blacklisted contact
    stays blacklisted; `emailBlacklisted: true` unsubscribes; an SMS that is
    another contact's is 400 `duplicate_parameter` with its metadata."""
    client, traffic = bv
    made = client.contacts.create_contact(
        email="up@example.com", update_enabled=True, attributes={"FIRSTNAME": "Up"}, list_ids=[list_id])
    body = traffic.check(201)
    assert body == {"id": made.id} and isinstance(made.id, int)

    other = client.contacts.create_contact(email="other@example.com", email_blacklisted=True).id
    assert client.contacts.create_contact(
        email="other@example.com", update_enabled=True, attributes={"LASTNAME": "Other"},
        list_ids=[list_id]) is None
    traffic.check(204)
    assert traffic.last.content == b""
    again = client.contacts.get_contact_info("other@example.com", identifier_type="email_id")
    assert (again.id, again.email_blacklisted, again.list_ids) == (other, True, [list_id])
    assert attrs(again) == {"LASTNAME": "Other"}

    assert client.contacts.create_contact(
        email="up@example.com", update_enabled=True, list_ids=[list_id], email_blacklisted=True) is None
    traffic.check(204)
    up = client.contacts.get_contact_info("up@example.com", identifier_type="email_id")
    assert (up.id, up.email_blacklisted, attrs(up)) == (made.id, True, {"FIRSTNAME": "Up"})

    client.contacts.create_contact(email="phone@example.com", attributes={"SMS": "+33612345678"})
    with pytest.raises(BadRequestError) as err:
        client.contacts.create_contact(
            email="up@example.com", update_enabled=True, attributes={"SMS": "+33612345678"}, list_ids=[list_id])
    dup = traffic.check(400)
    assert dup["code"] == "duplicate_parameter"
    assert "SMS" in dup["metadata"]["duplicate_identifiers"]
    assert err.value.body == dup
    assert "SMS" not in attrs(client.contacts.get_contact_info("up@example.com", identifier_type="email_id"))
    with pytest.raises(BadRequestError):
        client.contacts.create_contact(email="not an email", update_enabled=True, list_ids=[list_id])
    assert traffic.check(400)["code"] == "invalid_parameter"


def test_import_and_process(bv, sandbox, list_id):
    """`POST /contacts/import {jsonBody, listIds, updateExistingContacts: true,
    emptyContactsAttributes, disableNotification: true}`: 202 `{processId}`
    and a `Date` header; `GET /processes/{id}` until `completed`; the ids then
    read from the list, newest first, since the import's `Date` minus a second:
    a contact created by the import has `createdAt` at or after it, an existing
    one keeps its id and its blacklisting; `emptyContactsAttributes: true` lets
    `""` clear. A body without contacts is 400; an unknown process 404."""
    client, traffic = bv
    old = client.contacts.create_contact(
        email="old@example.com", email_blacklisted=True, attributes={"FIRSTNAME": "Old", "LASTNAME": "Keep"}).id
    set_clock(sandbox, "2024-05-01T09:20:00.400Z")
    started = client.contacts.import_contacts(
        json_body=[{"email": "new@example.com", "attributes": {"FIRSTNAME": "New"}},
                   {"email": "old@example.com", "attributes": {"FIRSTNAME": "Again", "LASTNAME": ""}}],
        list_ids=[list_id], update_existing_contacts=True, empty_contacts_attributes=True,
        disable_notification=True)
    body = traffic.check(202)
    assert body == {"processId": started.process_id} and isinstance(started.process_id, int)
    accepted = parsedate_to_datetime(traffic.last.headers["date"])
    assert accepted.isoformat().startswith("2024-05-01T09:20:00")

    statuses = []
    for _ in range(5):
        process = client.process.get_process(started.process_id)
        statuses.append(traffic.check(200)["status"])
        if process.status == "completed":
            break
    assert statuses[-1] == "completed"
    assert set(statuses[:-1]) <= {"queued", "in_process", "processing"}

    since = (accepted - timedelta(seconds=1)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    page = client.contacts.get_contacts(list_ids=list_id, modified_since=since, limit=1000, offset=0, sort="desc")
    rows = traffic.check(200)["contacts"]
    by_email = {c["email"]: c for c in rows}
    assert set(by_email) == {"new@example.com", "old@example.com"} and page.count == 2
    assert by_email["old@example.com"]["id"] == old
    assert by_email["old@example.com"]["emailBlacklisted"] is True
    assert by_email["old@example.com"]["attributes"] == {"FIRSTNAME": "Again"}
    created = lambda c: datetime.fromisoformat(c["createdAt"].replace("Z", "+00:00")) >= accepted - timedelta(seconds=1)  # noqa: E731
    assert created(by_email["new@example.com"]) and not created(by_email["old@example.com"])

    # Without emptyContactsAttributes an empty value is no change.
    client.contacts.import_contacts(
        json_body=[{"email": "new@example.com", "attributes": {"FIRSTNAME": ""}}], list_ids=[list_id],
        update_existing_contacts=True, empty_contacts_attributes=False, disable_notification=True)
    pid = traffic.check(202)["processId"]
    while client.process.get_process(pid).status != "completed":
        pass
    assert attrs(client.contacts.get_contact_info("new@example.com", identifier_type="email_id")) == {"FIRSTNAME": "New"}

    with pytest.raises(BadRequestError):
        client.contacts.import_contacts(list_ids=[list_id], update_existing_contacts=True, disable_notification=True)
    traffic.check(400)
    with pytest.raises(NotFoundError):
        client.process.get_process(99999)
    assert traffic.check(404) == {"code": "invalid_parameter", "message": "processId is invalid"}  # the spec's example


def test_delete_contact(bv):
    """`DELETE /contacts/{id}`: 204, then 404 `document_not_found` (the
    connector takes a 404 as already deleted)."""
    client, traffic = bv
    cid = client.contacts.create_contact(email="bye@example.com").id
    assert client.contacts.delete_contact(str(cid)) is None
    traffic.check(204)
    with pytest.raises(NotFoundError):
        client.contacts.delete_contact(str(cid))
    assert traffic.check(404)["code"] == "document_not_found"


def test_rate_limit_headers(limited_sandbox, spec_dict):  # noqa: F811
    """Every answer carries `x-sib-ratelimit-limit/remaining/reset`; the
    connector waits for the reset once `remaining` is 0, and a 429
    (`too_many_requests`, no `Retry-After`) says how long with `reset`."""
    sb = limited_sandbox
    set_clock(sb, "2024-05-01T09:00:00.250Z")
    client, traffic = make_client(sb, Checker(sb, spec_dict))
    remaining = []
    for _ in range(10):
        client.contacts.get_contacts(limit=1, offset=0, sort="asc")
        traffic.check(200)
        assert traffic.last.headers["x-sib-ratelimit-limit"] == "10"
        assert traffic.last.headers["x-sib-ratelimit-reset"] == "1"
        remaining.append(int(traffic.last.headers["x-sib-ratelimit-remaining"]))
    assert remaining == list(range(9, -1, -1))
    with pytest.raises(ApiError) as err:
        client.contacts.get_contact_info("nobody@example.com", identifier_type="email_id")
    assert err.value.status_code == 429
    body = traffic.check(429, spec=False)
    assert body["code"] == "too_many_requests"
    assert traffic.last.headers["x-sib-ratelimit-remaining"] == "0"
    assert "retry-after" not in traffic.last.headers
    # The next second is a new window.
    set_clock(sb, "2024-05-01T09:00:01Z")
    client.contacts.get_contacts(limit=1, offset=0, sort="asc")
    traffic.check(200)
    assert traffic.last.headers["x-sib-ratelimit-remaining"] == "9"
