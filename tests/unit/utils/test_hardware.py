"""The OpenMP wait policy follows how busy the machine is when a command starts."""

from __future__ import annotations

from tunesmith.utils.hardware import busy_share, openmp_wait_policy


def test_passive_only_when_other_work_holds_half_the_cpu() -> None:
    assert openmp_wait_policy(busy=0.8) == "PASSIVE"
    assert openmp_wait_policy(busy=0.5) == "PASSIVE"
    assert openmp_wait_policy(busy=0.1) is None


def test_busy_share_is_a_fraction() -> None:
    share = busy_share(0.05)
    assert share is None or 0.0 <= share <= 1.0
