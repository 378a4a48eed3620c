"""Rules of gtmhub_async.adaptive that mutation testing found unchecked (see tests/MUTATION.md)."""

from __future__ import annotations

import logging
import math

import pytest
from test_adaptive import Clock, accept, confirmed_at_30, core_at

from gtmhub_async.adaptive import AdaptiveParams, AdaptiveRate


def test_the_period_defaults_to_one_second_and_a_bad_rate_is_named() -> None:
    assert AdaptiveRate(10, clock=Clock()).time_period == 1.0
    with pytest.raises(ValueError, match=r"^max_rate must be positive, got 0$"):
        AdaptiveRate(0, clock=Clock())
    with pytest.raises(ValueError, match=r"^time_period must be positive, got -1$"):
        AdaptiveRate(1, -1, clock=Clock())


def test_a_fresh_limiter_knows_no_ceiling() -> None:
    core, _ = core_at(10)
    assert core.ceiling is None
    assert core.confirmed is False


def test_a_throttle_without_saturated_counts_as_a_client_that_was_not_waiting() -> None:
    core, clock = core_at(50)
    accept(core, clock, 3)
    core.on_throttled(1.0)
    assert core.rate() == pytest.approx(35)  # 70% of 50, not 99% of the 3 accepted


def test_interval_and_window_count_are_read_at_the_time_asked_not_the_clock() -> None:
    core, clock = core_at(100)
    accept(core, clock, 20)
    core.on_throttled(1.0, saturated=True)
    reopen = core.gate_until
    assert core.interval(reopen + 0.5) == pytest.approx(1.02 / 39.6)
    assert core.interval() == pytest.approx(1.02 / 19.8)  # the clock: the gate still closed
    assert core.accepted_in_window(clock.now + 5) == 0
    assert core.accepted_in_window() == 0  # the answers before were pruned at +5 s


def test_an_answer_exactly_one_window_old_has_left_the_window() -> None:
    # A 50 s period has a slack of exactly 1 s: the window is 51 s.
    core, clock = core_at(10, 50.0)
    assert core.slack == 1.0
    core.on_accepted()
    assert core.accepted_in_window(clock.now + 50.5) == 1
    assert core.accepted_in_window(clock.now + 51) == 0


def test_an_answer_exactly_one_period_old_is_not_in_the_level() -> None:
    core, clock = core_at(10, 50.0)
    core.on_accepted()
    clock.now += 50  # in the window (51 s), but not in the last period
    core.on_throttled(0.0, saturated=True)
    assert core.ceiling is None  # a storm: nothing was accepted in the last period
    assert core.rate() == pytest.approx(7)


def test_retry_after_under_a_second_and_nan_close_the_gate_for_as_long_as_they_say() -> None:
    core, clock = core_at(10)
    core.on_throttled(0.5)
    assert core.gate_until == clock.now + 0.5
    other, clock2 = core_at(10)
    other.on_throttled(math.nan)
    assert other.gate_until == clock2.now  # NaN counts as "now": the gate is shut, then open


def test_a_throttle_exactly_one_period_after_a_cut_cuts_again() -> None:
    core, clock = core_at(100)
    accept(core, clock, 50)
    core.on_throttled(0.0, saturated=True)
    clock.now += 1.0
    accept(core, clock, 40)
    core.on_throttled(0.0, saturated=True)
    assert core.decreases == 2


def test_a_level_exactly_20_percent_from_the_ceiling_confirms_it() -> None:
    params = AdaptiveParams(hold=1.0)
    clock = Clock()
    core = AdaptiveRate(100, clock=clock, params=params)
    accept(core, clock, 10, over=0.5)
    core.on_throttled(0.0, saturated=True)
    assert core.ceiling == 10
    clock.now += 1.0  # the climb is at 40 by now
    accept(core, clock, 12)
    core.on_throttled(0.0, saturated=True)
    assert core.confirmed
    assert core.ceiling == 12


def test_a_single_accepted_answer_is_a_level_not_a_storm() -> None:
    core, clock = core_at(100)
    accept(core, clock, 1)
    core.on_throttled(0.0, saturated=True)
    assert core.ceiling == 1.0  # 99% of 1, held at the floor
    assert not core.confirmed


def test_a_storm_with_nothing_learned_is_neither_a_ceiling_nor_confirmed() -> None:
    core, _ = core_at(100)
    core.on_throttled(1.0, saturated=True)
    assert core.ceiling is None
    assert core.confirmed is False


def probe_hold(core: AdaptiveRate, ceiling: float) -> int:
    """Return after how many periods of the hold the rate climbs above ``ceiling``."""
    reopen = core.gate_until
    return round(next(x / 10 for x in range(1, 1000) if core.rate(reopen + x / 10) > ceiling))


def test_a_throttle_while_holding_keeps_the_hold_until_the_next_probe() -> None:
    core, clock = confirmed_at_30()
    clock.now = core.gate_until + 2  # holding at 29.7, exactly the ceiling
    accept(core, clock, 30)
    core.on_throttled(1.0, saturated=True)
    assert core.ceiling == pytest.approx(29.403)  # under a hold, the new count is the truth
    assert probe_hold(core, 29.8) == 10  # not doubled: no probe found the ceiling again
    # A probe finds it again (hold 20), then a throttle while holding keeps the 20.
    clock.now = core.gate_until + 10.2
    accept(core, clock, 30)
    core.on_throttled(1.0, saturated=True)
    clock.now = core.gate_until + 2
    accept(core, clock, 30)
    core.on_throttled(1.0, saturated=True)
    assert probe_hold(core, 29.8) == 20


def test_the_hold_doubles_with_each_probe_up_to_probe_max() -> None:
    params = AdaptiveParams(probe_max=40.0)
    clock = Clock()
    core = AdaptiveRate(200, clock=clock, params=params)
    accept(core, clock, 30, over=0.15)
    core.on_throttled(1.0, saturated=True)
    clock.now = core.gate_until + 0.3
    accept(core, clock, 29, over=0.3)
    core.on_throttled(1.0, saturated=True)
    holds = []
    for _ in range(3):
        hold = probe_hold(core, 29.8)
        holds.append(hold)
        clock.now = core.gate_until + hold + 0.2
        accept(core, clock, 30)
        core.on_throttled(1.0, saturated=True)
    assert holds == [10, 20, 40]


def test_a_new_confirmation_after_a_tentative_level_holds_ten_periods_again() -> None:
    core, clock = confirmed_at_30()
    clock.now = core.gate_until + 10.2  # a probe finds the ceiling again: the hold is 20
    accept(core, clock, 30)
    core.on_throttled(1.0, saturated=True)
    assert probe_hold(core, 29.8) == 20
    clock.now = core.gate_until + 25
    accept(core, clock, 100)  # far above: a new tentative level
    core.on_throttled(1.0, saturated=True)
    assert not core.confirmed
    clock.now = core.gate_until + 0.5
    accept(core, clock, 99)
    core.on_throttled(1.0, saturated=True)
    assert core.confirmed
    assert probe_hold(core, core.ceiling + 0.1) == 10


def test_a_confirmed_ceiling_is_forgotten_a_window_after_the_probe_reaches_max_rate() -> None:
    core, _ = confirmed_at_30()
    reopen = core.gate_until
    to_max = 0.5 * math.log2(200 / 29.7)  # the probe doubles every half period
    forget = reopen + 10 + to_max + 1.02
    assert core.known_ceiling(forget - 0.01) == pytest.approx(29.7)
    assert core.known_ceiling(forget + 0.01) is None


def test_recovery_takes_three_periods_of_a_long_period() -> None:
    core, clock = core_at(100, 60.0)
    for _ in range(40):
        core.on_throttled(60.0)
        clock.now = core.gate_until + 2.4
    reopen = core.gate_until
    assert core.rate(reopen) == 1.0
    assert core.rate(reopen + 90) == pytest.approx(10)  # geometric: 1 -> 10 -> 100
    assert core.rate(reopen + 180) == 100


def test_every_cut_is_logged_with_the_levels_and_the_ceiling(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="gtmhub_async.limits")
    core, clock = core_at(50)
    accept(core, clock, 50)
    core.on_throttled(1.0, saturated=True)
    confirmed_at_30()
    storm, _ = core_at(100)
    storm.on_throttled(1.0)
    assert [r.getMessage() for r in caplog.records] == [
        "rate lowered from 50 to 49.5 per 1 s (server accepted 50 in the last window, "
        "ceiling 49.5 tentative)",
        "rate lowered from 200 to 29.7 per 1 s (server accepted 30 in the last window, "
        "ceiling 29.7 tentative)",
        "rate lowered from 45.02 to 29.7 per 1 s (server accepted 29 in the last window, "
        "ceiling 29.7 confirmed)",
        "rate lowered from 100 to 70 per 1 s (server accepted 0 in the last window, ceiling none)",
    ]
