"""Shared fixtures: one sandbox process per test module.

The sandbox binary is `crmsync-sandbox` (sandbox/src/main.rs); set
CRMSYNC_SANDBOX_BIN to its path, or it is looked up under target/release then
target/debug of the repository.
"""

import json
import os
import pathlib
import subprocess

import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
SPECS = ROOT.parent / "shared" / "vendors" / "specs"


def _sandbox_bin():
    env = os.environ.get("CRMSYNC_SANDBOX_BIN")
    if env:
        return env
    for profile in ("release", "debug"):
        for target in (ROOT / "target", ROOT.parent / "target-sbx"):
            p = target / profile / "crmsync-sandbox"
            if p.exists():
                return str(p)
    raise RuntimeError("crmsync-sandbox is not built: cargo build --release -p crmsync-sandbox")


class Sandbox:
    """A running sandbox: base URLs, credentials and admin helpers."""

    def __init__(self, info):
        self.urls = {k: info[k] for k in ("salesforce", "activecampaign", "mailchimp", "brevo")}
        self.credentials = info["credentials"]

    def admin(self, vendor, method, path, body=None):
        r = requests.request(method, f"{self.urls[vendor]}/__sandbox{path}", json=body, timeout=10)
        r.raise_for_status()
        return r.json() if r.content else None

    def calls(self, vendor):
        return self.admin(vendor, "GET", "/calls")

    def reset(self, vendor):
        self.admin(vendor, "POST", "/reset")


def start_sandbox(*args):
    proc = subprocess.Popen(
        [_sandbox_bin(), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError("crmsync-sandbox exited before printing its URLs")
    return proc, Sandbox(json.loads(line))


@pytest.fixture(scope="module")
def sandbox():
    """A sandbox with rate limits off, fresh for each test module."""
    proc, sb = start_sandbox("--no-rate-limits")
    yield sb
    proc.stdin.close()
    proc.wait(timeout=10)


@pytest.fixture()
def limited_sandbox():
    """A sandbox with the vendors' real rate limits on, fresh for each test."""
    proc, sb = start_sandbox()
    yield sb
    proc.stdin.close()
    proc.wait(timeout=10)
