"""The Salesforce sandbox driven by the real `simple-salesforce` client.

simple-salesforce always builds `https://{instance}` URLs from `instance_url`
(`base_url`, `bulk2_url` and the `nextRecordsUrl` it follows); the sandbox speaks
plain HTTP on loopback, so the client gets a `requests.Session` whose adapter for
that host rewrites `https://` to `http://`. Everything else is the SDK's own code.
"""

import csv
import io
import urllib.parse

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceResourceNotFound,
)

CUSTOM_FIELDS = {
    "fields": {
        "Contact": [
            {"name": "AC_Contact_Id__c", "type": "string", "length": 64, "externalId": True, "unique": True},
            {"name": "Legacy_Id__c", "type": "string", "externalId": True},
            {"name": "Annual_Revenue__c", "type": "currency", "precision": 18, "scale": 2},
        ],
        "Lead": [
            {"name": "AC_Sync_Status__c", "type": "picklist", "values": ["Synced successfully", "Pending next sync"]},
            {"name": "Interests__c", "type": "multipicklist", "values": ["Golf", "Tennis"], "restricted": True},
        ],
    }
}


class _PlainHttpAdapter(requests.adapters.HTTPAdapter):
    """Sends the SDK's https:// requests for the sandbox host over plain HTTP."""

    def send(self, request, **kwargs):
        request.url = "http://" + request.url[len("https://"):]
        return super().send(request, **kwargs)


def _token(sandbox):
    creds = sandbox.credentials
    r = requests.post(
        f"{sandbox.urls['salesforce']}/services/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "client_id": creds["salesforce_client_id"],
            "client_secret": creds["salesforce_client_secret"],
            "refresh_token": creds["salesforce_refresh_token"],
        },
        timeout=10,
    )
    r.raise_for_status()
    return r.json()


@pytest.fixture()
def sf(sandbox):
    """A fresh Salesforce org with the custom fields, and a client logged in to it."""
    sandbox.admin("salesforce", "POST", "/clock", {"real": True})
    sandbox.reset("salesforce")
    sandbox.admin("salesforce", "POST", "/seed", CUSTOM_FIELDS)
    token = _token(sandbox)
    assert token["instance_url"] == sandbox.urls["salesforce"]
    host = urllib.parse.urlparse(token["instance_url"]).netloc
    session = requests.Session()
    session.mount(f"https://{host}", _PlainHttpAdapter())
    client = Salesforce(
        instance_url=token["instance_url"], session_id=token["access_token"], session=session, version="60.0"
    )
    assert client.base_url == f"https://{host}/services/data/v60.0/"
    return client


def test_query_query_more_and_query_all_page_through_shared_modstamps(sandbox, sf):
    sandbox.admin("salesforce", "POST", "/clock", {"set": "2024-05-01T10:00:00Z"})
    sandbox.admin("salesforce", "POST", "/seed", {"generate": {"Lead": 450}})
    soql = "SELECT Id, Email, SystemModstamp FROM Lead WHERE SystemModstamp >= 2024-05-01T10:00:00Z ORDER BY SystemModstamp, Id"
    options = {"Sforce-Query-Options": "batchSize=200"}

    first = sf.query(soql, headers=options)
    assert first["totalSize"] == 450
    assert first["done"] is False
    assert len(first["records"]) == 200
    assert {r["SystemModstamp"] for r in first["records"]} == {"2024-05-01T10:00:00.000+0000"}
    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True, headers=options)
    assert len(second["records"]) == 200
    third = sf.query_more(second["nextRecordsUrl"], identifier_is_url=True, headers=options)
    assert third["done"] is True and len(third["records"]) == 50
    paged = [r["Id"] for page in (first, second, third) for r in page["records"]]
    assert len(set(paged)) == 450
    assert paged == sorted(paged)

    everything = sf.query_all(soql, headers=options)
    assert everything["totalSize"] == 450
    assert [r["Id"] for r in everything["records"]] == paged
    assert {r["Email"] for r in everything["records"]} == {f"gen-lead-{i}@example.com" for i in range(450)}

    # queryAll sees deleted records; query does not.
    sf.Lead.delete(paged[0])
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 449
    deleted = sf.query_all("SELECT Id, IsDeleted FROM Lead WHERE IsDeleted = true", include_deleted=True)
    assert [(r["Id"], r["IsDeleted"]) for r in deleted["records"]] == [(paged[0], True)]

    # The SDK parses Sforce-Limit-Info.
    usage = sf.api_usage["api-usage"]
    assert usage.used >= 8 and usage.total == 100000


def test_create_update_read_delete_and_validation_errors(sf):
    created = sf.Contact.create({"FirstName": "Ada", "LastName": "Lovelace", "Email": "Ada@Example.com", "Annual_Revenue__c": 1234.567})
    assert created["success"] is True and created["errors"] == []
    cid = created["id"]
    assert len(cid) == 18 and cid.startswith("003")

    assert sf.Contact.update(cid, {"Title": "Countess", "Phone": "+44 20 1234"}) == 204
    got = sf.Contact.get(cid)
    assert got["Name"] == "Ada Lovelace"
    assert got["Email"] == "ada@example.com"
    assert got["Title"] == "Countess"
    assert got["Annual_Revenue__c"] == 1234.57
    assert got["IsDeleted"] is False
    assert got["attributes"]["type"] == "Contact"

    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Lead.create({"FirstName": "NoLastName"})
    assert err.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert err.value.content[0]["fields"] == ["LastName", "Company"]
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Lead.create({"LastName": "x", "Company": "y", "Interests__c": "Golf;Chess"})
    assert err.value.content[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Contact.update(cid, {"Email": "not-an-email"})
    assert err.value.content[0]["errorCode"] == "INVALID_EMAIL_ADDRESS"

    assert sf.Contact.delete(cid) == 204
    with pytest.raises(SalesforceResourceNotFound) as err:
        sf.Contact.get(cid)
    assert err.value.content[0]["errorCode"] == "ENTITY_IS_DELETED"


def test_upsert_by_external_id(sf):
    assert sf.Contact.upsert("AC_Contact_Id__c/ac-7", {"LastName": "Upserted", "Email": "u@example.com"}) == 201
    assert sf.Contact.upsert("AC_Contact_Id__c/ac-7", {"Title": "Director"}) == 200
    got = sf.Contact.get_by_custom_id("AC_Contact_Id__c", "ac-7")
    assert (got["LastName"], got["Title"], got["AC_Contact_Id__c"]) == ("Upserted", "Director", "ac-7")
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 1

    sf.Contact.create({"LastName": "One", "Legacy_Id__c": "dup"})
    sf.Contact.create({"LastName": "Two", "Legacy_Id__c": "dup"})
    with pytest.raises(SalesforceMoreThanOneRecord) as err:
        sf.Contact.upsert("Legacy_Id__c/dup", {"Title": "x"})
    assert len(err.value.content) == 2


def test_describe(sf):
    desc = sf.Lead.describe()
    fields = {f["name"]: f for f in desc["fields"]}
    assert desc["keyPrefix"] == "00Q"
    assert fields["LastName"]["type"] == "string" and fields["LastName"]["length"] == 80
    assert fields["LastName"]["nillable"] is False
    assert fields["Email"]["type"] == "email"
    assert fields["SystemModstamp"]["type"] == "datetime" and fields["SystemModstamp"]["updateable"] is False
    assert fields["Interests__c"]["type"] == "multipicklist" and fields["Interests__c"]["restrictedPicklist"] is True
    assert [v["value"] for v in fields["AC_Sync_Status__c"]["picklistValues"]] == ["Synced successfully", "Pending next sync"]
    contact = {f["name"]: f for f in sf.Contact.describe()["fields"]}
    assert contact["AC_Contact_Id__c"]["externalId"] is True and contact["AC_Contact_Id__c"]["length"] == 64
    assert contact["Annual_Revenue__c"]["type"] == "currency" and contact["Annual_Revenue__c"]["scale"] == 2
    assert {o["name"] for o in sf.describe()["sobjects"]} >= {"Lead", "Contact", "Account", "Task"}


def test_bulk2_upsert_and_query(sf):
    records = [
        {"AC_Contact_Id__c": "bulk-1", "LastName": "One", "Email": "one@example.com"},
        {"AC_Contact_Id__c": "bulk-2", "LastName": "Two", "Email": "broken"},
        {"AC_Contact_Id__c": "bulk-3", "LastName": "Three", "Email": "three@example.com"},
    ]
    [result] = sf.bulk2.Contact.upsert(records=records, external_id_field="AC_Contact_Id__c", wait=0.05)
    assert result["numberRecordsProcessed"] == 3
    assert result["numberRecordsFailed"] == 1
    assert result["numberRecordsTotal"] == 3
    job_id = result["job_id"]

    ok = list(csv.DictReader(io.StringIO(sf.bulk2.Contact.get_successful_records(job_id))))
    assert [(r["AC_Contact_Id__c"], r["sf__Created"]) for r in ok] == [("bulk-1", "true"), ("bulk-3", "true")]
    failed = list(csv.DictReader(io.StringIO(sf.bulk2.Contact.get_failed_records(job_id))))
    assert [r["AC_Contact_Id__c"] for r in failed] == ["bulk-2"]
    assert failed[0]["sf__Error"].startswith("INVALID_EMAIL_ADDRESS:")

    # A second upsert updates the existing record.
    [again] = sf.bulk2.Contact.upsert(
        records=[{"AC_Contact_Id__c": "bulk-1", "Title": "Lead Engineer"}], external_id_field="AC_Contact_Id__c", wait=0.05
    )
    assert again["numberRecordsFailed"] == 0
    ok = list(csv.DictReader(io.StringIO(sf.bulk2.Contact.get_successful_records(again["job_id"]))))
    assert ok[0]["sf__Created"] == "false" and ok[0]["sf__Id"] == sf.Contact.get_by_custom_id("AC_Contact_Id__c", "bulk-1")["Id"]

    rows = sf.query_all("SELECT AC_Contact_Id__c, LastName, Title FROM Contact ORDER BY AC_Contact_Id__c")["records"]
    assert [(r["AC_Contact_Id__c"], r["LastName"], r["Title"]) for r in rows] == [
        ("bulk-1", "One", "Lead Engineer"),
        ("bulk-3", "Three", None),
    ]

    # Bulk query pages with the locator.
    pages = list(sf.bulk2.Contact.query("SELECT AC_Contact_Id__c FROM Contact ORDER BY AC_Contact_Id__c", max_records=1, wait=0.05))
    values = [row["AC_Contact_Id__c"] for page in pages for row in csv.DictReader(io.StringIO(page))]
    assert values == ["bulk-1", "bulk-3"]
    assert len(pages) == 2


def test_expired_session_and_limits(sandbox, sf):
    limits = sf.limits()
    assert limits["DailyApiRequests"]["Max"] == 100000
    assert limits["DailyApiRequests"]["Remaining"] < 100000
    sandbox.admin("salesforce", "POST", "/clock", {"advance_secs": 2 * 3600 + 1})
    with pytest.raises(SalesforceExpiredSession) as err:
        sf.query("SELECT Id FROM Lead")
    assert err.value.content[0]["errorCode"] == "INVALID_SESSION_ID"
