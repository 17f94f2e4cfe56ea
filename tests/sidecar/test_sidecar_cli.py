"""The command line: flag validation with env twins, and ``dev-cluster`` start/stop."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from raftpod_sidecar import backupstore
from raftpod_sidecar.bench.clusters import free_port_base
from raftpod_sidecar.config import ConfigError, parse
from raftpod_sidecar.devcluster import PORT_STRIDE

from .cluster import child_env, http, poll


def test_flags_env_twins_and_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAFTPOD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RAFTPOD_PEERS", "n1=10.0.0.1:7000,n2=10.0.0.2:7000")
    monkeypatch.setenv("RAFTPOD_HEARTBEAT_MS", "40")
    cfg = parse(["--id", "n1", "--heartbeat-ms", "30"])
    assert cfg.data_dir == tmp_path
    assert cfg.peers == {"n1": "10.0.0.1:7000", "n2": "10.0.0.2:7000"}
    assert cfg.heartbeat_ms == 30  # the command line wins over the environment
    assert cfg.heartbeat_ticks == 3 and cfg.election_ticks == (15, 30)
    assert str(cfg.api_listen) == "127.0.0.1:7001"
    assert str(cfg.peer_listen) == "0.0.0.0:7000" and cfg.admin_listen.port == 7002
    assert cfg.advertise_peer == "10.0.0.1:7000"
    assert cfg.advertise_admin == "http://10.0.0.1:7002"
    assert cfg.max_request_bytes == 1 << 20


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data-dir", "d", "--peers", "n1=a:1"], "--id is required"),
        (["--id", "n1", "--peers", "n1=a:1"], "--data-dir is required"),
        (["--id", "n1", "--data-dir", "d"], "--peers id=host:port"),
        (["--id", "n1", "--data-dir", "d", "--peers", "n2=a:1"], "must include this node"),
        (["--id", "n1", "--data-dir", "d", "--peers", "n1=nope"], "expected host:port"),
        (["--id", "n1", "--data-dir", "d", "--peers", "n1=a:1", "--election-timeout-ms", "300:100"],
         "hi must exceed lo"),
        (["--id", "n1", "--data-dir", "d", "--peers", "n1=a:1", "--log-format", "xml"],
         "json, logfmt"),
        (["--id", "n1", "--data-dir", "d", "--peers", "n1=a:1", "--tls-cert", "c"], "go together"),
        (["--id", "n1", "--data-dir", "d", "--join", "somewhere"], "admin URL"),
        (["--id", "n1", "--data-dir", "d", "--peers", "n1=a:1", "--snapshot-entries", "0"],
         "positive integer"),
        (["--id", "n/1", "--data-dir", "d", "--peers", "n/1=a:1"], "--id: node id 'n/1' must be"),
        (["--id", "bad id", "--data-dir", "d", "--join", "http://x:7002"], "node id 'bad id'"),
        (["--id", "n1", "--data-dir", "d", "--peers", "n1=a:1,-n2=b:1"],
         "--peers: node id '-n2' must be 1-253 letters"),
    ],
)  # fmt: skip
def test_invalid_flags_are_clear_errors(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse(argv)


CLI = [sys.executable, "-m", "raftpod_sidecar.cli"]


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, check=False, text=True, timeout=60, env=child_env()
    )


def _run_node(*args: str) -> subprocess.CompletedProcess[str]:
    return _run_cli("--id", "n1", *args)


def test_bad_flags_exit_2_with_the_reason(tmp_path: Path) -> None:
    done = _run_node("--data-dir", str(tmp_path))
    assert done.returncode == 2
    assert "give --peers" in done.stderr


@pytest.mark.parametrize("flag", ["--peer-listen", "--api-listen", "--admin-listen"])
def test_a_taken_port_is_a_start_up_error_naming_the_flag(tmp_path: Path, flag: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        listen = dict.fromkeys(("--peer-listen", "--api-listen", "--admin-listen"), "127.0.0.1:0")
        listen[flag] = busy
        done = _run_node(
            "--data-dir", str(tmp_path), "--peers", f"n1={listen['--peer-listen']}",
            *(arg for pair in listen.items() for arg in pair),
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f'error="{flag} {busy}: cannot listen: Address already in use"' in done.stderr
    assert "Traceback" not in done.stderr


def test_restore_from_a_corrupt_backup_refuses_to_start(tmp_path: Path) -> None:
    store = backupstore.open_store((tmp_path / "backup").as_uri())
    ref = store.put(backupstore.SnapshotInfo("c1", index=5, term=2), io.BytesIO(b"snapshot"))
    written = Path(ref.url.removeprefix("file://"))
    written.write_bytes(written.read_bytes().replace(b"snapshot", b"tampered"))
    done = _run_node(
        "--data-dir", str(tmp_path / "data"), "--peers", "n1=127.0.0.1:1",
        "--restore-from", (tmp_path / "backup").as_uri(),
        "--api-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
    )  # fmt: skip
    assert done.returncode == 2
    assert "is corrupt: sha256" in done.stderr


def test_dev_cluster_starts_serves_and_stops(tmp_path: Path) -> None:
    base = free_port_base(3 * PORT_STRIDE)
    out = tmp_path / "out.txt"
    with open(out, "wb") as sink:
        proc = subprocess.Popen(
            [*CLI, "dev-cluster", "--nodes", "3",
             "--data-dir", str(tmp_path / "data"), "--base-port", str(base)],
            stdout=sink, stderr=subprocess.STDOUT, env=child_env(), start_new_session=True,
        )  # fmt: skip
    try:
        # the sample commands appear once they work: no waiting for a leader here
        poll(lambda: "curl -X PUT" in out.read_text(), 30, "the sample commands")
        app = f"http://127.0.0.1:{base + 21}"  # node 3
        assert http("PUT", app + "/v1/kv/greeting", data=b"hello").status_code == 200
        assert http("GET", f"http://127.0.0.1:{base + 1}/v1/kv/greeting").content == b"hello"
        text = out.read_text()
        assert f"n2: app http://127.0.0.1:{base + 11}  admin http://127.0.0.1:{base + 12}" in text
        assert re.search(r"all 3 nodes ready in \d+\.\d s\ntry:  curl -X PUT", text)
        pids = [int(p) for p in re.findall(r"\(pid (\d+)\)", text)]
        assert len(pids) == 3
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:  # the test failed: kill dev-cluster and its nodes
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "all nodes stopped" in out.read_text()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert (tmp_path / "data" / "n1" / "wal").is_dir()


def test_dev_cluster_refuses_ports_in_use_before_starting_any_node(tmp_path: Path) -> None:
    base = free_port_base(3 * PORT_STRIDE)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + 12))  # n2's admin port
        taken.listen()
        done = _run_cli(
            "dev-cluster", "--data-dir", str(tmp_path / "data"), "--base-port", str(base)
        )
    assert done.returncode == 2
    assert f"already in use: 127.0.0.1:{base + 12} (n2 admin);" in done.stderr
    assert "--base-port" in done.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("nodes", [2, 5])
def test_dev_cluster_refuses_another_size_over_an_existing_cluster(
    tmp_path: Path, nodes: int
) -> None:
    # nodes added this way bootstrapped their own membership and stayed pre-candidates
    for name in ("n1", "n2", "n3"):
        (tmp_path / "data" / name / "wal").mkdir(parents=True)
    done = _run_cli(
        "dev-cluster", "--nodes", str(nodes),
        "--data-dir", str(tmp_path / "data"), "--base-port", str(free_port_base(60)),
    )  # fmt: skip
    assert done.returncode == 2
    assert "holds a cluster of n1, n2, n3; run it with --nodes 3" in done.stderr
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["n1", "n2", "n3"]


def test_dev_cluster_whose_nodes_all_fail_says_so_and_exits_1(tmp_path: Path) -> None:
    # they used to fail before the first look, and the command said only "all nodes
    # stopped", with status 0
    done = _run_cli(
        "dev-cluster", "--data-dir", str(tmp_path / "data"),
        "--base-port", str(free_port_base(3 * PORT_STRIDE)),
        "--", "--restore-from", (tmp_path / "no-backups").as_uri(),
    )  # fmt: skip
    assert done.returncode == 1
    for i in (1, 2, 3):
        assert f"dev-cluster: n{i} exited with status 2" in done.stdout
    assert "curl" not in done.stdout  # no sample commands for a cluster that never served
    assert "--restore-from: no backups under" in done.stdout + done.stderr


def test_a_node_process_freezes_its_start_up_objects_and_widens_the_young_generation() -> None:
    probe = (
        "import gc; from raftpod_sidecar.cli import tune_gc, GC_YOUNG_THRESHOLD as T;"
        "before = gc.get_threshold(); tune_gc(); after = gc.get_threshold();"
        "print(gc.get_freeze_count(), after[0] == T, after[1:] == before[1:])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    frozen, young, older = out.stdout.split()
    assert int(frozen) > 1000, "the imported modules' objects should be frozen"
    assert (young, older) == ("True", "True")
