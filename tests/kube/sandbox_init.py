"""The first program of every pod container: hostname, volume mounts, then exec.

Run as a script (stdlib only, so it starts fast) inside the pod's network
namespace and the private mount namespace `ip netns exec` created, so nothing
it mounts is visible on the host. Usage:

    python -I -S sandbox_init.py '<json spec>' argv...

Volumes are bind-mounted parents first, as a container runtime does, so a
mount at /tmp never hides one at /tmp/x. A mountPath that does not exist is
never created on the host: its deepest existing ancestor is covered, in this
namespace only, by a tmpfs that re-binds every original entry (a mirror), and
the mount point is made inside that tmpfs. Inside a volume mounted here the
mount point is made in the volume, which the environment owns. Sources are
opened first and bound through /proc/self/fd, so a volume mounted at /tmp
does not hide the sources (under the environment's /tmp root) of the rest,
and the spec's ``keep`` paths (the checkout and venv the program runs from)
are bound back the same way wherever a volume covered them.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import stat
import sys
from collections.abc import Sequence
from typing import Any

MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
EXIT_SETUP_FAILED = 125  # what container runtimes return when the container cannot start

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    """mount(2), raising OSError with the paths involved."""
    encoded = [s.encode() if s else None for s in (source, target, fstype)]
    if _libc.mount(*encoded, flags, data.encode() if data else None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def depth(path: str) -> int:
    return len([part for part in os.path.normpath(path).split("/") if part])


def under(path: str, roots: Sequence[str]) -> bool:
    """Whether `path` is one of `roots` or below one of them."""
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def mirror(directory: str) -> None:
    """Cover `directory` with a tmpfs that shows the same entries, bound from the original."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        info = os.fstat(fd)
        names = os.listdir(fd)
        options = f"mode={stat.S_IMODE(info.st_mode):o},uid={info.st_uid},gid={info.st_gid}"
        mount("tmpfs", directory, "tmpfs", 0, options)
        for name in names:
            try:
                _mirror_entry(f"/proc/self/fd/{fd}/{name}", os.path.join(directory, name))
            except FileNotFoundError:
                continue  # removed on the host meanwhile (/tmp changes all the time)
    finally:
        os.close(fd)


def _mirror_entry(original: str, placeholder: str) -> None:
    """Show `original` (an entry of the covered directory) at `placeholder`."""
    mode = os.lstat(original).st_mode
    if stat.S_ISLNK(mode):
        os.symlink(os.readlink(original), placeholder)
        return
    if stat.S_ISDIR(mode):
        os.mkdir(placeholder)
    else:
        os.close(os.open(placeholder, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    try:
        mount(original, placeholder, None, MS_BIND | MS_REC)
    except FileNotFoundError:
        (os.rmdir if stat.S_ISDIR(mode) else os.unlink)(placeholder)
        raise


class MountPoints:
    """Where mount points may be made without touching the host's filesystem.

    Anything below a volume mounted here (the environment owns those), and
    the directories of a mirror's tmpfs, but not the host directories the
    mirror binds back.
    """

    def __init__(self) -> None:
        self.volumes: list[str] = []
        self.in_tmpfs: set[str] = set()

    def _writable(self, directory: str) -> bool:
        return directory in self.in_tmpfs or under(directory, self.volumes)

    def make(self, target: str, is_dir: bool) -> None:
        """Create `target` (and missing parents) in this namespace only."""
        target = os.path.normpath(target)
        missing = [target]
        while not os.path.isdir(parent := os.path.dirname(missing[-1])):
            missing.append(parent)
        if not self._writable(parent):
            if parent == "/":
                raise OSError(f"mountPath {target}: cannot add a directory to the host's /")
            mirror(parent)
            self.in_tmpfs.add(parent)
        for path in reversed(missing):
            if path != target or is_dir:
                os.mkdir(path)
                self.in_tmpfs.add(path)
            else:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _same_file(path: str, fd: int) -> bool:
    """Whether `path` still shows what `fd` was opened on (no volume covered it)."""
    try:
        seen = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (seen.st_dev, seen.st_ino) == (held.st_dev, held.st_ino)


def set_up(spec: dict[str, Any]) -> None:
    """Hostname, mounts (parents first, read-only remounts last) and working directory.

    Every source and kept path is opened before the first mount: a volume at
    /tmp would otherwise hide the sources of later volumes that live under
    /tmp, and the program itself when it runs from a checkout there.
    """
    socket.sethostname(spec["hostname"])
    mounts = sorted(spec["mounts"], key=lambda m: depth(m["target"]))
    sources = [os.open(m["source"], os.O_PATH) for m in mounts]
    kept = [(path, os.open(path, os.O_PATH)) for path in spec.get("keep", [])]
    points = MountPoints()
    for m, fd in zip(mounts, sources, strict=True):
        source = f"/proc/self/fd/{fd}"
        if not os.path.lexists(m["target"]):
            points.make(m["target"], os.path.isdir(source))
        mount(source, m["target"], None, MS_BIND)
        points.volumes.append(os.path.normpath(m["target"]))
    for fd in sources:
        os.close(fd)
    for path, fd in kept:
        if not _same_file(path, fd):
            if not os.path.lexists(path):
                points.make(path, True)
            mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        os.close(fd)
    for m in mounts:
        if m["read_only"]:
            mount(None, m["target"], None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    if spec.get("workdir"):
        os.chdir(spec["workdir"])


def main(argv: Sequence[str]) -> int:
    if len(argv) < 3:
        print("usage: sandbox_init.py SPEC ARGV...", file=sys.stderr)
        return 2
    try:
        set_up(json.loads(argv[1]))
        os.execvp(argv[2], list(argv[2:]))
    except OSError as exc:
        print(f"sandbox_init: {exc}", file=sys.stderr, flush=True)
    return EXIT_SETUP_FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv))
