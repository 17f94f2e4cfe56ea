"""The admin token is cached by file identity, yet every kind of rotation shows at once."""

from __future__ import annotations

import os
from pathlib import Path

from raftpod_sidecar.config import FileText, NodeConfig, parse


def _config(tmp_path: Path, token: Path) -> NodeConfig:
    flags = {
        "--id": "n1",
        "--data-dir": str(tmp_path / "data"),
        "--peers": "n1=127.0.0.1:7000",
        "--admin-token-file": str(token),
    }
    return parse([part for item in flags.items() for part in item])


def _settled_reader() -> FileText:
    """A reader that caches even a file written a moment ago (as if it were old)."""
    texts = FileText()
    texts.SETTLE_NS = 0
    return texts


def test_admin_token_is_stripped_and_empty_means_none(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("  first-token\n")
    config = _config(tmp_path, token)
    assert config.admin_token() == "first-token"
    token.write_text("\n")
    assert config.admin_token() is None


def test_same_size_rewrite_right_after_a_read_is_seen(tmp_path: Path) -> None:
    # File times tick coarsely: without the settle window this rewrite (same inode,
    # same size, on most kernels the same coarse mtime) could be served from the cache.
    token = tmp_path / "token"
    token.write_text("aaaa")
    config = _config(tmp_path, token)
    assert config.admin_token() == "aaaa"
    token.write_text("bbbb")
    assert config.admin_token() == "bbbb"


def test_atomic_replace_is_seen_by_a_caching_reader(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("old-token")
    texts = _settled_reader()
    assert texts.read(token) == "old-token"
    staged = tmp_path / "token.new"
    staged.write_text("new-token")
    os.replace(staged, token)
    assert texts.read(token) == "new-token"


def test_kubernetes_secret_symlink_swap_is_seen(tmp_path: Path) -> None:
    """A mounted Secret: token -> ..data/token, ..data -> a dated dir, swapped atomically."""
    for version, text in (("..v1", "token-one"), ("..v2", "token-two")):
        (tmp_path / version).mkdir()
        (tmp_path / version / "token").write_text(text)
    (tmp_path / "..data").symlink_to("..v1")
    (tmp_path / "token").symlink_to("..data/token")
    texts = _settled_reader()
    assert texts.read(tmp_path / "token") == "token-one"
    (tmp_path / "..data_tmp").symlink_to("..v2")
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    assert texts.read(tmp_path / "token") == "token-two"
