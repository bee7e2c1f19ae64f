"""The Brevo sandbox driven by Brevo's official Python SDK (`brevo-python`).

`brevo-python` 5.x is the Fern-generated client (module `brevo`); it is pointed
at the sandbox with `base_url=<sandbox>/v3`. Every write is checked by reading
it back through the SDK.
"""


import pytest
import requests

brevo = pytest.importorskip("brevo")
from brevo.core.api_error import ApiError  # noqa: E402
from brevo.errors import BadRequestError, NotFoundError  # noqa: E402


@pytest.fixture()
def client(sandbox):
    sandbox.reset("brevo")
    sandbox.admin("brevo", "POST", "/clock", {"set": "2024-05-01T09:00:00Z"})
    return brevo.Brevo(
        api_key=sandbox.credentials["brevo_api_key"],
        base_url=sandbox.urls["brevo"] + "/v3",
        max_retries=0,
    )


def new_list(client, name="Synced"):
    return client.contacts.create_list(name=name, folder_id=1).id


def test_wrong_key_is_unauthorized(sandbox):
    bad = brevo.Brevo(api_key="xkeysib-wrong", base_url=sandbox.urls["brevo"] + "/v3", max_retries=0)
    with pytest.raises(ApiError) as err:
        bad.contacts.get_contacts()
    assert err.value.status_code == 401
    assert err.value.body == {"code": "unauthorized", "message": "Key not found"}


def test_create_contact_then_upsert_with_update_enabled(client):
    list_id = new_list(client)
    created = client.contacts.create_contact(
        email="ann@example.com",
        ext_id="003ANN",
        attributes={"FIRSTNAME": "Ann", "SMS": "+33612345678"},
        list_ids=[list_id],
    )
    assert created is not None and created.id >= 1

    # The same email again: 400 duplicate_parameter without update_enabled...
    with pytest.raises(BadRequestError) as err:
        client.contacts.create_contact(email="ann@example.com")
    assert err.value.body["code"] == "duplicate_parameter"
    assert err.value.body["metadata"]["duplicate_identifiers"] == ["email"]

    # ...and 204 (the SDK returns None) with it.
    updated = client.contacts.create_contact(
        email="ann@example.com", attributes={"LASTNAME": "Lee"}, update_enabled=True
    )
    assert updated is None

    info = client.contacts.get_contact_info("ann@example.com")
    assert info.id == created.id
    assert info.email == "ann@example.com"
    assert info.list_ids == [list_id]
    attrs = info.attributes.model_dump() if hasattr(info.attributes, "model_dump") else dict(info.attributes)
    assert attrs == {"FIRSTNAME": "Ann", "LASTNAME": "Lee", "SMS": "33612345678", "EXT_ID": "003ANN"}
    by_ext = client.contacts.get_contact_info("003ANN", identifier_type="ext_id")
    assert by_ext.id == created.id


def test_update_contact_and_blacklist(client):
    contact_id = client.contacts.create_contact(email="bob@example.com").id
    client.contacts.update_contact(
        contact_id,
        attributes={"FIRSTNAME": "Bob", "SMS": "0033699999999"},
        email_blacklisted=True,
    )
    info = client.contacts.get_contact_info(str(contact_id), identifier_type="contact_id")
    assert info.email_blacklisted is True
    assert info.attributes.model_dump()["FIRSTNAME"] == "Bob"
    assert info.attributes.model_dump()["SMS"] == "33699999999"

    with pytest.raises(BadRequestError) as err:
        client.contacts.update_contact(contact_id, attributes={"SMS": "0699999999"})
    assert err.value.body["code"] == "invalid_parameter"
    with pytest.raises(NotFoundError):
        client.contacts.update_contact("nobody@example.com", attributes={"FIRSTNAME": "x"})

    client.contacts.delete_contact(contact_id)
    with pytest.raises(NotFoundError) as err:
        client.contacts.get_contact_info(contact_id)
    assert err.value.body["code"] == "document_not_found"


def test_get_contacts_modified_since_follows_the_sandbox_clock(sandbox, client):
    ids = [client.contacts.create_contact(email=f"c{i}@example.com").id for i in range(4)]
    sandbox.admin("brevo", "POST", "/clock", {"set": "2024-05-01T10:00:00.500Z"})
    client.contacts.update_contact(ids[2], attributes={"FIRSTNAME": "Changed"})

    changed = client.contacts.get_contacts(modified_since="2024-05-01T10:00:00.500+00:00")
    assert changed.count == 1
    assert [c.id for c in changed.contacts] == [ids[2]]
    assert changed.contacts[0].modified_at == "2024-05-01T10:00:00.500+00:00"

    everything = client.contacts.get_contacts(modified_since="2024-05-01T11:00:00+02:00", sort="asc")
    assert [c.id for c in everything.contacts] == ids

    page = client.contacts.get_contacts(limit=2, offset=2, sort="asc")
    assert page.count == 4
    assert [c.id for c in page.contacts] == ids[2:]


def test_import_contacts_then_poll_the_process(client):
    list_id = new_list(client, "Imported")
    client.contacts.create_contact(
        email="unsub@example.com", email_blacklisted=True, attributes={"FIRSTNAME": "Un"}
    )
    started = client.contacts.import_contacts(
        json_body=[
            {"email": "i1@example.com", "attributes": {"FIRSTNAME": "Imp", "LASTNAME": "One"}},
            {"email": "unsub@example.com", "attributes": {"FIRSTNAME": "Again"}},
        ],
        list_ids=[list_id],
        update_existing_contacts=True,
    )
    pid = started.process_id

    statuses = []
    for _ in range(5):
        process = client.process.get_process(pid)
        statuses.append(process.status)
        if process.status == "completed":
            break
    assert statuses == ["in_process", "completed"]
    assert process.name == "IMPORTUSER"

    imported = client.contacts.get_contact_info("i1@example.com")
    assert imported.attributes.model_dump() == {"FIRSTNAME": "Imp", "LASTNAME": "One"}
    assert imported.list_ids == [list_id]
    kept = client.contacts.get_contact_info("unsub@example.com")
    assert kept.email_blacklisted is True, "an import must not resubscribe an unsubscribed contact"
    assert kept.attributes.model_dump()["FIRSTNAME"] == "Again"

    in_list = client.contacts.get_contacts_from_list(list_id)
    assert in_list.count == 2


def test_list_membership_and_batch(client):
    list_id = new_list(client, "Members")
    a = client.contacts.create_contact(email="a@example.com").id
    client.contacts.create_contact(email="b@example.com")
    added = client.contacts.add_contact_to_list(list_id, request={"emails": ["a@example.com", "ghost@example.com"]})
    assert added.contacts.success == ["a@example.com"]
    assert added.contacts.failure == ["ghost@example.com"]

    client.contacts.update_batch_contacts(
        contacts=[
            {"id": a, "attributes": {"FIRSTNAME": "A"}},
            {"email": "b@example.com", "attributes": {"FIRSTNAME": "B"}, "listIds": [list_id]},
        ]
    )
    assert client.contacts.get_contact_info("b@example.com").attributes.model_dump()["FIRSTNAME"] == "B"
    assert client.contacts.get_list(list_id).unique_subscribers == 2

    # The SDK maps only 400 for this call; Brevo's 404 arrives as a plain ApiError.
    with pytest.raises(ApiError) as err:
        client.contacts.update_batch_contacts(contacts=[{"id": a}, {"email": "ghost@example.com"}])
    assert err.value.status_code == 404
    assert err.value.body == {"code": "document_not_found", "message": "No contact found for indexes 1"}


def test_rate_limit_headers_and_429(limited_sandbox):
    sb = limited_sandbox
    sb.admin("brevo", "POST", "/clock", {"set": "2024-05-01T09:00:00Z"})
    headers = {"api-key": sb.credentials["brevo_api_key"]}
    codes = []
    with requests.Session() as http:
        for _ in range(30):
            r = http.get(sb.urls["brevo"] + "/v3/contacts", headers=headers, timeout=10)
            assert r.headers["x-sib-ratelimit-limit"] == "10"
            assert "x-sib-ratelimit-reset" in r.headers
            codes.append(r.status_code)
    assert codes.count(429) == 20
    assert set(codes[:10]) == {200}
    # The SDK surfaces the 429 as its TooManyRequestsError.
    client = brevo.Brevo(api_key=sb.credentials["brevo_api_key"], base_url=sb.urls["brevo"] + "/v3", max_retries=0)
    with pytest.raises(brevo.errors.TooManyRequestsError):
        client.contacts.get_contacts()
