"""LeaseClock: the leader's deadlines, keepalives, expiry reports and the reset on election."""

from __future__ import annotations

from raftpod_sidecar.state.leases import LeaseClock


def test_lease_expires_after_ttl_unless_kept_alive() -> None:
    clock = LeaseClock(retry_seconds=100.0)
    clock.track(7, ttl=10, now=100.0)
    clock.track(8, ttl=10, now=100.0)
    assert clock.expired(109.9) == []
    assert clock.keepalive(7, now=105.0) == 10
    assert clock.expired(110.0) == [8]
    assert clock.remaining(7, now=110.0) == 5.0
    assert clock.expired(114.9) == []
    assert clock.expired(115.0) == [7]


def test_expired_lease_is_reported_again_until_forgotten_and_refuses_keepalive() -> None:
    clock = LeaseClock(retry_seconds=2.0)
    clock.track(1, ttl=5, now=0.0)
    assert clock.expired(5.0) == [1]
    assert clock.keepalive(1, now=5.5) is None
    assert clock.remaining(1, now=5.5) == 0.0
    assert clock.expired(6.9) == []
    assert clock.expired(7.0) == [1]  # the revoke may have been lost: propose again
    clock.forget(1)
    assert clock.expired(100.0) == []
    assert clock.remaining(1, now=100.0) is None
    assert clock.keepalive(1, now=100.0) is None


def test_reset_on_becoming_leader_gives_every_lease_a_full_ttl() -> None:
    clock = LeaseClock(retry_seconds=100.0)
    clock.track(1, ttl=5, now=0.0)
    assert clock.expired(5.0) == [1]
    clock.reset({1: 5, 2: 30, 3: 5}, now=50.0)
    assert clock.expired(54.9) == []
    assert clock.keepalive(1, now=54.0) == 5
    assert clock.expired(55.0) == [3]
    assert clock.expired(59.0) == [1]
    assert clock.expired(80.0) == [2]


def test_many_keepalives_keep_the_heap_bounded() -> None:
    clock = LeaseClock()
    clock.track(1, ttl=1000, now=0.0)
    for i in range(1000):
        assert clock.keepalive(1, now=float(i)) == 1000
    assert len(clock._heap) <= 4 + 64
    assert clock.expired(1998.9) == []
    assert clock.expired(1999.0) == [1]
