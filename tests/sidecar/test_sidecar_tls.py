"""mTLS between peers and client-certificate auth on the admin API (no token configured)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from ..transport.certs import make_ca, write_node_files
from .cluster import Cluster, http


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_mtls_cluster_and_admin_client_certificates(tmp_path: Path) -> None:
    ca = make_ca()
    cluster = Cluster(tmp_path, 3)
    client = write_node_files(tmp_path / "client", ca, dns=("operator",))
    for node in cluster.nodes.values():
        files = write_node_files(tmp_path / f"{node.id}-tls", ca, dns=(node.id,))
        node.args += ["--tls-cert", files.cert, "--tls-key", files.key, "--tls-ca", files.ca]
        node.admin_scheme = "https"
        node.admin_kwargs = {"cert": (client.cert, client.key), "verify": False}
    try:
        cluster.start()
        leader = cluster.leader()
        follower = cluster.followers(leader)[0]
        # a follower forwards over HTTPS with its own certificate
        assert http("PUT", follower.app + "/v1/kv/secure", data=b"yes").status_code == 200
        assert http("GET", leader.app + "/v1/kv/secure").content == b"yes"
        assert "TimeoutError" not in leader.log_text()  # no stalled TLS handshakes
        status = http("GET", follower.admin + "/admin/status", **follower.admin_kwargs)
        assert status.status_code == 200 and status.json()["leader"] == leader.id
        anonymous = http("GET", follower.admin + "/admin/status", verify=False)
        assert anonymous.status_code == 401
        assert "client certificate" in anonymous.json()["message"]
        assert http("GET", follower.admin + "/readyz", verify=False).status_code == 200
        try:
            plain = http("GET", f"http://127.0.0.1:{follower.admin_port}/admin/status", timeout=3)
        except requests.ConnectionError:
            pass  # the listener speaks only TLS
        else:
            assert plain.status_code == 400
    except BaseException:
        print(cluster.dump_logs())
        raise
    finally:
        cluster.close()
