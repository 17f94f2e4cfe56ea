"""A stable, readable text form of the core's values, for golden tests and debugging.

The form only depends on the values (sorted where a mapping is involved), so
the same run always prints the same text.
"""

from __future__ import annotations

from .confchange import decode_conf_change
from .messages import ConfState, Entry, EntryType, HardState, Message, MessageType, Ready, Snapshot
from .node import Status


def describe_conf(conf: ConfState) -> str:
    voters = " ".join(conf.voters())
    learners = " ".join(conf.learners())
    text = f"voters=({voters})"
    return f"{text} learners=({learners})" if learners else text


def describe_entry(e: Entry) -> str:
    head = f"{e.term}/{e.index}"
    if e.type == EntryType.CONF_CHANGE:
        try:
            cc = decode_conf_change(e.data)
        except ValueError:
            return f"{head} conf <malformed>"
        addr = f" {cc.address}" if cc.address else ""
        return f"{head} conf {cc.type.name.lower().replace('_', '-')} {cc.node_id}{addr}"
    if not e.data and not e.client:
        return f"{head} noop"
    session = f" @{e.client}:{e.seq}" if e.client else ""
    return f"{head} {_bytes(e.data)}{session}"


def describe_entries(entries: tuple[Entry, ...] | list[Entry]) -> str:
    return "[" + ", ".join(describe_entry(e) for e in entries) + "]"


def describe_snapshot(s: Snapshot) -> str:
    return f"snap={s.meta.term}/{s.meta.index} {describe_conf(s.meta.conf)} data={_bytes(s.data)}"


def describe_hard_state(hs: HardState) -> str:
    return f"term={hs.term} vote={hs.vote or '-'} commit={hs.commit}"


def describe_message(m: Message) -> str:
    parts = [f"{m.frm}->{m.to} {m.type.name}"]
    t = m.type
    if m.term:
        parts.append(f"term={m.term}")
    if t in (MessageType.APP, MessageType.VOTE, MessageType.PRE_VOTE):
        parts.append(f"log={m.log_term}/{m.index}")
    elif m.index:
        parts.append(f"index={m.index}")
    if t == MessageType.APP or m.commit:
        parts.append(f"commit={m.commit}")
    if m.entries:
        parts.append(f"entries={describe_entries(m.entries)}")
    if m.reject:
        parts.append("rejected")
        if t in (MessageType.APP_RESP, MessageType.HEARTBEAT_RESP):
            parts.append(f"hint={m.hint_term}/{m.reject_hint}")
    if m.context:
        parts.append(f"ctx={_bytes(m.context)}")
    if m.snapshot is not None:
        parts.append(describe_snapshot(m.snapshot))
    if t in (MessageType.SNAP, MessageType.SNAP_RESP):
        parts.append(f"offset={m.chunk_offset}")
        if m.chunk_done:
            parts.append("done")
    return " ".join(parts)


def describe_ready(rd: Ready) -> list[str]:
    lines: list[str] = []
    if rd.soft_state is not None:
        lines.append(f"role={rd.soft_state.role.name} leader={rd.soft_state.leader or '-'}")
    if rd.hard_state is not None:
        lines.append(f"hard state: {describe_hard_state(rd.hard_state)}")
    if rd.entries:
        lines.append("entries:")
        lines.extend(f"  {describe_entry(e)}" for e in rd.entries)
    if rd.snapshot is not None:
        lines.append(f"snapshot: {describe_snapshot(rd.snapshot)}")
    if rd.committed_entries:
        lines.append("committed:")
        lines.extend(f"  {describe_entry(e)}" for e in rd.committed_entries)
    if rd.messages:
        lines.append("messages:")
        lines.extend(f"  {describe_message(m)}" for m in rd.messages)
    if rd.read_states:
        lines.append("read states:")
        lines.extend(f"  index={r.index} ctx={_bytes(r.context)}" for r in rd.read_states)
    return lines


def describe_status(st: Status) -> list[str]:
    lease = " lease" if st.lease_valid else ""
    transfer = f" transferee={st.transferee}" if st.transferee else ""
    lines = [
        f"{st.id} {st.role.name} term={st.term} leader={st.leader or '-'} commit={st.commit} "
        f"applied={st.applied} log={st.first_index}..{st.last_index}{lease}{transfer}",
        f"  conf: {describe_conf(st.conf)}",
    ]
    for peer, pr in st.progress.items():
        active = " active" if pr.recent_active else ""
        lines.append(f"  {peer}: match={pr.match} next={pr.next} {pr.state.name}{active}")
    return lines


def _bytes(data: bytes) -> str:
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return "0x" + data.hex()
    return repr(text) if text.isprintable() else "0x" + data.hex()
