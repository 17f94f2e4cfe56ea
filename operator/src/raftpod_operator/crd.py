"""The RaftCluster CRD, generated from the typed spec in `spec.py`.

`raftpod-operator crd` prints this; the copies under ``crds/`` and the chart are
its output, and a test fails when they are stale. Nothing here restates a
field: defaults, enums, ranges, patterns and CEL rules all come from spec.py.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import yaml

from raftpod_operator import spec as s

PHASES = (
    "Pending",
    "Bootstrapping",
    "Running",
    "Degraded",
    "Upgrading",
    "Scaling",
    "Restoring",
    "Failed",
)
CONDITION_TYPES = ("Available", "Progressing", "Degraded", "BackupSucceeded")
MEMBER_ROLES = ("leader", "follower", "candidate", "learner", "unknown")


def object_schema(cls: type) -> dict[str, Any]:
    """The OpenAPI v3 schema of one spec dataclass, recursively."""
    hints = s.field_types(cls)
    properties = {s.json_name(f): _field_schema(hints[f.name], f) for f in dataclasses.fields(cls)}
    schema: dict[str, Any] = {"type": "object"}
    if cls.__doc__:
        schema["description"] = cls.__doc__.strip()
    schema["properties"] = properties
    required = list(getattr(cls, "REQUIRED", ()))
    if required:
        schema["required"] = required
    rules = getattr(cls, "RULES", ())
    if rules:
        schema["x-kubernetes-validations"] = [
            {"rule": rule.cel, "message": rule.message} for rule in rules
        ]
    return schema


def _has_scalar_default(f: dataclasses.Field[Any]) -> bool:
    """Required fields (``min_length``) have a placeholder default in Python, none in the CRD."""
    if f.default is dataclasses.MISSING or f.default is None:
        return False
    return not (f.default == "" and f.metadata["min_length"])


def default_object(cls: type) -> dict[str, Any]:
    """The scalar defaults of ``cls`` and of its non-optional nested objects."""
    hints = s.field_types(cls)
    result: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        inner, optional = s.unwrap_optional(hints[f.name])
        if dataclasses.is_dataclass(inner) and not optional:
            result[s.json_name(f)] = default_object(typing.cast(type, inner))
        elif not dataclasses.is_dataclass(inner) and _has_scalar_default(f):
            result[s.json_name(f)] = f.default
    return result


def _field_schema(tp: Any, f: dataclasses.Field[Any]) -> dict[str, Any]:
    m = f.metadata
    inner, optional = s.unwrap_optional(tp)
    if dataclasses.is_dataclass(inner):
        schema = object_schema(typing.cast(type, inner))
        schema["description"] = m["description"]
        if not optional:
            # the whole default object: the API server checks defaults against the CEL
            # rules before it fills nested defaults, so ``{}`` alone would fail them
            schema["default"] = default_object(typing.cast(type, inner))
        return schema
    origin = typing.get_origin(inner) or inner
    schema = {"description": m["description"]}
    if origin is dict:
        schema.update({"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    elif origin is list:
        schema.update(
            {
                "type": "array",
                "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            }
        )
    else:
        schema["type"] = {bool: "boolean", int: "integer", str: "string"}[origin]
        if _has_scalar_default(f):
            schema["default"] = f.default
    for key, word in (
        ("enum", "enum"),
        ("minimum", "minimum"),
        ("maximum", "maximum"),
        ("pattern", "pattern"),
        ("min_length", "minLength"),
        ("max_length", "maxLength"),
    ):
        if m[key] is not None:
            schema[word] = list(m[key]) if key == "enum" else m[key]
    if m["rules"]:
        schema["x-kubernetes-validations"] = [
            {"rule": rule.cel, "message": rule.message} for rule in m["rules"]
        ]
    return schema


def _condition_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": {"type": "string", "enum": list(CONDITION_TYPES)},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": {"type": "string"},
            "message": {"type": "string"},
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "observedGeneration": {"type": "integer"},
        },
    }


def status_schema() -> dict[str, Any]:
    """The status written by `status.derive_status` (and kopf's own bookkeeping)."""
    integer = {"type": "integer"}
    text = {"type": "string"}
    return {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {
            "phase": {"type": "string", "enum": list(PHASES)},
            "message": text,
            "replicas": integer,
            "readyReplicas": integer,
            "ready": {"type": "string", "description": "ready/desired, for kubectl"},
            "selector": {"type": "string", "description": "label selector, for the scale API"},
            "leader": text,
            "term": integer,
            "commitIndex": integer,
            "observedGeneration": integer,
            "members": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": text,
                        "id": text,
                        "role": {"type": "string", "enum": list(MEMBER_ROLES)},
                        "healthy": {"type": "boolean"},
                        "lag": integer,
                        "revision": text,
                    },
                },
            },
            "conditions": {"type": "array", "items": _condition_schema()},
            "backup": {
                "type": "object",
                "description": "scheduling memory of backup.py: one firing per due time",
                "properties": {
                    "handledTime": {"type": "string", "format": "date-time"},
                    "pendingTime": {"type": "string", "format": "date-time"},
                    "attempts": integer,
                    "lastFailureTime": {"type": "string", "format": "date-time"},
                    "lastError": text,
                    "onDemandHandled": text,
                },
            },
            "restore": {
                "type": "object",
                "description": "where the cluster was restored from, once every member joined",
                "properties": {
                    "url": text,
                    "completedTime": {"type": "string", "format": "date-time"},
                },
            },
            "lastBackup": {
                "type": "object",
                "properties": {
                    "time": {"type": "string", "format": "date-time"},
                    "url": text,
                    "index": integer,
                    "sizeBytes": integer,
                },
            },
        },
    }


def crd_manifest() -> dict[str, Any]:
    """The full CustomResourceDefinition object."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{s.PLURAL}.{s.GROUP}"},
        "spec": {
            "group": s.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": s.KIND,
                "listKind": f"{s.KIND}List",
                "plural": s.PLURAL,
                "singular": s.KIND.lower(),
                "shortNames": [s.SHORT_NAME],
                "categories": ["raftpod"],
            },
            "versions": [
                {
                    "name": s.VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": object_schema(s.RaftClusterSpec),
                                "status": status_schema(),
                            },
                        }
                    },
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": [
                        {"name": "Ready", "type": "string", "jsonPath": ".status.ready"},
                        {"name": "Leader", "type": "string", "jsonPath": ".status.leader"},
                        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                        {"name": "Term", "type": "integer", "jsonPath": ".status.term"},
                        {
                            "name": "Last-Backup",
                            "type": "date",
                            "jsonPath": ".status.lastBackup.time",
                        },
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                }
            ],
        },
    }


def crd_yaml() -> str:
    """The CRD as the YAML committed under ``crds/``."""
    header = "# GENERATED by `raftpod-operator crd` from raftpod_operator/spec.py; do not edit.\n"
    return header + yaml.safe_dump(crd_manifest(), sort_keys=False, width=100)
