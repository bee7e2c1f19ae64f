"""The Mailchimp sandbox's responses checked against Mailchimp's OpenAPI spec
(shared/vendors/specs/mailchimp/marketing-3.0.76.openapi.yaml, a faithful
conversion of Mailchimp's official spec v3.0.76).

Every endpoint the sandbox serves is called, and openapi-core validates each
response: the status is one the operation documents (errors fall under its
`default` response, the problem document), and the body matches the schema.
The spec is large (2 MB), so it is parsed once per module; openapi-core is told
not to validate the spec itself (only the responses), `servers` is pointed at
the sandbox, problem+json bodies are parsed as JSON, examples are dropped and
empty `content: {}` maps (the spec's "no body") are removed.

Documented exceptions, where the spec is plainly wrong about the real API
(the spec is patched in memory for these, and each patch is listed here):
- member `merge_fields`: the spec says every value is an *object*
  (`additionalProperties: {type: object}`), but the real API returns the merge
  tags' values — strings (`"FNAME": "Ann"`), numbers, and objects only for
  address fields. Patched to allow any value.
- empty timestamps: the real API returns `""` (not null, not absent) for a
  timestamp it does not have — a member's `timestamp_signup`/`timestamp_opt`,
  a list's `last_unsub_date`/`campaign_last_sent`, an unfinished batch's
  `completed_at` — while the spec marks them `format: date-time`. Patched:
  every `date-time` string also accepts `""` (any other value must still be a
  valid date-time; checked by the `mc-date-time` format below).
"""

import copy
import hashlib
import io
import json
import pathlib
import re
import tarfile

import pytest
import requests
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

from conftest import SPECS

SPEC_PATH = pathlib.Path(SPECS) / "mailchimp" / "marketing-3.0.76.openapi.yaml"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def _patch(node):
    """Applies the documented exceptions (see the module docs) in place."""
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict) and isinstance(props.get("merge_fields"), dict):
            props["merge_fields"]["additionalProperties"] = {}
        if node.get("format") == "date-time":
            node["format"] = "mc-date-time"
        for v in node.values():
            _patch(v)
    elif isinstance(node, list):
        for v in node:
            _patch(v)
    return node


@pytest.fixture(scope="module")
def spec_dict():
    """The spec, loaded and patched once per module."""
    with open(SPEC_PATH, encoding="utf-8") as f:
        spec = yaml.load(f, Loader=_Loader)
    return _patch(_strip_examples(spec))


def _strip_examples(node):
    """Drops examples (YAML turns some into datetimes; they are not validated) and
    empty `content: {}` maps, which the spec uses for "no body" (204) but
    openapi-core reads as "a body is required"."""
    if isinstance(node, dict):
        return {
            k: _strip_examples(v)
            for k, v in node.items()
            if k not in ("example", "examples") and not (k == "content" and v == {})
        }
    if isinstance(node, list):
        return [_strip_examples(v) for v in node]
    return node


class Checker:
    """Calls the sandbox and validates every response against the spec."""

    def __init__(self, sandbox, spec):
        self.base = sandbox.urls["mailchimp"] + "/3.0"
        self.key = sandbox.credentials["mailchimp_api_key"]
        served = copy.copy(spec)
        served["servers"] = [{"url": self.base}]
        config = Config(
            spec_validator_cls=None,
            extra_format_validators={"mc-date-time": lambda v: v == "" or bool(_DATE_TIME.match(v))},
            # Error bodies are problem+json, which openapi-core does not parse by itself.
            extra_media_type_deserializers={"application/problem+json": lambda data, **_params: json.loads(data)},
        )
        self.openapi = OpenAPI.from_dict(served, config=config)
        self.http = requests.Session()
        self.validated = set()

    def raw(self, method, path, *, key=None, **kwargs):
        auth = ("anystring", key or self.key)
        return self.http.request(method, self.base + path, auth=auth, timeout=30, **kwargs)

    def call(self, method, path, status, **kwargs):
        r = self.raw(method, path, **kwargs)
        assert r.status_code == status, f"{method} {path}: {r.status_code} {r.text[:300]}"
        if status >= 400:
            assert r.headers["content-type"].startswith("application/problem+json")
        self.openapi.validate_response(RequestsOpenAPIRequest(r.request), RequestsOpenAPIResponse(r))
        self.validated.add((method, path.split("?")[0], status))
        return r.json() if r.content else None


@pytest.fixture(scope="module")
def api(sandbox, spec_dict):
    sandbox.reset("mailchimp")
    return Checker(sandbox, spec_dict)


LIST_BODY = {
    "name": "OpenAPI audience",
    "contact": {"company": "Acme", "address1": "1 Main St", "city": "Atlanta",
                "state": "GA", "zip": "30308", "country": "US"},
    "permission_reminder": "You bought from us.",
    "campaign_defaults": {"from_name": "Acme", "from_email": "news@acme.example",
                          "subject": "", "language": "en"},
    "email_type_option": False,
}


@pytest.fixture(scope="module")
def list_id(api):
    return api.call("POST", "/lists", 200, json=LIST_BODY)["id"]


def test_root_and_ping(api):
    assert api.call("GET", "/ping", 200) == {"health_status": "Everything's Chimpy!"}
    assert api.call("GET", "/", 200)["role"] == "owner"
    bad = api.call("GET", "/ping", 401, key="ffffffffffffffffffffffffffffffff-us6")
    assert bad["title"] == "API Key Invalid"


def test_lists(api, list_id):
    lists = api.call("GET", "/lists?count=5", 200)
    assert list_id in [l["id"] for l in lists["lists"]]
    one = api.call("GET", f"/lists/{list_id}", 200)
    assert one["stats"]["member_count"] == 0
    err = api.call("POST", "/lists", 400, json={"name": "incomplete"})
    assert {e["field"] for e in err["errors"]} >= {"contact", "permission_reminder"}
    api.call("GET", "/lists/doesnotexist", 404)
    doomed = api.call("POST", "/lists", 200, json={**LIST_BODY, "name": "Doomed"})["id"]
    assert api.call("DELETE", f"/lists/{doomed}", 204) is None
    api.call("GET", f"/lists/{doomed}", 404)


def test_members(api, list_id):
    email = "oa-member@example.com"
    h = hashlib.md5(email.encode()).hexdigest()
    put = api.call("PUT", f"/lists/{list_id}/members/{h}", 200, json={
        "email_address": email, "status_if_new": "subscribed",
        "merge_fields": {"FNAME": "Open", "ADDRESS": {"addr1": "1 Main", "city": "Atlanta", "state": "GA", "zip": "30308"}},
    })
    assert put["merge_fields"]["ADDRESS"]["country"] == "US"
    assert api.call("GET", f"/lists/{list_id}/members/{h}", 200)["email_address"] == email
    assert api.call("PATCH", f"/lists/{list_id}/members/{h}", 200, json={"vip": True})["vip"] is True
    posted = api.call("POST", f"/lists/{list_id}/members", 200, json={
        "email_address": "oa-post@example.com", "status": "pending", "tags": ["new"]})
    assert posted["tags"][0]["name"] == "new"
    api.call("POST", f"/lists/{list_id}/members", 400, json={"email_address": email, "status": "subscribed"})
    page = api.call("GET", f"/lists/{list_id}/members?count=1&since_last_changed=2000-01-01T00:00:00%2B00:00", 200)
    assert page["total_items"] == 2 and len(page["members"]) == 1
    api.call("GET", f"/lists/{list_id}/members?status=nonsense", 400)

    assert api.call("POST", f"/lists/{list_id}/members/{h}/tags", 204,
                    json={"tags": [{"name": "vip", "status": "active"}]}) is None
    tags = api.call("GET", f"/lists/{list_id}/members/{h}/tags", 200)
    assert [t["name"] for t in tags["tags"]] == ["vip"]

    assert api.call("DELETE", f"/lists/{list_id}/members/{h}", 204) is None
    assert api.call("GET", f"/lists/{list_id}/members/{h}", 200)["status"] == "archived"
    assert api.call("POST", f"/lists/{list_id}/members/{h}/actions/delete-permanent", 204) is None
    api.call("GET", f"/lists/{list_id}/members/{h}", 404)
    forgotten = api.call("PUT", f"/lists/{list_id}/members/{h}", 400,
                         json={"email_address": email, "status_if_new": "subscribed"})
    assert forgotten["title"] == "Forgotten Email Not Subscribed"


def test_batch_subscribe(api, list_id):
    body = {"members": [
        {"email_address": "oa-b1@example.com", "status": "subscribed"},
        {"email_address": "oa-b1@example.com", "status": "subscribed"},
        {"email_address": "bad", "status": "subscribed"},
    ]}
    r = api.call("POST", f"/lists/{list_id}", 200, json=body)
    assert r["total_created"] == 1 and r["error_count"] == 2
    assert {e["error_code"] for e in r["errors"]} == {"ERROR_GENERIC"}
    r = api.call("POST", f"/lists/{list_id}", 200, json={"members": [
        {"email_address": "oa-b1@example.com", "status": "unsubscribed"}]})
    assert r["errors"][0]["error_code"] == "ERROR_CONTACT_EXISTS"


def test_compliance_error_shape(api, list_id):
    api.call("PUT", f"/lists/{list_id}/members/oa-unsub@example.com", 200,
             json={"email_address": "oa-unsub@example.com", "status_if_new": "unsubscribed"})
    err = api.call("PATCH", f"/lists/{list_id}/members/oa-unsub@example.com", 400, json={"status": "subscribed"})
    assert err["title"] == "Member In Compliance State"


def test_merge_fields(api, list_id):
    created = api.call("POST", f"/lists/{list_id}/merge-fields", 200,
                       json={"name": "Tier", "type": "dropdown", "options": {"choices": ["Gold", "Silver"]}})
    mid = created["merge_id"]
    assert created["tag"].startswith("MMERGE")
    listed = api.call("GET", f"/lists/{list_id}/merge-fields?count=50", 200)
    assert mid in [f["merge_id"] for f in listed["merge_fields"]]
    assert api.call("GET", f"/lists/{list_id}/merge-fields/{mid}", 200)["name"] == "Tier"
    assert api.call("PATCH", f"/lists/{list_id}/merge-fields/{mid}", 200,
                    json={"name": "Level", "tag": "LEVEL"})["tag"] == "LEVEL"
    api.call("POST", f"/lists/{list_id}/merge-fields", 400, json={"name": "x", "type": "colour"})
    assert api.call("DELETE", f"/lists/{list_id}/merge-fields/{mid}", 204) is None
    api.call("GET", f"/lists/{list_id}/merge-fields/{mid}", 404)


def test_batches(api, list_id):
    ops = {"operations": [
        {"method": "PUT", "path": f"/lists/{list_id}/members/oa-op@example.com", "operation_id": "1",
         "body": json.dumps({"email_address": "oa-op@example.com", "status_if_new": "subscribed"})},
    ]}
    batch = api.call("POST", "/batches", 200, json=ops)
    assert batch["status"] == "pending"
    assert api.call("GET", f"/batches/{batch['id']}", 200)["status"] == "started"
    done = api.call("GET", f"/batches/{batch['id']}", 200)
    assert done["status"] == "finished" and done["finished_operations"] == 1
    assert api.call("GET", "/batches", 200)["total_items"] >= 1
    # response_body_url: a gzipped tar of JSON files, each an array of results.
    archive = requests.get(done["response_body_url"], timeout=10)
    assert archive.headers["Content-Type"] == "application/x-gzip"
    with tarfile.open(fileobj=io.BytesIO(archive.content), mode="r:gz") as tar:
        results = [r for m in tar.getmembers() if m.isfile() for r in json.load(tar.extractfile(m))]
    assert results[0]["status_code"] == 200 and results[0]["operation_id"] == "1"
    assert json.loads(results[0]["response"])["email_address"] == "oa-op@example.com"
    assert api.call("DELETE", f"/batches/{batch['id']}", 204) is None
    api.call("GET", f"/batches/{batch['id']}", 404)
    api.call("POST", "/batches", 400, json={"operations": [{"method": "FETCH", "path": "/x"}]})


def test_activity_campaigns_and_reports(api, sandbox, list_id):
    sandbox.admin("mailchimp", "POST", "/seed", {
        "lists": [{"id": list_id, "members": [{
            "email_address": "oa-act@example.com",
            "activity": [
                {"action": "sent", "timestamp": "2024-02-01T00:00:00Z", "campaign_id": "oacamp"},
                {"action": "open", "timestamp": "2024-02-01T01:00:00Z", "campaign_id": "oacamp"},
                {"action": "click", "timestamp": "2024-02-01T02:00:00Z", "campaign_id": "oacamp",
                 "url": "https://acme.example/"},
                {"action": "bounce", "timestamp": "2024-02-01T03:00:00Z", "campaign_id": "oacamp",
                 "bounce_type": "soft"},
            ]}]}],
        "campaigns": [{"id": "oacamp", "list_id": list_id, "title": "February",
                       "subject_line": "Hello", "send_time": "2024-02-01T00:00:00Z", "emails_sent": 1}],
    })
    feed = api.call("GET", f"/lists/{list_id}/members/oa-act@example.com/activity-feed", 200)
    assert [a["activity_type"] for a in feed["activity"]] == ["bounce", "click", "open", "sent"]
    camps = api.call("GET", "/campaigns?status=sent", 200)
    assert camps["campaigns"][0]["id"] == "oacamp"
    assert api.call("GET", "/campaigns/oacamp", 200)["settings"]["title"] == "February"
    report = api.call("GET", "/reports/oacamp/email-activity", 200)
    assert [a["action"] for a in report["emails"][0]["activity"]] == ["open", "click", "bounce"]
    api.call("GET", "/reports/nope/email-activity", 404)


def test_viewer_gets_403(api, sandbox, list_id):
    viewer = "cafecafecafecafecafecafecafecafe-us6"
    sandbox.admin("mailchimp", "POST", "/seed", {"api_keys": [{"key": viewer, "role": "viewer"}]})
    err = api.call("POST", "/lists", 403, key=viewer, json=LIST_BODY)
    assert err["title"] == "Forbidden"
    assert api.call("GET", "/", 200, key=viewer)["role"] == "viewer"


def test_429_body(api, sandbox):
    sandbox.admin("mailchimp", "POST", "/faults",
                  {"endpoint": "GET /3.0/ping", "times": 1, "fault": {"kind": "status", "status": 429}})
    err = api.call("GET", "/ping", 429)
    assert err["title"] == "Too Many Requests"


# Every operation the sandbox serves under /3.0 (sandbox/src/mailchimp/mod.rs).
SERVED = {
    ("GET", "/"), ("GET", "/ping"), ("GET", "/lists"), ("POST", "/lists"),
    ("GET", "/lists/{list_id}"), ("POST", "/lists/{list_id}"), ("DELETE", "/lists/{list_id}"),
    ("GET", "/lists/{list_id}/members"), ("POST", "/lists/{list_id}/members"),
    ("GET", "/lists/{list_id}/members/{hash}"), ("PUT", "/lists/{list_id}/members/{hash}"),
    ("PATCH", "/lists/{list_id}/members/{hash}"), ("DELETE", "/lists/{list_id}/members/{hash}"),
    ("POST", "/lists/{list_id}/members/{hash}/actions/delete-permanent"),
    ("GET", "/lists/{list_id}/members/{hash}/tags"), ("POST", "/lists/{list_id}/members/{hash}/tags"),
    ("GET", "/lists/{list_id}/members/{hash}/activity-feed"),
    ("GET", "/lists/{list_id}/merge-fields"), ("POST", "/lists/{list_id}/merge-fields"),
    ("GET", "/lists/{list_id}/merge-fields/{merge_id}"), ("PATCH", "/lists/{list_id}/merge-fields/{merge_id}"),
    ("DELETE", "/lists/{list_id}/merge-fields/{merge_id}"),
    ("GET", "/batches"), ("POST", "/batches"), ("GET", "/batches/{batch_id}"), ("DELETE", "/batches/{batch_id}"),
    ("GET", "/campaigns"), ("GET", "/campaigns/{campaign_id}"),
    ("GET", "/reports/{campaign_id}/email-activity"),
}


def _template(path):
    """`/lists/abc/members/x@y/tags` -> `/lists/{list_id}/members/{hash}/tags`."""
    segs = path.strip("/").split("/") if path != "/" else []
    names = {"lists": "{list_id}", "members": "{hash}", "merge-fields": "{merge_id}",
             "batches": "{batch_id}", "campaigns": "{campaign_id}", "reports": "{campaign_id}"}
    out = []
    for i, seg in enumerate(segs):
        out.append(names[segs[i - 1]] if i and segs[i - 1] in names and i % 2 == 1 else seg)
    return "/" + "/".join(out)


def test_every_endpoint_was_validated(api):
    """Runs last: each served operation was validated at least once."""
    ops = {(m, _template(p)) for m, p, _ in api.validated}
    assert SERVED - ops == set()
