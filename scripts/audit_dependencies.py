"""Audit every pinned package of requirements.lock against PyPI's vulnerability data
(pip-audit, no install). Exit 0 when none is known vulnerable, 1 when one is, and 1 with
a clear message when the data could not be read (offline, or a proxy that does not pass
PyPI's per-release JSON) — or 0 with a warning under ``AUDIT_OFFLINE=warn``.

Run by ``make audit`` and ``make test``; never hangs: every request has a socket timeout
and the whole audit a time limit.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
LOCK = PROJECT / "requirements.lock"
TIME_LIMIT_S = 300
# Vulnerability id -> why it does not apply here (docs/security.md repeats these).
ACCEPTED: dict[str, str] = {}


def main() -> int:
    pip_audit = Path(sys.executable).parent / "pip-audit"
    with tempfile.TemporaryDirectory() as work:
        report = Path(work) / "audit.json"
        command = [
            str(pip_audit), "--vulnerability-service", "pypi", "--requirement", str(LOCK),
            "--no-deps", "--disable-pip", "--progress-spinner", "off", "--timeout", "20",
            "--format", "json", "--output", str(report),
            *(arg for vuln in ACCEPTED for arg in ("--ignore-vuln", vuln)),
        ]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=TIME_LIMIT_S)
        except subprocess.TimeoutExpired:
            return unreachable(f"pip-audit did not finish within {TIME_LIMIT_S} s")
        if not report.is_file():
            return unreachable(done.stderr.strip().splitlines()[-1] if done.stderr else "no report")
        dependencies = json.loads(report.read_text())["dependencies"]
    vulnerable = [d for d in dependencies if d.get("vulns")]
    skipped = [d for d in dependencies if d.get("skip_reason")]
    for dependency in vulnerable:
        for vuln in dependency["vulns"]:
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
            print(f"VULNERABLE {dependency['name']}=={dependency['version']}: {vuln['id']}"
                  f" (fixed in {fixed})", file=sys.stderr)  # fmt: skip
    if vulnerable:
        return 1
    if skipped:
        first = skipped[0]
        return unreachable(
            f"{len(skipped)} of {len(dependencies)} packages could not be audited"
            f" (first: {first['name']}: {first['skip_reason']})"
        )
    print(f"pip-audit: {len(dependencies)} pinned packages, no known vulnerabilities.")
    return 0


def unreachable(reason: str) -> int:
    message = (
        f"Dependency audit NOT DONE: PyPI's vulnerability data could not be read ({reason}).\n"
        "  pip-audit needs https://pypi.org/pypi/<name>/<version>/json; run `make audit`"
        " on a machine that reaches it."
    )
    if os.environ.get("AUDIT_OFFLINE") == "warn":
        print(f"WARNING: {message}", file=sys.stderr)
        return 0
    print(f"error: {message}\n  (AUDIT_OFFLINE=warn makes this a warning.)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
