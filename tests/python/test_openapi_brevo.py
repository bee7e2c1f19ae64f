"""The Brevo sandbox's responses checked against Brevo's own OpenAPI spec.

The spec (shared/vendors/specs/brevo/swagger_definition_v3.yml) is OpenAPI
3.0.1, so openapi-core validates every response of every endpoint the sandbox
serves: status code documented for the operation, body against its schema.

Loading notes:
- the YAML has an invalid timestamp example, so it is read with a loader that
  resolves no timestamps; its response codes are unquoted integers, which
  become strings; its bodiless responses say `content: {}`, which openapi-core
  would read as "a body is required", so those empty maps are dropped;
- the spec itself does not pass openapi-spec-validator (e.g. a sender schema
  has `maximum: '1E+2'`, a string), so openapi-core is told not to validate
  the spec — only the sandbox's responses are validated.

Documented exceptions, where the spec is plainly wrong about the real API
(each is still checked, against the closest schema or by hand):
- 401 is not listed on any operation, yet Brevo answers 401
  `{"code":"unauthorized","message":"Key not found"}` for a bad key; the body is
  checked against `errorModel`.
- 429 bodies use code `too_many_requests`, absent from `errorModel`'s enum
  (and 429 is not listed on most operations); checked by hand.
- `POST /contacts/batch` lists only 204 and 400, but Brevo answers 404
  `document_not_found` "No contact found for indexes …" when a contact is
  unknown (seen in the field, e.g. sendinblue/APIv3-php-library#257); the body
  is checked against `errorModel`.
- `multiple-choice` attributes: `getAttributes` restricts `type` to
  text/date/float/id/boolean, yet `createAttribute` accepts `multiple-choice`
  attributes, which are then listed with that type; the listing is validated
  with those items set aside, and their shape is checked by hand.
"""

import copy
import pathlib

import pytest
import requests
import yaml
from jsonschema import Draft4Validator
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

from conftest import SPECS

SPEC_PATH = pathlib.Path(SPECS) / "brevo" / "swagger_definition_v3.yml"

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _NoDates(_Base):
    """A YAML loader that leaves timestamps as strings."""


_NoDates.yaml_implicit_resolvers = {
    key: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _string_keys(node):
    """Stringifies keys (`200:` is an int in YAML) and drops empty `content: {}`
    maps, which the spec uses for "no body" but openapi-core reads as "a body
    is required"."""
    if isinstance(node, dict):
        return {str(k): _string_keys(v) for k, v in node.items() if not (k == "content" and v == {})}
    if isinstance(node, list):
        return [_string_keys(v) for v in node]
    return node


@pytest.fixture(scope="module")
def spec_dict():
    """The spec, loaded once per module."""
    with open(SPEC_PATH, encoding="utf-8") as f:
        return _string_keys(yaml.load(f, Loader=_NoDates))


class Checker:
    """Calls the sandbox and validates each response against the spec."""

    def __init__(self, sandbox, spec):
        self.base = sandbox.urls["brevo"] + "/v3"
        self.key = sandbox.credentials["brevo_api_key"]
        self.spec = spec
        served = copy.copy(spec)
        served["servers"] = [{"url": self.base}]
        self.openapi = OpenAPI.from_dict(served, config=Config(spec_validator_cls=None))
        self.http = requests.Session()
        self.validated = set()

    def raw(self, method, path, *, key=True, **kwargs):
        headers = {"api-key": self.key} if key else {}
        return self.http.request(method, self.base + path, headers=headers, timeout=30, **kwargs)

    def call(self, method, path, status, **kwargs):
        r = self.raw(method, path, **kwargs)
        assert r.status_code == status, f"{method} {path}: {r.status_code} {r.text[:300]}"
        self.openapi.validate_response(RequestsOpenAPIRequest(r.request), RequestsOpenAPIResponse(r))
        self.validated.add((method, path.split("?")[0], status))
        return r.json() if r.content else None

    def schema_errors(self, name, body):
        """Errors of `body` against `components.schemas[name]` (for the exceptions)."""
        schema = {"$ref": f"#/components/schemas/{name}", "components": self.spec["components"]}
        return [e.message for e in Draft4Validator(schema).iter_errors(body)]


@pytest.fixture(scope="module")
def api(sandbox, spec_dict):
    sandbox.reset("brevo")
    return Checker(sandbox, spec_dict)


def test_account(api):
    body = api.call("GET", "/account", 200)
    assert body["plan"]


def test_contacts_crud_and_listing(api):
    created = api.call("POST", "/contacts", 201, json={
        "email": "oa1@example.com", "ext_id": "OA-1",
        "attributes": {"FIRSTNAME": "Open", "SMS": "+33612340001"},
    })
    cid = created["id"]
    assert api.call("POST", "/contacts", 204, json={"email": "oa1@example.com", "updateEnabled": True}) is None
    dup = api.call("POST", "/contacts", 400, json={"email": "oa1@example.com"})
    assert dup["code"] == "duplicate_parameter"
    bad_sms = api.call("POST", "/contacts", 400, json={"email": "x@example.com", "attributes": {"SMS": "0612"}})
    assert bad_sms["code"] == "invalid_parameter"

    one = api.call("GET", f"/contacts/{cid}", 200)
    assert one["email"] == "oa1@example.com"
    api.call("GET", "/contacts/OA-1?identifierType=ext_id", 200)
    api.call("GET", "/contacts/missing%40example.com", 404)
    assert api.call("PUT", f"/contacts/{cid}", 204, json={"attributes": {"LASTNAME": "Api"}}) is None
    api.call("PUT", "/contacts/missing%40example.com", 404, json={"attributes": {}})
    api.call("PUT", f"/contacts/{cid}", 400, json={"attributes": {"SMS": "12"}})

    page = api.call("GET", "/contacts?limit=10&sort=asc&modifiedSince=2000-01-01T00%3A00%3A00Z", 200)
    assert page["count"] >= 1
    api.call("GET", "/contacts?limit=5000", 400)

    gone = api.call("POST", "/contacts", 201, json={"email": "oa-gone@example.com"})["id"]
    assert api.call("DELETE", f"/contacts/{gone}", 204) is None
    api.call("DELETE", f"/contacts/{gone}", 404)


def test_batch(api):
    api.call("POST", "/contacts", 201, json={"email": "oa-b@example.com"})
    api.call("POST", "/contacts/batch", 204, json={"contacts": [{"email": "oa-b@example.com", "attributes": {"FIRSTNAME": "B"}}]})
    api.call("POST", "/contacts/batch", 400, json={"contacts": []})
    # Exception: 404 is not in the spec for this operation (see module docs).
    r = api.raw("POST", "/contacts/batch", json={"contacts": [{"email": "oa-ghost@example.com"}]})
    assert r.status_code == 404
    assert r.json()["message"] == "No contact found for indexes 0"
    assert api.schema_errors("errorModel", r.json()) == []


def test_attributes(api):
    assert api.call("POST", "/contacts/attributes/normal/OA_SCORE", 201, json={"type": "float"}) is None
    api.call("POST", "/contacts/attributes/category/OA_TIER", 201,
             json={"enumeration": [{"value": 1, "label": "Gold"}]})
    api.call("POST", "/contacts/attributes/normal/OA_SCORE", 400, json={"type": "float"})
    api.call("PUT", "/contacts/attributes/category/OA_TIER", 204,
             json={"enumeration": [{"value": 1, "label": "Gold"}, {"value": 2, "label": "Silver"}]})
    api.call("PUT", "/contacts/attributes/normal/NOPE", 404, json={"value": "x"})
    listed = api.call("GET", "/contacts/attributes", 200)
    assert {"name": "OA_SCORE", "category": "normal", "type": "float"} in listed["attributes"]
    api.call("DELETE", "/contacts/attributes/normal/OA_SCORE", 204)
    api.call("DELETE", "/contacts/attributes/normal/OA_SCORE", 404)

    # Exception: multiple-choice is a valid type to create but not in getAttributes' enum.
    api.call("POST", "/contacts/attributes/normal/OA_COLORS", 201,
             json={"type": "multiple-choice", "multiCategoryOptions": ["red", "blue"]})
    r = api.raw("GET", "/contacts/attributes")
    multi = [a for a in r.json()["attributes"] if a["type"] == "multiple-choice"]
    assert multi == [{"name": "OA_COLORS", "category": "normal", "type": "multiple-choice",
                      "multiCategoryOptions": ["red", "blue"]}]
    rest = {"attributes": [a for a in r.json()["attributes"] if a["type"] != "multiple-choice"]}
    assert api.schema_errors("getAttributes", rest) == []
    api.call("DELETE", "/contacts/attributes/normal/OA_COLORS", 204)


def test_lists_and_folders(api):
    folder = api.call("POST", "/contacts/folders", 201, json={"name": "OA folder"})["id"]
    api.call("GET", "/contacts/folders", 200)
    api.call("GET", f"/contacts/folders/{folder}", 200)
    api.call("GET", "/contacts/folders/99999", 404)
    api.call("PUT", f"/contacts/folders/{folder}", 204, json={"name": "OA folder 2"})
    lst = api.call("POST", "/contacts/lists", 201, json={"name": "OA list", "folderId": folder})["id"]
    api.call("POST", "/contacts/lists", 400, json={"name": "no folder"})
    api.call("GET", f"/contacts/folders/{folder}/lists", 200)
    api.call("GET", "/contacts/lists", 200)
    api.call("GET", f"/contacts/lists/{lst}", 200)
    api.call("GET", "/contacts/lists/99999", 404)
    api.call("PUT", f"/contacts/lists/{lst}", 204, json={"name": "OA list 2"})

    api.call("POST", "/contacts", 201, json={"email": "oa-l1@example.com"})
    cid = api.call("POST", "/contacts", 201, json={"email": "oa-l2@example.com"})["id"]
    added = api.call("POST", f"/contacts/lists/{lst}/contacts/add", 201,
                     json={"emails": ["oa-l1@example.com", "oa-nobody@example.com"]})
    assert added["contacts"]["failure"] == ["oa-nobody@example.com"]
    api.call("POST", f"/contacts/lists/{lst}/contacts/add", 201, json={"ids": [cid]})
    api.call("POST", f"/contacts/lists/{lst}/contacts/add", 400, json={"ids": [cid]})
    api.call("POST", "/contacts/lists/99999/contacts/add", 404, json={"ids": [cid]})
    listed = api.call("GET", f"/contacts/lists/{lst}/contacts?limit=500", 200)
    assert listed["count"] == 2
    api.call("GET", "/contacts/lists/99999/contacts", 404)
    api.call("POST", f"/contacts/lists/{lst}/contacts/remove", 201, json={"ids": [cid]})
    api.call("POST", f"/contacts/lists/{lst}/contacts/remove", 201, json={"all": True})
    api.call("POST", f"/contacts/lists/{lst}/contacts/remove", 400, json={"ids": [cid]})

    api.call("DELETE", f"/contacts/lists/{lst}", 204)
    api.call("DELETE", f"/contacts/lists/{lst}", 404)
    api.call("DELETE", f"/contacts/folders/{folder}", 204)
    api.call("DELETE", f"/contacts/folders/{folder}", 404)


def test_import_and_processes(api):
    lst = api.call("POST", "/contacts/lists", 201, json={"name": "OA import", "folderId": 1})["id"]
    started = api.call("POST", "/contacts/import", 202, json={
        "jsonBody": [{"email": "oa-i1@example.com", "attributes": {"FIRSTNAME": "I"}}, {"email": "bad"}],
        "listIds": [lst],
    })
    pid = started["processId"]
    assert api.call("GET", f"/processes/{pid}", 200)["status"] == "in_process"
    done = api.call("GET", f"/processes/{pid}", 200)
    assert done["status"] == "completed"
    assert done["info"]["import"]["invalid_emails"].endswith("/invalid_emails.csv")
    api.call("GET", "/processes", 200)
    api.call("GET", "/processes/99999", 404)
    api.call("POST", "/contacts/import", 202, json={"fileBody": "EMAIL;FIRSTNAME\noa-i2@example.com;C", "listIds": [lst]})
    api.call("POST", "/contacts/import", 400, json={"listIds": [lst]})


def test_unauthorized_is_brevo_shaped(api):
    # Exception: no operation lists 401 (see module docs).
    r = api.raw("GET", "/contacts", key=False)
    assert r.status_code == 401
    assert r.json() == {"code": "unauthorized", "message": "Key not found"}
    assert api.schema_errors("errorModel", r.json()) == []


def test_rate_limited_body(limited_sandbox):
    sb = limited_sandbox
    sb.admin("brevo", "POST", "/clock", {"set": "2024-05-01T09:00:00Z"})
    headers = {"api-key": sb.credentials["brevo_api_key"]}
    limited = None
    for _ in range(15):
        r = requests.get(sb.urls["brevo"] + "/v3/contacts", headers=headers, timeout=10)
        if r.status_code == 429:
            limited = r
            break
    assert limited is not None
    # Exception: `too_many_requests` is not in errorModel's code enum (see module docs).
    assert set(limited.json()) == {"code", "message"}
    assert limited.json()["code"] == "too_many_requests"
    assert limited.headers["x-sib-ratelimit-remaining"] == "0"


# Every operation the sandbox serves under /v3 (sandbox/src/brevo/mod.rs).
SERVED = {
    ("GET", "/account"), ("GET", "/contacts"), ("POST", "/contacts"), ("POST", "/contacts/batch"),
    ("POST", "/contacts/import"), ("GET", "/contacts/{identifier}"), ("PUT", "/contacts/{identifier}"),
    ("DELETE", "/contacts/{identifier}"), ("GET", "/contacts/attributes"),
    ("POST", "/contacts/attributes/{category}/{name}"), ("PUT", "/contacts/attributes/{category}/{name}"),
    ("DELETE", "/contacts/attributes/{category}/{name}"),
    ("GET", "/contacts/lists"), ("POST", "/contacts/lists"), ("GET", "/contacts/lists/{listId}"),
    ("PUT", "/contacts/lists/{listId}"), ("DELETE", "/contacts/lists/{listId}"),
    ("GET", "/contacts/lists/{listId}/contacts"), ("POST", "/contacts/lists/{listId}/contacts/add"),
    ("POST", "/contacts/lists/{listId}/contacts/remove"),
    ("GET", "/contacts/folders"), ("POST", "/contacts/folders"), ("GET", "/contacts/folders/{folderId}"),
    ("PUT", "/contacts/folders/{folderId}"), ("DELETE", "/contacts/folders/{folderId}"),
    ("GET", "/contacts/folders/{folderId}/lists"),
    ("GET", "/processes"), ("GET", "/processes/{processId}"),
}


def _template(path):
    """`/contacts/lists/7/contacts/add` -> `/contacts/lists/{listId}/contacts/add`."""
    segs = path.strip("/").split("/")
    fixed = {"batch", "import", "attributes", "lists", "folders"}
    if segs[0] == "contacts" and len(segs) >= 2:
        if segs[1] == "attributes" and len(segs) == 4:
            segs[2:4] = ["{category}", "{name}"]
        elif segs[1] == "lists" and len(segs) >= 3:
            segs[2] = "{listId}"
        elif segs[1] == "folders" and len(segs) >= 3:
            segs[2] = "{folderId}"
        elif segs[1] not in fixed:
            segs[1] = "{identifier}"
    elif segs[0] == "processes" and len(segs) == 2:
        segs[1] = "{processId}"
    return "/" + "/".join(segs)


def test_every_endpoint_was_validated(api):
    """Runs last: each served operation had at least one answer validated against the spec."""
    ops = {(m, _template(p)) for (m, p, _) in api.validated}
    assert SERVED - ops == set()
