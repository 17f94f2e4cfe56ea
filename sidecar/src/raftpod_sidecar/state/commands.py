"""Commands carried in log entries, as compact msgpack arrays.

Every command is ``[opcode, *fields]`` (no field names on the wire, like
``raft.messages``). ``decode`` validates everything, because a command read
back from the log must become an ``invalid_command`` result, never an
exception inside ``apply``; ``encode(cmd, check=True)`` runs the same
validation at proposal time so the app API can answer 400 early.

Limits: keys are non-empty UTF-8 strings of at most ``MAX_KEY_BYTES`` (4 KiB,
etcd has 1.5 MiB requests but short keys keep the sorted index cheap); values
are bytes with no limit here (the app API bounds request size). Lease TTLs are
whole seconds in ``[1, MAX_TTL_SECONDS]``. ``prev_revision=None`` means no
compare; ``0`` means "the key must not exist". A txn may not write the same
key twice (etcd's rule: one revision per txn, so two writes to one key would
give two events at one revision).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import Any, NamedTuple

import msgpack

from raftpod_sidecar.state.errors import InvalidCommandError

MAX_KEY_BYTES = 4096
INT64_MAX = 2**63 - 1
MAX_TTL_SECONDS = 10 * 365 * 24 * 3600


class Op(IntEnum):
    PUT = 1
    DELETE = 2
    TXN = 3
    LEASE_GRANT = 4
    LEASE_REVOKE = 5
    LOG_APPEND = 6
    GET = 7  # inside a txn only
    RANGE = 8  # inside a txn only


class CompareTarget(IntEnum):
    """What a txn compare looks at; an absent key has 0 for every number."""

    VALUE = 0
    VERSION = 1
    CREATE_REVISION = 2
    MOD_REVISION = 3
    LEASE = 4


class CompareOp(IntEnum):
    EQUAL = 0
    NOT_EQUAL = 1
    LESS = 2
    GREATER = 3


COMPARE_TARGETS: dict[str, CompareTarget] = {t.name.lower(): t for t in CompareTarget}
"""App API spelling of targets: ``value``, ``version``, ``create_revision``, ..."""

COMPARE_OPS: dict[str, CompareOp] = {
    "=": CompareOp.EQUAL,
    "!=": CompareOp.NOT_EQUAL,
    "<": CompareOp.LESS,
    ">": CompareOp.GREATER,
}
"""App API spelling of compare operators."""


class Put(NamedTuple):
    key: str
    value: bytes
    lease: int = 0
    prev_revision: int | None = None


class Delete(NamedTuple):
    key: str
    prev_revision: int | None = None


class Get(NamedTuple):
    key: str


class Range(NamedTuple):
    """Keys starting with ``prefix`` (all keys for ``""``); ``limit=0`` is unlimited."""

    prefix: str
    limit: int = 0


class Compare(NamedTuple):
    """``target(key) op value``; ``value`` is bytes for VALUE, an int otherwise."""

    target: CompareTarget
    op: CompareOp
    key: str
    value: bytes | int


TxnOp = Put | Delete | Get | Range


class Txn(NamedTuple):
    compare: tuple[Compare, ...] = ()
    success: tuple[TxnOp, ...] = ()
    failure: tuple[TxnOp, ...] = ()


class LeaseGrant(NamedTuple):
    ttl: int


class LeaseRevoke(NamedTuple):
    lease_id: int


class LogAppend(NamedTuple):
    data: bytes


Command = Put | Delete | Txn | LeaseGrant | LeaseRevoke | LogAppend


def encode(cmd: Command, *, check: bool = False) -> bytes:
    """The entry payload for ``cmd``; ``check`` validates it (InvalidCommandError)."""
    try:
        data: bytes = msgpack.packb(_to_array(cmd), use_bin_type=True)
    except OverflowError as exc:  # beyond 64 bits: no field check below would see it
        raise InvalidCommandError(
            f"a number in the request is out of range: integers are at most {INT64_MAX}"
        ) from exc
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        raise InvalidCommandError(f"cannot encode command: {exc}") from exc
    if check:
        decode(data)
    return data


def decode(data: bytes) -> Command:
    """Parse and validate an entry payload; raises InvalidCommandError with the reason."""
    try:
        raw = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise InvalidCommandError(f"not a msgpack command: {exc}") from exc
    if not isinstance(raw, list) or not raw:
        raise InvalidCommandError("a command must be a non-empty array")
    parse = _PARSERS.get(raw[0]) if type(raw[0]) is int else None
    if parse is None:
        raise InvalidCommandError(f"unknown command opcode {raw[0]!r}")
    return parse(raw)


# --- encoding ---------------------------------------------------------------


def _to_array(cmd: Command | TxnOp) -> list[Any]:
    if isinstance(cmd, Put):
        return [Op.PUT, cmd.key, cmd.value, cmd.lease, cmd.prev_revision]
    if isinstance(cmd, Delete):
        return [Op.DELETE, cmd.key, cmd.prev_revision]
    if isinstance(cmd, Get):
        return [Op.GET, cmd.key]
    if isinstance(cmd, Range):
        return [Op.RANGE, cmd.prefix, cmd.limit]
    if isinstance(cmd, Txn):
        return [
            Op.TXN,
            [[c.target, c.op, c.key, c.value] for c in cmd.compare],
            [_to_array(op) for op in cmd.success],
            [_to_array(op) for op in cmd.failure],
        ]
    if isinstance(cmd, LeaseGrant):
        return [Op.LEASE_GRANT, cmd.ttl]
    if isinstance(cmd, LeaseRevoke):
        return [Op.LEASE_REVOKE, cmd.lease_id]
    return [Op.LOG_APPEND, cmd.data]


# --- decoding and validation ------------------------------------------------


def _fields(raw: list[Any], count: int, what: str) -> list[Any]:
    if len(raw) != count + 1:
        raise InvalidCommandError(f"{what} takes {count} fields, got {len(raw) - 1}")
    return raw[1:]


def _key(value: Any, what: str = "key", *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidCommandError(f"{what} must be a string")
    if not value and not allow_empty:
        raise InvalidCommandError(f"{what} must not be empty")
    # A char is at most 4 UTF-8 bytes: only long strings need measuring.
    if len(value) > MAX_KEY_BYTES // 4 and len(value.encode()) > MAX_KEY_BYTES:
        raise InvalidCommandError(f"{what} is longer than {MAX_KEY_BYTES} bytes")
    return value


def _int(value: Any, what: str, low: int = 0, high: int = INT64_MAX) -> int:
    if type(value) is not int or not low <= value <= high:
        raise InvalidCommandError(f"{what} must be an integer in [{low}, {high}]")
    return value


def _bytes(value: Any, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise InvalidCommandError(f"{what} must be bytes")
    return value


def _prev_revision(value: Any) -> int | None:
    return None if value is None else _int(value, "prev_revision")


def _put(raw: list[Any]) -> Put:
    key, value, lease, prev = _fields(raw, 4, "put")
    return Put(_key(key), _bytes(value, "value"), _int(lease, "lease"), _prev_revision(prev))


def _delete(raw: list[Any]) -> Delete:
    key, prev = _fields(raw, 2, "delete")
    return Delete(_key(key), _prev_revision(prev))


def _get(raw: list[Any]) -> Get:
    (key,) = _fields(raw, 1, "get")
    return Get(_key(key))


def _range(raw: list[Any]) -> Range:
    prefix, limit = _fields(raw, 2, "range")
    return Range(_key(prefix, "prefix", allow_empty=True), _int(limit, "limit"))


_TARGET_CODES = frozenset(CompareTarget)
_OP_CODES = frozenset(CompareOp)


def _compare(raw: Any) -> Compare:
    if not isinstance(raw, list) or len(raw) != 4:
        raise InvalidCommandError("a compare must be [target, op, key, value]")
    target, op, key, value = raw
    if type(target) is not int or target not in _TARGET_CODES:
        raise InvalidCommandError(f"unknown compare target {target!r}")
    if type(op) is not int or op not in _OP_CODES:
        raise InvalidCommandError(f"unknown compare op {op!r}")
    if target == CompareTarget.VALUE:
        value = _bytes(value, "compare value")
    else:
        value = _int(value, "compare value")
    return Compare(CompareTarget(target), CompareOp(op), _key(key), value)


_TXN_OP_PARSERS: dict[int, Callable[[list[Any]], TxnOp]] = {
    Op.PUT: _put,
    Op.DELETE: _delete,
    Op.GET: _get,
    Op.RANGE: _range,
}


def _txn_ops(raw: Any, what: str) -> tuple[TxnOp, ...]:
    if not isinstance(raw, list):
        raise InvalidCommandError(f"txn {what} must be an array")
    ops: list[TxnOp] = []
    written: set[str] = set()
    for item in raw:
        code = item[0] if isinstance(item, list) and item else None
        parse = _TXN_OP_PARSERS.get(code) if type(code) is int else None
        if parse is None:
            raise InvalidCommandError(f"txn {what} ops must be put, delete, get or range")
        op = parse(item)
        if isinstance(op, Put | Delete):
            if op.prev_revision is not None:
                raise InvalidCommandError("prev_revision is not allowed in a txn: use compare")
            if op.key in written:
                raise InvalidCommandError(f"txn {what} writes key {op.key!r} twice")
            written.add(op.key)
        ops.append(op)
    return tuple(ops)


def _txn(raw: list[Any]) -> Txn:
    compare, success, failure = _fields(raw, 3, "txn")
    if not isinstance(compare, list):
        raise InvalidCommandError("txn compare must be an array")
    return Txn(
        tuple(_compare(c) for c in compare),
        _txn_ops(success, "success"),
        _txn_ops(failure, "failure"),
    )


def _lease_grant(raw: list[Any]) -> LeaseGrant:
    (ttl,) = _fields(raw, 1, "lease_grant")
    return LeaseGrant(_int(ttl, "ttl", 1, MAX_TTL_SECONDS))


def _lease_revoke(raw: list[Any]) -> LeaseRevoke:
    (lease_id,) = _fields(raw, 1, "lease_revoke")
    return LeaseRevoke(_int(lease_id, "lease id", 1))


def _log_append(raw: list[Any]) -> LogAppend:
    (data,) = _fields(raw, 1, "log_append")
    return LogAppend(_bytes(data, "data"))


_PARSERS: dict[int, Callable[[list[Any]], Command]] = {
    Op.PUT: _put,
    Op.DELETE: _delete,
    Op.TXN: _txn,
    Op.LEASE_GRANT: _lease_grant,
    Op.LEASE_REVOKE: _lease_revoke,
    Op.LOG_APPEND: _log_append,
}
