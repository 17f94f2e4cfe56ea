"""The typed RaftCluster spec: the one source of truth for the CRD schema and for parsing.

Every field is a dataclass field whose metadata carries what the OpenAPI schema
needs (description, enum, range, pattern); `crd.py` walks these classes to emit
the schema, and `parse_spec` walks the same classes to turn a raw ``spec`` dict
into values, so the schema and the Python-side validation cannot drift apart.
Rules that span several fields are `Rule`s on the class: the CRD carries them as
CEL (`x-kubernetes-validations`) and `parse_spec` runs their Python twin.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from croniter import croniter

GROUP = "raftpod.io"
VERSION = "v1alpha1"
KIND = "RaftCluster"
PLURAL = "raftclusters"
SHORT_NAME = "raft"
DEFAULT_SIDECAR_IMAGE = "ghcr.io/raftpod/raftpod:0.1.0"

QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
ELECTION_PATTERN = r"^[0-9]+:[0-9]+$"
CRON_PATTERN = r"^(@(yearly|annually|monthly|weekly|daily|hourly)|(\S+\s+){4}\S+)$"
ENDPOINT_PATTERN = r"^(https?://[^/?#\s]+/?)?$"


class SpecError(ValueError):
    """The spec cannot be run; ``problems`` lists each wrong field and what to do."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Rule:
    """A cross-field rule: CEL for the API server, a Python twin for `parse_spec`."""

    cel: str
    message: str
    check: Callable[[Any], bool] | None = None
    transition: bool = False  # uses oldSelf: only the API server can check it


def meta(
    description: str,
    *,
    enum: tuple[str, ...] | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
    pattern: str | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    preserve_unknown: bool = False,
    name: str | None = None,
    rules: tuple[Rule, ...] = (),
) -> dict[str, Any]:
    """Field metadata read by both the schema generator and the parser."""
    return {
        "description": description,
        "enum": enum,
        "minimum": minimum,
        "maximum": maximum,
        "pattern": pattern,
        "min_length": min_length,
        "max_length": max_length,
        "preserve_unknown": preserve_unknown,
        "name": name,
        "rules": rules,
    }


def json_name(f: dataclasses.Field[Any]) -> str:
    """The camelCase key of a field in the resource (``from_`` -> ``from``)."""
    explicit = f.metadata.get("name")
    if explicit:
        return str(explicit)
    head, *rest = f.name.rstrip("_").split("_")
    return head + "".join(part.title() for part in rest)


def _election_ok(text: str) -> bool:
    lo, _, hi = text.partition(":")
    return lo.isdigit() and hi.isdigit() and 0 < int(lo) < int(hi)


@dataclass(frozen=True)
class SidecarSpec:
    """The injected Raft sidecar container."""

    image: str = field(default=DEFAULT_SIDECAR_IMAGE, metadata=meta("Sidecar image.", min_length=1))
    image_pull_policy: str = field(
        default="IfNotPresent",
        metadata=meta("Pull policy.", enum=("Always", "IfNotPresent", "Never")),
    )
    resources: dict[str, Any] = field(
        default_factory=dict,
        metadata=meta("ResourceRequirements of the sidecar.", preserve_unknown=True),
    )
    election_timeout_ms: str = field(
        default="150:300",
        metadata=meta(
            "Randomized election timeout range lo:hi in ms.",
            pattern=ELECTION_PATTERN,
            max_length=24,
        ),
    )
    heartbeat_ms: int = field(
        default=50, metadata=meta("Leader heartbeat interval (ms).", minimum=1, maximum=60000)
    )
    snapshot_entries: int = field(
        default=10000, metadata=meta("Snapshot every N applied entries.", minimum=1)
    )
    native_sidecar: str = field(
        default="auto",
        metadata=meta(
            "Run as a native sidecar (initContainer, restartPolicy Always): auto uses it "
            "when the API server is 1.29 or newer.",
            enum=("auto", "true", "false"),
        ),
    )
    log_format: str = field(
        default="json", metadata=meta("Sidecar log format.", enum=("json", "logfmt"))
    )
    log_level: str = field(
        default="info",
        metadata=meta("Sidecar log level.", enum=("debug", "info", "warning", "error")),
    )

    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="int(self.electionTimeoutMs.split(':')[0]) < "
            "int(self.electionTimeoutMs.split(':')[1])",
            message="electionTimeoutMs must be lo:hi with lo < hi, e.g. 150:300",
            check=lambda s: _election_ok(s.election_timeout_ms),
        ),
        Rule(
            cel="self.heartbeatMs < int(self.electionTimeoutMs.split(':')[0])",
            message="heartbeatMs must be below the election timeout's lower bound",
            check=lambda s: (
                not _election_ok(s.election_timeout_ms)
                or s.heartbeat_ms < int(s.election_timeout_ms.split(":")[0])
            ),
        ),
    )


@dataclass(frozen=True)
class StorageSpec:
    """The persistent volume of every member."""

    size: str = field(
        default="1Gi", metadata=meta("Volume size per member.", pattern=QUANTITY_PATTERN)
    )
    storage_class_name: str | None = field(
        default=None, metadata=meta("StorageClass; unset uses the cluster default.")
    )
    retain_on_delete: bool = field(
        default=True, metadata=meta("Keep the PVCs when the RaftCluster is deleted.")
    )

    # a StatefulSet's volumeClaimTemplates cannot change after creation
    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.size == oldSelf.size",
            message="storage.size cannot change after creation",
            transition=True,
        ),
        Rule(
            cel="has(self.storageClassName) == has(oldSelf.storageClassName) && "
            "(!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)",
            message="storage.storageClassName cannot change after creation",
            transition=True,
        ),
    )


@dataclass(frozen=True)
class PlacementSpec:
    """Where members may run relative to each other."""

    anti_affinity: str = field(
        default="required",
        metadata=meta(
            "Pod anti-affinity between members: required (never two on one topology "
            "domain) or preferred.",
            enum=("required", "preferred"),
        ),
    )
    topology_key: str = field(
        default="kubernetes.io/hostname",
        metadata=meta("Topology key of the anti-affinity.", min_length=1),
    )
    topology_spread: list[dict[str, Any]] = field(
        default_factory=list,
        metadata=meta(
            "TopologySpreadConstraints; the cluster's label selector is filled in when absent.",
            preserve_unknown=True,
        ),
    )


@dataclass(frozen=True)
class TlsSpec:
    """Peer mTLS and admin API TLS."""

    enabled: bool = field(default=True, metadata=meta("Use mTLS between peers."))
    issuer: str = field(
        default="operator",
        metadata=meta(
            "Who issues certificates: operator (built-in CA) or cert-manager "
            "(Secrets named as documented are expected to exist).",
            enum=("operator", "cert-manager"),
        ),
    )


CREDENTIALS_HELP = (
    "Secret in the cluster's namespace whose keys accessKeyId and secretAccessKey hold the "
    "S3 key pair (given to the sidecar as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY); "
    "empty: the pod's own cloud identity (boto3's default chain)."
)


@dataclass(frozen=True)
class S3Destination:
    """An S3 (or S3-compatible) location for backups."""

    bucket: str = field(default="", metadata=meta("Bucket name.", min_length=1))
    prefix: str = field(
        default="",
        metadata=meta("Key prefix; backups go to <prefix>/<namespace>/<cluster name>/."),
    )
    region: str = field(default="", metadata=meta("Region."))
    endpoint: str = field(
        default="",
        metadata=meta("Endpoint URL for S3-compatible stores.", pattern=ENDPOINT_PATTERN),
    )
    credentials_secret: str = field(default="", metadata=meta(CREDENTIALS_HELP))
    sse: str | None = field(
        default=None,
        metadata=meta("Server-side encryption of the objects.", enum=("AES256", "aws:kms")),
    )

    REQUIRED: ClassVar[tuple[str, ...]] = ("bucket",)


@dataclass(frozen=True)
class BackupDestination:
    """Where backups go."""

    s3: S3Destination | None = field(default=None, metadata=meta("S3 destination."))

    REQUIRED: ClassVar[tuple[str, ...]] = ("s3",)


@dataclass(frozen=True)
class BackupSpec:
    """Scheduled snapshot backups."""

    schedule: str = field(
        default="0 */6 * * *",
        metadata=meta(
            "Cron schedule of backups in UTC: five fields, or @hourly, @daily, @weekly, "
            "@monthly, @yearly.",
            pattern=CRON_PATTERN,
        ),
    )
    retain: int = field(default=7, metadata=meta("Newest backups kept.", minimum=1, maximum=1000))
    compression: str = field(
        default="none",
        metadata=meta(
            "Compression of the backup objects (zstd needs the zstandard package in the "
            "sidecar image).",
            enum=("none", "gzip", "zstd"),
        ),
    )
    destination: BackupDestination | None = field(
        default=None, metadata=meta("Backup destination.")
    )

    REQUIRED: ClassVar[tuple[str, ...]] = ("destination",)


@dataclass(frozen=True)
class S3Source:
    """A backup object in S3: a key, or the newest object under a prefix."""

    bucket: str = field(default="", metadata=meta("Bucket name.", min_length=1))
    key: str | None = field(
        default=None, metadata=meta("Exact object key (a .snap object).", min_length=1)
    )
    prefix: str | None = field(
        default=None,
        metadata=meta(
            "Restore the latest backup here: a cluster's folder "
            "(<backup prefix>/<namespace>/<cluster name>), or a prefix holding one cluster's.",
            min_length=1,
        ),
    )
    region: str = field(default="", metadata=meta("Region."))
    endpoint: str = field(
        default="",
        metadata=meta("Endpoint URL for S3-compatible stores.", pattern=ENDPOINT_PATTERN),
    )
    credentials_secret: str = field(default="", metadata=meta(CREDENTIALS_HELP))

    REQUIRED: ClassVar[tuple[str, ...]] = ("bucket",)
    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="has(self.key) != has(self.prefix)",
            message="give exactly one of key or prefix",
            check=lambda s: (s.key is None) != (s.prefix is None),
        ),
    )


@dataclass(frozen=True)
class RestoreSource:
    """What to restore from."""

    s3: S3Source | None = field(default=None, metadata=meta("S3 source."))

    REQUIRED: ClassVar[tuple[str, ...]] = ("s3",)


@dataclass(frozen=True)
class RestoreSpec:
    """Bootstrap a new cluster from a backup; only read at creation."""

    from_: RestoreSource | None = field(default=None, metadata=meta("Backup to restore."))

    REQUIRED: ClassVar[tuple[str, ...]] = ("from",)
    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self == oldSelf",
            message="restore is only used at creation and cannot change",
            transition=True,
        ),
    )


@dataclass(frozen=True)
class UpgradeSpec:
    """Rolling upgrade controls."""

    paused: bool = field(default=False, metadata=meta("Freeze the rollout."))
    max_lag_entries: int = field(
        default=1000,
        metadata=meta("A voter further behind the leader than this counts as lagging.", minimum=0),
    )


@dataclass(frozen=True)
class RaftClusterSpec:
    """A replicated Raft cluster whose every pod carries the raftpod sidecar."""

    template: dict[str, Any] = field(
        default_factory=dict,
        metadata=meta(
            "PodTemplateSpec of the application; the sidecar is injected.",
            preserve_unknown=True,
        ),
    )
    replicas: int = field(
        default=3,
        metadata=meta("Voting members; odd counts are recommended.", minimum=1, maximum=99),
    )
    sidecar: SidecarSpec = field(default_factory=SidecarSpec, metadata=meta("Sidecar settings."))
    storage: StorageSpec = field(default_factory=StorageSpec, metadata=meta("Storage."))
    placement: PlacementSpec = field(default_factory=PlacementSpec, metadata=meta("Placement."))
    tls: TlsSpec = field(default_factory=TlsSpec, metadata=meta("TLS."))
    backup: BackupSpec | None = field(default=None, metadata=meta("Scheduled backups."))
    restore: RestoreSpec | None = field(default=None, metadata=meta("Restore at creation."))
    upgrade: UpgradeSpec = field(default_factory=UpgradeSpec, metadata=meta("Upgrades."))

    REQUIRED: ClassVar[tuple[str, ...]] = ("template",)
    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="has(self.restore) == has(oldSelf.restore)",
            message="restore can only be given at creation",
            transition=True,
        ),
    )


T = TypeVar("T")


def unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (tp, False)."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], True
    return tp, False


def field_types(cls: type) -> dict[str, Any]:
    """Resolved annotations of a spec dataclass (they are strings under PEP 563)."""
    return typing.get_type_hints(cls)


def parse_spec(raw: Mapping[str, Any] | None) -> RaftClusterSpec:
    """Validate a raw ``spec`` and return it typed; raise `SpecError` listing every problem."""
    problems: list[str] = []
    spec = _parse_object(RaftClusterSpec, raw or {}, "spec", problems)
    if not problems:
        _check_template(spec.template, problems)
        if spec.backup is not None and not croniter.is_valid(spec.backup.schedule):
            problems.append(
                f"spec.backup.schedule: {spec.backup.schedule!r} is not a cron expression"
            )
    if problems:
        raise SpecError(problems)
    return spec


def _parse_object(cls: type[T], raw: Any, path: str, problems: list[str]) -> T:
    if not isinstance(raw, Mapping):
        problems.append(f"{path}: expected an object, got {type(raw).__name__}")
        return typing.cast(T, None)
    hints = field_types(cls)
    known = {json_name(f): f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in raw:
        if key not in known:
            problems.append(f"{path}.{key}: unknown field")
    for required in getattr(cls, "REQUIRED", ()):
        if raw.get(required) is None:
            problems.append(f"{path}.{required}: required")
    values: dict[str, Any] = {}
    for key, f in known.items():
        if key in raw and raw[key] is not None:
            values[f.name] = _parse_value(hints[f.name], f, raw[key], f"{path}.{key}", problems)
    obj = cls(**values)
    for rule in getattr(cls, "RULES", ()):
        if rule.check is not None and not _rule_holds(rule, obj):
            problems.append(f"{path}: {rule.message}")
    return obj


def _rule_holds(rule: Rule, obj: Any) -> bool:
    assert rule.check is not None
    try:
        return bool(rule.check(obj))
    except (TypeError, ValueError, AttributeError):
        return False


def _parse_value(
    tp: Any, f: dataclasses.Field[Any], raw: Any, path: str, problems: list[str]
) -> Any:
    tp, _ = unwrap_optional(tp)
    m = f.metadata
    if dataclasses.is_dataclass(tp):
        return _parse_object(typing.cast(type, tp), raw, path, problems)
    origin = typing.get_origin(tp) or tp
    if tp is bool:
        ok = isinstance(raw, bool)
    elif tp is int:
        ok = isinstance(raw, int) and not isinstance(raw, bool)
    elif tp is str:
        ok = isinstance(raw, str)
    else:
        ok = isinstance(raw, origin)
    if not ok:
        problems.append(f"{path}: expected {_type_word(tp)}, got {raw!r}")
        return raw
    if m["enum"] is not None and raw not in m["enum"]:
        problems.append(f"{path}: expected one of {', '.join(m['enum'])}, got {raw!r}")
    if m["minimum"] is not None and raw < m["minimum"]:
        problems.append(f"{path}: must be at least {m['minimum']}, got {raw}")
    if m["maximum"] is not None and raw > m["maximum"]:
        problems.append(f"{path}: must be at most {m['maximum']}, got {raw}")
    if m["pattern"] is not None and not re.search(m["pattern"], raw):
        problems.append(f"{path}: {raw!r} does not match {m['pattern']}")
    if m["min_length"] is not None and len(raw) < m["min_length"]:
        problems.append(f"{path}: must not be empty")
    if m["max_length"] is not None and len(raw) > m["max_length"]:
        problems.append(f"{path}: must be at most {m['max_length']} characters")
    return raw


def _type_word(tp: Any) -> str:
    origin = typing.get_origin(tp) or tp
    return {bool: "a boolean", int: "an integer", str: "a string", list: "a list"}.get(
        origin, "an object"
    )


def _check_template(template: Mapping[str, Any], problems: list[str]) -> None:
    pod_spec = template.get("spec")
    containers = pod_spec.get("containers") if isinstance(pod_spec, Mapping) else None
    if not isinstance(containers, list) or not containers:
        problems.append("spec.template.spec.containers: give at least one application container")
        return
    for i, container in enumerate(containers):
        if not isinstance(container, Mapping) or not container.get("name"):
            problems.append(f"spec.template.spec.containers[{i}]: needs a name")
        elif container["name"] == "raftpod":
            problems.append(
                f"spec.template.spec.containers[{i}]: the name 'raftpod' is reserved "
                "for the injected sidecar"
            )


def majority(voters: int) -> int:
    """The smallest quorum of ``voters``."""
    return voters // 2 + 1
