"""Backups in a local directory (``file://``): the embedded default for ``dev-cluster``.

Each object is written to a hidden ``.<name>.partial`` file, fsynced, renamed
into place and the directory fsynced, so a crash leaves either nothing or a
whole object; hidden files are ignored by listings.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from .errors import BackupError, BackupNotFoundError
from .format import CHUNK_SIZE, BackupMeta
from .store import Clock, ObjectStore, utc_now
from .url import FileLocation


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileStore(ObjectStore):
    """A BackupStore over a directory tree; keys are relative paths."""

    def __init__(self, location: FileLocation, clock: Clock = utc_now) -> None:
        super().__init__(location, clock)
        self.root = location.root

    def object_url(self, key: str) -> str:
        return (self.root / key).as_uri()

    def _write_atomically(self, key: str, chunks: Iterator[bytes]) -> int:
        final = self.root / key
        partial = final.with_name(f".{final.name}.partial")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            size = 0
            with open(partial, "wb") as fh:
                for chunk in chunks:
                    fh.write(chunk)
                    size += len(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            partial.rename(final)
            fsync_dir(final.parent)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise BackupError(f"could not write {final}: {exc.strerror or exc}") from exc
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return size

    def _upload(self, key: str, meta: BackupMeta, chunks: Iterator[bytes]) -> int:
        return self._write_atomically(key, chunks)

    def _download(self, key: str) -> tuple[Iterator[bytes], dict[str, str]]:
        path = self.root / key
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed by the generator below
        except FileNotFoundError:
            raise BackupNotFoundError(f"no backup at {path.as_uri()}") from None
        except OSError as exc:
            raise BackupError(f"cannot read {path}: {exc.strerror or exc}") from exc

        def chunks() -> Iterator[bytes]:
            with fh:
                while chunk := fh.read(CHUNK_SIZE):
                    yield chunk

        return chunks(), {}

    def _keys(self) -> list[tuple[str, int]]:
        found: list[tuple[str, int]] = []
        if not self.root.is_dir():
            return found
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            base = Path(dirpath).relative_to(self.root)
            for name in filenames:
                if not name.startswith("."):
                    rel = (base / name).as_posix()
                    found.append((rel, (Path(dirpath) / name).stat().st_size))
        return found

    def _delete(self, key: str) -> None:
        try:
            (self.root / key).unlink(missing_ok=True)
        except OSError as exc:
            raise BackupError(f"could not delete {self.root / key}: {exc.strerror}") from exc

    def _write_small(self, key: str, data: bytes) -> None:
        self._write_atomically(key, iter((data,)))

    def _read_small(self, key: str) -> bytes | None:
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BackupError(f"cannot read {self.root / key}: {exc.strerror or exc}") from exc
