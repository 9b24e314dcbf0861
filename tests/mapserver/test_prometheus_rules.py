"""The example Prometheus rules name only metrics the service exports."""

import re

import yaml
from prometheus_client.parser import text_string_to_metric_families

from mapserver.settings import PROJECT_DIR

RULES = PROJECT_DIR / "deploy" / "prometheus" / "alerts.yml"
# Exported only once the reports capability's outbox table exists.
CONDITIONAL = {"mapserver_email_outbox_pending"}


def test_rules_use_exported_metrics(client):
    client.get("/healthz")
    exported = {
        sample.name
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for sample in family.samples
    }
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    assert rules and all({"alert", "expr", "annotations"} <= set(rule) for rule in rules)
    named = {
        word
        for rule in rules
        for word in re.findall(r"\b[a-z_][a-z0-9_]*\b", re.sub(r'"[^"]*"', "", rule["expr"]))
        if word.startswith("mapserver_")
    }
    assert named - exported <= CONDITIONAL, named - exported
