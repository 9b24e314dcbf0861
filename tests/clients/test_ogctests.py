"""The ``ogctests`` suite (PyPI) for OGC API - Features Part 1 Core, run against the live
server's ``/ogc``, one of our tests per abstract test (``/ats/core/...``) so that each
failure shows on its own.

ogctests is itself a pytest suite with a ``pytest_collection_modifyitems`` hook that would
reorder (and break on) our own tests, so it runs in a child pytest, isolated from this
project's configuration (``-c`` an empty ini, ``--confcutdir`` its own package, no plugin
autoload), with a JUnit XML report read back here. It reaches the server over HTTP, with
``INSTANCE_URL``, exactly as its command line does.

It is installed without its declared dependencies (its packaging caps httpx < 0.28,
pytest < 9 and pyarrow < 18; this project pins newer ones, on which it runs unchanged):
see ``scripts/bootstrap.sh``.

Checks that need the internet, and why (each passes when the internet is reachable, and
is skipped here only when it failed for want of it):

- ``ast18`` (/ats/core/fc-time-definition) looks for a ``datetime`` parameter among each
  collection's items parameters in pygeoapi's OpenAPI document and resolves every
  ``$ref`` on the way by downloading it. The first collections have no time field, so it
  walks past the ``sortby`` parameter, which pygeoapi 0.24 writes as a remote ``$ref`` to
  ``raw.githubusercontent.com/opengeospatial/ogcapi-records/.../sortby.yaml``: offline
  that is a ``httpx.ConnectError`` before any check of ours is made.
"""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

ogctests = pytest.importorskip("ogctests", reason="ogctests is installed by bootstrap.sh test")

SUITE = Path(ogctests.__file__).parent
ABSTRACT_TESTS = {
    "ast1": "/ats/core/http",
    "ast2": "/ats/core/crs84",
    "ast3": "/ats/core/root-op",
    "ast4": "/ats/core/root-success",
    "ast5": "/ats/core/api-definition-op",
    "ast6": "/ats/core/api-definition-success",
    "ast7": "/ats/core/conformance-op",
    "ast8": "/ats/core/conformance-success",
    "ast9": "/ats/core/fc-md-op",
    "ast10": "/ats/core/fc-md-success",
    "ast11": "/ats/core/sfc-md-op",
    "ast12": "/ats/core/sfc-md-success",
    "ast13": "/ats/core/fc-op",
    "ast14": "/ats/core/fc-bbox-definition",
    "ast15": "/ats/core/fc-bbox-response",
    "ast16": "/ats/core/fc-limit-definition",
    "ast17": "/ats/core/fc-limit-response",
    "ast18": "/ats/core/fc-time-definition",
    "ast19": "/ats/core/fc-time-response",
    "ast20": "/ats/core/query-param-invalid",
    "ast21": "/ats/core/query-param-unknown",
    "ast22": "/ats/core/fc-response",
    "ast23": "/ats/core/fc-links",
    "ast24": "/ats/core/fc-timeStamp",
    "ast25": "/ats/core/fc-numberMatched",
    "ast26": "/ats/core/fc-numberReturned",
    "ast27": "/ats/core/f-op",
    "ast28": "/ats/core/f-success",
    "ast29": "/ats/core/f-links",
}
NEEDS_INTERNET = {
    "ast18": "resolves the remote $ref of pygeoapi's sortby parameter "
    "(raw.githubusercontent.com), unreachable offline",
}
OFFLINE_ERRORS = ("httpx.ConnectError", "httpx.ConnectTimeout", "Name or service not known")


@dataclass(frozen=True)
class Outcome:
    status: str  # passed, failed, error or skipped
    detail: str


@pytest.fixture(scope="module")
def outcomes(ogc_url, tmp_path_factory) -> dict[str, Outcome]:
    work = tmp_path_factory.mktemp("ogctests")
    (work / "pytest.ini").write_text("[pytest]\n")
    report = work / "report.xml"
    command = [
        sys.executable, "-m", "pytest", str(SUITE / "features" / "core"),
        "-c", str(work / "pytest.ini"), "--rootdir", str(SUITE), "--confcutdir", str(SUITE),
        "-p", "no:cacheprovider", "-q", "--tb=short", f"--junitxml={report}",
    ]  # fmt: skip
    env = {
        **os.environ,
        "INSTANCE_URL": ogc_url,
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    env.pop("CLIENT_OVERRIDDEN", None)
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert report.is_file(), f"ogctests did not run:\n{done.stdout}\n{done.stderr}"
    found: dict[str, Outcome] = {}
    for case in ET.parse(report).iter("testcase"):
        name = case.get("name", "").removeprefix("test_")
        status, detail = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                status = {"failure": "failed"}.get(child.tag, child.tag)
                detail = f"{child.get('message', '')}\n{child.text or ''}"
        found[name] = Outcome(status, detail)
    return found


def test_every_abstract_test_ran(outcomes):
    assert set(outcomes) == set(ABSTRACT_TESTS)


@pytest.mark.parametrize("ast", list(ABSTRACT_TESTS), ids=lambda a: f"{a} {ABSTRACT_TESTS[a]}")
def test_ogctests_core(outcomes, ast):
    outcome = outcomes.get(ast)
    assert outcome is not None, f"ogctests did not run {ast}"
    if ast in NEEDS_INTERNET and outcome.status != "passed":
        if any(error in outcome.detail for error in OFFLINE_ERRORS):
            pytest.skip(f"needs the internet: {NEEDS_INTERNET[ast]}")
    assert outcome.status == "passed", f"{ABSTRACT_TESTS[ast]} {outcome.status}:\n{outcome.detail}"
