"""A restore that cannot succeed, read from the restoring member's pod status.

Ordinal 0 alone restores (see manifests.py): its sidecar downloads the backup
and verifies checksum, format and metadata before anything serves. When it
cannot (object missing or corrupt, credentials refused) the sidecar exits
non-zero and the kubelet keeps restarting it, so nothing ever serves. After
``RESTORE_CRASHES`` such exits `restore_failure` names the problem, and the
operator shows phase ``Failed``. It is level-based: a later start that
succeeds (a fixed Secret) carries on as usual.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from raftpod_operator.manifests import SIDECAR_NAME

RESTORE_CRASHES = 2  # one exit may be a blip (S3 briefly unreachable); two is a failure
MESSAGE_LIMIT = 600


def _sidecar_status(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    status = pod.get("status") or {}
    for entry in (status.get("initContainerStatuses") or []) + (
        status.get("containerStatuses") or []
    ):
        if entry.get("name") == SIDECAR_NAME:
            return entry  # type: ignore[no-any-return]
    return None


def restore_failure(pod: Mapping[str, Any] | None) -> str | None:
    """Why the restoring member cannot start, or None while it may still succeed."""
    entry = _sidecar_status(pod) if pod else None
    if entry is None:
        return None
    waiting = (entry.get("state") or {}).get("waiting") or {}
    if waiting.get("reason") == "CreateContainerConfigError":
        return f"the sidecar cannot start: {waiting.get('message', '')}".strip()
    terminated = (entry.get("state") or {}).get("terminated") or (
        (entry.get("lastState") or {}).get("terminated") or {}
    )
    code = terminated.get("exitCode", 0)
    if int(entry.get("restartCount") or 0) < RESTORE_CRASHES or code == 0:
        return None
    tail = str(terminated.get("message") or "").strip()[-MESSAGE_LIMIT:]
    detail = tail or "see `kubectl logs <pod> -c raftpod --previous`"
    return f"the sidecar exited with code {code} {entry.get('restartCount')} times: {detail}"
