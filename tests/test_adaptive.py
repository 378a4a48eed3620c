"""The adaptive rules of gtmhub_async.adaptive, one by one, on a fake clock."""

from __future__ import annotations

import bisect
import math

import attrs
import pytest

from gtmhub_async._validate import check_positive
from gtmhub_async.adaptive import ADAPTIVE, AdaptiveParams, AdaptiveRate


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def accept(core: AdaptiveRate, clock: Clock, n: int, over: float = 1.0) -> None:
    """Record ``n`` accepted answers spread evenly over the ``over`` seconds before now."""
    end = clock.now
    for i in range(n):
        clock.now = end - over + (i + 1) * over / n
        core.on_accepted()
    clock.now = end


def core_at(max_rate: float, period: float = 1.0) -> tuple[AdaptiveRate, Clock]:
    clock = Clock()
    return AdaptiveRate(max_rate, period, clock=clock), clock


# --- the parameter set ---------------------------------------------------------------


def test_one_frozen_parameter_set_gives_slack_and_floor() -> None:
    assert AdaptiveParams() == ADAPTIVE
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        ADAPTIVE.beta = 0.5  # type: ignore[misc]
    assert ADAPTIVE.slack(1.0) == 0.02
    assert ADAPTIVE.slack(0.1) == 0.015  # never under 15 ms
    assert ADAPTIVE.slack(60.0) == pytest.approx(1.2)  # a share of the period, not of a second
    assert ADAPTIVE.floor(100) == 1.0
    assert ADAPTIVE.floor(1000) == 10.0
    assert ADAPTIVE.floor(0.5) == 0.5


def test_a_per_minute_limit_keeps_its_pacing_slack() -> None:
    core, _ = core_at(30, 60.0)
    assert core.slack == pytest.approx(1.2)
    assert core.interval() == pytest.approx(61.2 / 30)


def test_check_positive_names_the_value() -> None:
    with pytest.raises(TypeError, match=r"^max_rate must be a number, got str$"):
        check_positive("max_rate", "1")
    with pytest.raises(ValueError, match=r"^max_rate must be positive, got 0$"):
        check_positive("max_rate", 0)
    with pytest.raises(ValueError, match=r"^max_rate must be finite, got inf$"):
        check_positive("max_rate", math.inf)


# --- the level a throttle gives --------------------------------------------------------


def test_a_throttle_gives_a_tentative_level_of_99_percent_of_the_accepted_count() -> None:
    core, clock = core_at(200)
    accept(core, clock, 30, over=0.15)  # start-up: 30 accepted, then a 429
    core.on_throttled(1.0, saturated=True)
    assert core.rate() == pytest.approx(29.7)
    assert core.ceiling == pytest.approx(29.7)
    assert not core.confirmed
    assert core.decreases == 1


def test_a_client_that_was_not_waiting_keeps_at_least_70_percent() -> None:
    """No request was waiting: the count measures the client, not the server."""
    core, clock = core_at(50)
    accept(core, clock, 3)
    core.on_throttled(1.0, saturated=False)
    assert core.rate() == pytest.approx(35)
    saturated, clock2 = core_at(50)
    accept(saturated, clock2, 3)
    saturated.on_throttled(1.0, saturated=True)
    assert saturated.rate() == pytest.approx(2.97)


def test_a_storm_cuts_30_percent_and_keeps_the_learned_ceiling() -> None:
    core, clock = core_at(100)
    accept(core, clock, 40)
    core.on_throttled(1.0, saturated=True)
    clock.now = core.gate_until + 1.5
    level = core.rate()
    core.on_throttled(1.0, saturated=True)  # nothing accepted in the last window
    assert core.rate() == pytest.approx(0.7 * level)
    assert core.ceiling == pytest.approx(39.6)
    assert core.decreases == 2


def test_the_rate_never_drops_below_the_floor() -> None:
    core, clock = core_at(10)
    for _ in range(30):
        core.on_throttled(None)
        clock.now = core.gate_until
    assert core.rate() == core.floor == 1.0


# --- the climb when the gate reopens ---------------------------------------------------


def test_the_rate_doubles_every_half_period_once_the_gate_reopens() -> None:
    core, clock = core_at(100)
    accept(core, clock, 20)
    core.on_throttled(1.0, saturated=True)
    reopen = core.gate_until
    assert core.rate(reopen - 0.5) == pytest.approx(19.8)  # nothing climbs while closed
    assert core.rate(reopen) == pytest.approx(19.8)
    assert core.rate(reopen + 0.5) == pytest.approx(39.6)
    assert core.rate(reopen + 1.0) == pytest.approx(79.2)
    assert core.rate(reopen + 1.5) == 100
    rates = [core.rate(reopen + i / 20) for i in range(40)]
    assert rates == sorted(rates)


@pytest.mark.parametrize("storms", [1, 5, 40])
def test_recovery_takes_three_periods_however_low_the_rate_fell(storms: int) -> None:
    core, clock = core_at(100)
    for _ in range(storms):
        core.on_throttled(1.0)
        clock.now = core.gate_until + 0.04  # the next 429 comes one round trip after
    reopen = core.gate_until
    low = core.rate(reopen)
    assert low <= 70
    assert core.rate(reopen + 3.0) == 100
    if storms == 40:
        assert low == core.floor == 1.0
        assert core.rate(reopen + 1.5) == pytest.approx(10)  # geometric: 1 -> 10 -> 100
    assert core.rate(reopen + 0.1) > low


def test_a_long_idle_spell_after_a_throttle_does_not_overflow() -> None:
    core, _clock = confirmed_at_30()
    assert core.rate(core.gate_until + 1e9) == 200
    fresh, _ = core_at(50)
    fresh.on_throttled(1.0)
    assert fresh.rate(fresh.gate_until + 1e9) == 50


def test_a_tentative_level_is_dropped_a_window_after_max_rate_is_reached() -> None:
    core, clock = core_at(50)
    accept(core, clock, 5, over=0.1)
    core.on_throttled(1.0, saturated=True)
    reopen = core.gate_until
    reach = reopen + 0.5 * math.log2(50 / 4.95)
    assert core.known_ceiling(reach - 0.01) == pytest.approx(4.95)
    assert core.known_ceiling(reach + 1.02 - 0.01) == pytest.approx(4.95)
    assert core.known_ceiling(reach + 1.02 + 0.01) is None
    # A throttle after that starts a new tentative level, not a confirmation.
    clock.now = reach + 2
    accept(core, clock, 5)
    core.on_throttled(1.0, saturated=True)
    assert not core.confirmed


# --- confirmation and probes -----------------------------------------------------------


def confirmed_at_30(period: float = 1.0) -> tuple[AdaptiveRate, Clock]:
    core, clock = core_at(200, period)
    accept(core, clock, 30, over=0.15 * period)
    core.on_throttled(1.0 * period, saturated=True)
    clock.now = core.gate_until + 0.3 * period  # the climb passes 30 ...
    accept(core, clock, 29, over=0.3 * period)
    core.on_throttled(1.0 * period, saturated=True)  # ... and meets the limit again
    return core, clock


def test_a_second_throttle_within_20_percent_confirms_and_holds_the_ceiling() -> None:
    core, _ = confirmed_at_30()
    assert core.confirmed
    assert core.ceiling == pytest.approx(29.7)  # the climb undercounts: keep the larger
    reopen = core.gate_until
    for x in (0.0, 1.0, 5.0, 9.9):
        assert core.rate(reopen + x) == pytest.approx(29.7)
    assert core.rate(reopen + 10.5) == pytest.approx(2 * 29.7)  # the probe climbs


def test_a_second_throttle_far_from_the_level_is_a_new_tentative_level() -> None:
    core, clock = core_at(200)
    accept(core, clock, 30, over=0.15)
    core.on_throttled(1.0, saturated=True)
    clock.now = core.gate_until + 1.5
    accept(core, clock, 60)
    core.on_throttled(1.0, saturated=True)
    assert not core.confirmed
    assert core.ceiling == pytest.approx(59.4)


def test_each_probe_that_finds_the_ceiling_again_doubles_the_hold_up_to_20_periods() -> None:
    core, clock = confirmed_at_30()
    holds = []
    for _ in range(4):
        reopen = core.gate_until
        probe = next(x / 10 for x in range(1, 400) if core.rate(reopen + x / 10) > 29.8)
        holds.append(round(probe))
        clock.now = reopen + probe + 0.2
        accept(core, clock, 30)
        core.on_throttled(1.0, saturated=True)
        assert core.confirmed
    assert holds == [10, 20, 20, 20]


def test_a_throttle_while_holding_lowers_the_ceiling_to_the_new_count() -> None:
    core, clock = confirmed_at_30()
    clock.now = core.gate_until + 2
    accept(core, clock, 27)
    core.on_throttled(1.0, saturated=True)
    assert core.confirmed
    assert core.ceiling == pytest.approx(26.73)


def test_the_rules_count_in_periods() -> None:
    core, _ = confirmed_at_30(period=60.0)
    assert core.confirmed
    reopen = core.gate_until
    assert core.rate(reopen + 590) == pytest.approx(29.7)
    assert core.rate(reopen + 630) == pytest.approx(2 * 29.7)


# --- the gate and the signals ----------------------------------------------------------


def test_throttles_while_the_gate_is_closed_do_not_cut_again() -> None:
    core, clock = core_at(100)
    accept(core, clock, 50)
    core.on_throttled(5.0, saturated=True)
    rate = core.rate()
    for step in range(1, 5):  # more than a period later, the gate still closed
        clock.now += 1.1
        core.on_throttled(1.0, saturated=True)
        assert core.decreases == 1, step
    assert core.rate() == rate
    assert core.gate_closures == 1


def test_the_rate_is_lowered_at_most_once_per_period() -> None:
    core, clock = core_at(100)
    accept(core, clock, 50)
    core.on_throttled(0.0, saturated=True)
    clock.now += 0.5
    accept(core, clock, 40, over=0.4)
    core.on_throttled(0.0, saturated=True)
    assert core.decreases == 1
    assert core.gate_closures == 2


def test_an_isolated_503_closes_the_gate_but_does_not_cut() -> None:
    core, clock = core_at(100)
    accept(core, clock, 95)
    core.on_throttled(2.0, status=503, saturated=True)
    assert core.gate_until == clock.now + 2.0
    assert core.decreases == 0
    assert core.rate() == 100


def test_a_wave_of_503s_cuts_the_rate() -> None:
    core, clock = core_at(100)
    accept(core, clock, 8)
    for _ in range(2):
        core.on_throttled(0.0, status=503, saturated=True)
        assert core.decreases == 0  # 2 of 10: neither 3 nor a quarter
    core.on_throttled(0.0, status=503, saturated=True)  # 3 of 11: a wave
    assert core.decreases == 1
    assert core.rate() == pytest.approx(7.92)


def test_three_503s_among_many_answers_are_no_wave() -> None:
    core, clock = core_at(100)
    accept(core, clock, 24)
    for _ in range(7):
        core.on_throttled(0.0, status=503, saturated=True)
    assert core.decreases == 0  # 7 of 31: under a quarter
    core.on_throttled(0.0, status=503, saturated=True)  # 8 of 32: a quarter
    assert core.decreases == 1


def test_a_time_window_drops_times_through_the_horizon_and_survives_compaction() -> None:
    from gtmhub_async.adaptive import TimeWindow

    window = TimeWindow()
    for t in range(3000):
        window.append(t / 1000)
    window.drop_through(0.999)  # 0.000 .. 0.999 go, 1.000 is the oldest left
    assert (len(window), next(iter(window))) == (2000, 1.0)
    window.drop_through(2.5)  # past half of the array: compacted
    assert list(window) == [t / 1000 for t in range(2501, 3000)]
    window.append(3.0)
    window.drop_through(2.999)
    assert list(window) == [3.0]
    window.drop_through(3.0)
    assert (len(window), list(window)) == (0, [])


def test_a_sliding_time_window_keeps_its_storage_bounded() -> None:
    from gtmhub_async.adaptive import TimeWindow

    window = TimeWindow()
    for t in range(20_000):
        window.append(float(t))
        window.drop_through(t - 10.0)  # the last ten times stay
    assert len(window) == 10
    # Memory: the dropped times are compacted away, not kept behind the head forever.
    assert len(window._times) <= 1025 + 2 * len(window)


def test_a_never_throttled_limiter_forgets_old_answers_lazily_and_counts_exactly() -> None:
    core, clock = core_at(1000)
    times = []
    for _ in range(20_000):
        clock.now += 0.01  # 100 answers a second: about 102 in a window of 1.02 s
        times.append(clock.now)
        core.on_accepted()
    # The hot path drops old times only every 256 answers, so memory stays bounded ...
    assert len(core._accepted._times) <= 1025 + 256 + 2 * 102
    # ... and a reader prunes first: exactly the answers of the last time_period + slack.
    assert core.slack == 0.02
    assert core.accepted_in_window() == sum(1 for t in times if t > clock.now - 1.02)
    # Right after any lazy drop too: it forgets only what left time_period + slack.
    for _ in range(3_000):
        clock.now += 0.01
        times.append(clock.now)
        core.on_accepted()
        assert core.accepted_in_window() == len(times) - bisect.bisect_right(
            times, clock.now - 1.02
        )
