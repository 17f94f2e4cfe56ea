"""sandbox_init.py on its own: mount order and mount points, in a throwaway mount namespace.

Needs root (it mounts), but no cluster: `unshare --mount` gives it a private
mount namespace, exactly what `ip netns exec` gives a container.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.kube.launch import SANDBOX_INIT, kept_host_paths

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")


def run_in_sandbox(
    mounts: list[dict[str, object]], script: str
) -> subprocess.CompletedProcess[str]:
    spec = {"hostname": "sandbox-test", "mounts": mounts, "workdir": "", "keep": kept_host_paths()}
    argv = ["unshare", "--mount", "--uts", "--propagation", "private"]
    argv += [sys.executable, "-I", "-S", str(SANDBOX_INIT), json.dumps(spec)]
    argv += [sys.executable, "-c", script]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_parents_first_and_missing_mount_points_only_inside(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    tmp_volume, conf, data = tmp_path / "tmp", tmp_path / "conf", tmp_path / "data"
    for directory in (tmp_volume, conf, data):
        directory.mkdir()
    (conf / "greeting").write_text("hello")
    ssl_dir = next(p for p in (Path("/etc/ssl"), Path("/etc/apt")) if p.is_dir())
    targets = {
        "under_tmp": f"/tmp/raftpod-testapp-{tag}/conf",
        "deep": f"/var/lib/raftpod-testapp-{tag}/a/b",
        "under_etc": f"/etc/raftpod-testapp-{tag}/tls",
        "under_existing": f"{ssl_dir}/raftpod-testapp-{tag}",
    }
    mounts: list[dict[str, object]] = [
        # the child first: mounted in spec order, /tmp would hide it
        {"source": str(conf), "target": targets["under_tmp"], "read_only": True},
        {"source": str(tmp_volume), "target": "/tmp", "read_only": False},
        {"source": str(data), "target": targets["deep"], "read_only": False},
        {"source": str(conf), "target": targets["under_etc"], "read_only": True},
        {"source": str(conf), "target": targets["under_existing"], "read_only": True},
    ]
    script = f"""
import json, os, socket
targets = {json.dumps(targets)}
out = {{k: open(v + "/greeting").read() for k, v in targets.items() if k != "deep"}}
open(targets["deep"] + "/written", "w").write("x")
out["passwd"] = open("/etc/passwd").read()
out["hostname"] = socket.gethostname()
try:
    open(targets["under_etc"] + "/new", "w")
    out["read_only"] = False
except OSError:
    out["read_only"] = True
print(json.dumps(out))
"""
    done = run_in_sandbox(mounts, script)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert {seen[k] for k in ("under_tmp", "under_etc", "under_existing")} == {"hello"}
    assert seen["passwd"] == Path("/etc/passwd").read_text()
    assert seen["hostname"] == "sandbox-test"
    assert seen["read_only"] is True
    assert (data / "written").read_text() == "x"
    # the conf mount point under /tmp was made in the /tmp volume, nothing on the host
    assert (tmp_volume / f"raftpod-testapp-{tag}" / "conf").is_dir()
    for path in targets.values():
        assert not Path(path).exists(), f"{path} was created on the host"
    assert not Path(f"/var/lib/raftpod-testapp-{tag}").exists()
    assert not Path(f"/etc/raftpod-testapp-{tag}").exists()


def test_missing_mount_point_directly_under_root_is_refused(tmp_path: Path) -> None:
    target = f"/raftpod-testapp-{uuid.uuid4().hex[:8]}"
    done = run_in_sandbox(
        [{"source": str(tmp_path), "target": target, "read_only": False}], "print('ran')"
    )
    assert done.returncode == 125
    assert "cannot add a directory" in done.stderr and "ran" not in done.stdout
    assert not Path(target).exists()
