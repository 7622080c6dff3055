"""The Vision stand-in's two models of a rate limit, on a clock the test moves."""

from __future__ import annotations

import pytest

from standins.vision.throttle import FixedWindow, TokenBucket, default_window
from tests.fixtures.clock import ManualClock


def test_a_fixed_window_admits_its_allowance_at_once_and_refuses_until_the_next_interval():
    clock = ManualClock(50.0)
    window = FixedWindow(20, clock=clock)
    assert [window.take() for _ in range(20)] == [0.0] * 20
    clock.now += 0.25
    assert window.take() == pytest.approx(0.75)
    clock.now += 0.75
    assert window.take() == 0.0  # a new interval, a new allowance


def test_a_fixed_window_allows_two_allowances_across_an_interval_boundary():
    # What a per-second count allows and a token bucket does not: 20 at the end of one second
    # and 20 more at the start of the next.
    clock = ManualClock(50.0)
    window = FixedWindow(20, clock=clock)
    clock.now += 0.99
    assert all(window.take() == 0.0 for _ in range(20))
    clock.now += 0.02
    assert all(window.take() == 0.0 for _ in range(20))
    assert window.take() > 0


def test_a_per_minute_tier_is_counted_over_a_minute():
    clock = ManualClock(50.0)
    window = FixedWindow(20 / 60, clock=clock)
    assert default_window(20 / 60) == 60.0 and window.allowance == 20
    assert all(window.take() == 0.0 for _ in range(20))
    assert window.take() == pytest.approx(60.0)


def test_a_token_bucket_without_burst_spaces_requests_by_the_rate():
    clock = ManualClock(50.0)
    bucket = TokenBucket(20, 1, clock=clock)
    assert bucket.take() == 0.0
    clock.now += 0.049
    assert bucket.take() == pytest.approx(0.001)
    clock.now += 0.001
    assert bucket.take() == 0.0


@pytest.mark.parametrize("make", [lambda: FixedWindow(0), lambda: FixedWindow(1, 0), lambda: TokenBucket(1, 0)])
def test_nonsense_limits_are_refused(make):
    with pytest.raises(ValueError):
        make()


def test_a_request_is_counted_when_it_arrives_not_when_it_is_looked_at():
    # The stand-in's added latency is the way to the gateway: a request that left at t arrives at
    # t + latency, whenever the event loop gets round to it; arrival moments never go backwards.
    clock = ManualClock(50.0)
    bucket = TokenBucket(20, 1, clock=clock)
    assert bucket.take(at=clock.now + 0.100) == 0.0
    clock.now += 0.140  # looked at late ...
    assert bucket.take(at=clock.now - 0.040 + 0.050) == 0.0  # ... but it arrived 50 ms after the first
    assert bucket.take(at=clock.now - 0.040 + 0.050) == pytest.approx(0.05)  # one at the same moment is early
    window = FixedWindow(1, 1.0, clock=clock)
    assert window.take(at=clock.now + 5.0) == 0.0
    assert window.take(at=clock.now + 4.0) == pytest.approx(1.0)  # counted in the later window, not an earlier one
