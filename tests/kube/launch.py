"""How a container becomes a local process inside its pod's namespaces.

There are no images: a table maps image names (fnmatch patterns) to a local
entry point. The process runs under `ip netns exec <ns>` (the pod's network
and its /etc/hosts) plus `unshare --uts` (the pod's hostname); then
`sandbox_init.py` sets the hostname, bind-mounts the volumes inside that
private mount namespace (parents first, nothing created on the host) and
execs the container's argv.
"""

from __future__ import annotations

import fnmatch
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.kube.binaries import REPO_ROOT


@dataclass(frozen=True)
class ImageRule:
    """What running an image means here: its entry point and environment."""

    entrypoint: tuple[str, ...] = ()  # used when the container has no command
    path_prefix: tuple[str, ...] = ()  # prepended to PATH
    env: Mapping[str, str] = field(default_factory=dict)


ImageTable = Mapping[str, ImageRule]


def default_images() -> dict[str, ImageRule]:
    """`testapp` runs tests/kube/testapp.py; `raftpod*` runs its command from the venv."""
    venv_bin = str(Path(sys.executable).parent)
    repo_env = {"PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
    return {
        "testapp*": ImageRule(
            entrypoint=(sys.executable, "-m", "tests.kube.testapp"),
            path_prefix=(venv_bin,),
            env=repo_env,
        ),
        "*raftpod*": ImageRule(path_prefix=(venv_bin,), env=repo_env),
    }


def find_rule(images: ImageTable, image: str) -> ImageRule | None:
    """The first rule whose pattern matches `image`."""
    for pattern, rule in images.items():
        if fnmatch.fnmatchcase(image, pattern):
            return rule
    return None


_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)|\$\$")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in command, args and env values ($$ is a literal $)."""

    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        return env.get(name, match.group(0))

    return _VAR_REF.sub(repl, text)


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool = False


SANDBOX_INIT = Path(__file__).with_name("sandbox_init.py")


def kept_host_paths() -> list[str]:
    """What pod programs run from (this checkout and its venv): visible under any volume.

    A checkout under /tmp would otherwise vanish behind an emptyDir at /tmp.
    """
    return sorted({str(REPO_ROOT), sys.prefix})


def sandbox_argv(
    netns: str, hostname: str, mounts: Sequence[Mount], workdir: str | None, argv: Sequence[str]
) -> list[str]:
    """argv that runs `argv` in the pod's network, UTS and a private mount namespace."""
    spec = {
        "hostname": hostname,
        "mounts": [
            {"source": str(m.source), "target": m.target, "read_only": m.read_only} for m in mounts
        ],
        "workdir": workdir or "",
        "keep": kept_host_paths(),
    }
    init = [sys.executable, "-I", "-S", str(SANDBOX_INIT), json.dumps(spec)]
    return ["ip", "netns", "exec", netns, "unshare", "--uts", *init, *argv]


def container_argv(
    rule: ImageRule, container: Mapping[str, Any], env: Mapping[str, str]
) -> list[str]:
    """command (or the image's entry point) plus args, with $(VAR) expanded."""
    command = [str(c) for c in container.get("command") or []] or list(rule.entrypoint)
    args = [str(a) for a in container.get("args") or []]
    if not command and not args:
        raise ValueError("container has no command and its image rule no entry point")
    return [expand(part, env) for part in command + args]
