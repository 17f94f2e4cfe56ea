"""The CRD: generated from spec.py, committed copies fresh, schema and Python validation agree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from raftcluster_env import minimal_spec

from raftpod_operator.crd import crd_manifest, crd_yaml
from raftpod_operator.spec import SpecError, parse_spec

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "crds" / "raftclusters.raftpod.io.yaml"
CHART_COPY = ROOT / "charts" / "raftpod" / "crds" / "raftclusters.raftpod.io.yaml"
FIX = "run `raftpod-operator crd > crds/raftclusters.raftpod.io.yaml` and copy it to the chart"


def test_committed_crd_is_fresh() -> None:
    assert COMMITTED.read_text() == crd_yaml(), f"crds/ is stale: {FIX}"


def test_chart_copy_is_fresh() -> None:
    assert CHART_COPY.read_text() == crd_yaml(), f"the chart's CRD is stale: {FIX}"


def version() -> dict[str, Any]:
    return dict(crd_manifest()["spec"]["versions"][0])


def spec_schema() -> dict[str, Any]:
    return dict(version()["schema"]["openAPIV3Schema"]["properties"]["spec"])


def test_names_subresources_and_columns() -> None:
    crd = crd_manifest()
    assert crd["metadata"]["name"] == "raftclusters.raftpod.io"
    assert crd["spec"]["names"]["shortNames"] == ["raft"]
    v = version()
    assert v["name"] == "v1alpha1"
    assert v["subresources"]["status"] == {}
    assert v["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas"
    assert v["subresources"]["scale"]["statusReplicasPath"] == ".status.replicas"
    columns = [c["name"].upper() for c in v["additionalPrinterColumns"]]
    assert columns == ["READY", "LEADER", "PHASE", "TERM", "LAST-BACKUP", "AGE"]


def test_defaults_enums_ranges_patterns() -> None:
    props = spec_schema()["properties"]
    assert props["replicas"]["default"] == 3
    assert props["replicas"]["minimum"] == 1
    # whole default objects: the API server checks them against the CEL rules as they are
    assert props["sidecar"]["default"]["electionTimeoutMs"] == "150:300"
    assert props["upgrade"]["default"] == {"paused": False, "maxLagEntries": 1000}
    s3 = props["backup"]["properties"]["destination"]["properties"]["s3"]["properties"]
    assert "default" not in s3["bucket"]  # required: no placeholder default
    sidecar = props["sidecar"]["properties"]
    assert sidecar["nativeSidecar"]["enum"] == ["auto", "true", "false"]
    assert sidecar["electionTimeoutMs"]["default"] == "150:300"
    assert sidecar["heartbeatMs"]["default"] == 50
    assert props["placement"]["properties"]["antiAffinity"]["default"] == "required"
    assert props["placement"]["properties"]["antiAffinity"]["enum"] == ["required", "preferred"]
    assert props["storage"]["properties"]["retainOnDelete"]["default"] is True
    assert "pattern" in props["storage"]["properties"]["size"]
    assert "pattern" in props["backup"]["properties"]["schedule"]
    assert props["upgrade"]["properties"]["maxLagEntries"]["default"] == 1000
    assert props["template"]["x-kubernetes-preserve-unknown-fields"] is True
    assert spec_schema()["required"] == ["template"]


def rules(schema: dict[str, Any]) -> list[str]:
    return [r["rule"] for r in schema.get("x-kubernetes-validations", [])]


def test_cel_rules_present() -> None:
    schema = spec_schema()
    assert "has(self.restore) == has(oldSelf.restore)" in rules(schema)
    assert rules(schema["properties"]["restore"]) == ["self == oldSelf"]
    assert any("heartbeatMs" in r for r in rules(schema["properties"]["sidecar"]))
    s3 = schema["properties"]["restore"]["properties"]["from"]["properties"]["s3"]
    assert rules(s3) == ["has(self.key) != has(self.prefix)"]
    assert "self.size == oldSelf.size" in rules(schema["properties"]["storage"])


def test_defaults_agree_between_schema_and_parser() -> None:
    parsed = minimal_spec()
    props = spec_schema()["properties"]
    assert parsed.replicas == props["replicas"]["default"]
    assert parsed.sidecar.heartbeat_ms == props["sidecar"]["properties"]["heartbeatMs"]["default"]
    assert (
        parsed.upgrade.max_lag_entries
        == (props["upgrade"]["properties"]["maxLagEntries"]["default"])
    )


TEMPLATE = {"spec": {"containers": [{"name": "app", "image": "a"}]}}


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"template": TEMPLATE, "replicas": 0}, "spec.replicas: must be at least 1"),
        ({"template": TEMPLATE, "replicas": "3"}, "spec.replicas: expected an integer"),
        ({"template": TEMPLATE, "sidecar": {"nativeSidecar": "yes"}}, "expected one of auto"),
        ({"template": TEMPLATE, "sidecar": {"electionTimeoutMs": "300:150"}}, "lo < hi"),
        ({"template": TEMPLATE, "sidecar": {"heartbeatMs": 200}}, "heartbeatMs must be below"),
        ({"template": TEMPLATE, "storage": {"size": "lots"}}, "spec.storage.size"),
        ({"template": TEMPLATE, "placement": {"antiAffinity": "never"}}, "antiAffinity"),
        (
            {
                "template": TEMPLATE,
                "backup": {"schedule": "every hour", "destination": {"s3": {"bucket": "b"}}},
            },
            "spec.backup.schedule",
        ),
        (
            {
                "template": TEMPLATE,
                "backup": {"schedule": "99 * * * *", "destination": {"s3": {"bucket": "b"}}},
            },
            "not a cron expression",
        ),
        ({"template": TEMPLATE, "backup": {}}, "spec.backup.destination: required"),
        ({"template": TEMPLATE, "restore": {"from": {"s3": {"bucket": "b"}}}}, "exactly one"),
        ({"template": {"spec": {"containers": []}}}, "at least one application container"),
        ({"template": {"spec": {"containers": [{"name": "raftpod"}]}}}, "reserved"),
        ({}, "spec.template: required"),
    ],
)
def test_invalid_specs_are_rejected_with_the_field_named(raw: dict[str, Any], problem: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    assert problem in str(info.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec({"template": TEMPLATE, "replicas": 0, "upgrade": {"maxLagEntries": -1}})
    assert len(info.value.problems) == 2


def test_valid_full_spec_parses() -> None:
    parsed = parse_spec(
        {
            "template": TEMPLATE,
            "replicas": 5,
            "backup": {
                "schedule": "@daily",
                "retain": 3,
                "destination": {"s3": {"bucket": "b", "prefix": "p"}},
            },
            "restore": {"from": {"s3": {"bucket": "b", "key": "k"}}},
        }
    )
    assert parsed.backup is not None and parsed.backup.retain == 3
    assert parsed.restore is not None and parsed.restore.from_ is not None


def test_committed_crd_is_valid_yaml_of_one_document() -> None:
    docs = list(yaml.safe_load_all(COMMITTED.read_text()))
    assert len(docs) == 1 and docs[0]["kind"] == "CustomResourceDefinition"
