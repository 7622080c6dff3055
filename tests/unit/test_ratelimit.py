"""The shared token bucket (``indexer.ratelimit.RateLimiter``), driven by a fake clock: the
burst, the pace, the exact waits it reports, and how a 429's penalty holds every caller back."""

from __future__ import annotations

import math
import threading
import time

import pytest

from indexer.ratelimit import RateLimiter
from tests.fixtures.clock import ManualClock, take_token


def limiter_on(clock: ManualClock, rate: float, burst: int = 1) -> RateLimiter:
    return RateLimiter(rate, burst=burst, clock=clock)


def test_rate_limiter_allows_a_burst_then_keeps_the_pace():
    clock = ManualClock()
    limiter = limiter_on(clock, 20, burst=3)
    start = clock.now
    waits = [take_token(limiter, clock.sleep) for _ in range(3 + 40)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == pytest.approx([0.05] * 40)
    # 40 more calls at 20 a second take two seconds.
    assert clock.now - start == pytest.approx(2.0, abs=1e-6)


def test_rate_limiter_try_acquire_reports_the_wait_without_taking_a_token():
    clock = ManualClock()
    limiter = RateLimiter(0.5, clock=clock)  # the default burst is 1
    assert limiter.try_acquire() == 0.0
    assert limiter.try_acquire() == pytest.approx(2.0)
    assert limiter.try_acquire() == pytest.approx(2.0)  # asking again took nothing
    clock.now += 0.5
    assert limiter.try_acquire() == pytest.approx(1.5)
    clock.now += 1.5
    assert limiter.try_acquire() == 0.0
    assert limiter.try_acquire() == pytest.approx(2.0)
    assert clock.slept == []  # try_acquire never sleeps


def test_an_idle_bucket_refills_up_to_the_burst_and_no_further():
    clock = ManualClock()
    limiter = limiter_on(clock, 10, burst=3)
    assert [limiter.try_acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    clock.now += 100.0  # long enough for 1000 tokens
    assert [limiter.try_acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.try_acquire() == pytest.approx(0.1)


def test_part_of_a_token_shortens_the_wait_by_that_part():
    clock = ManualClock()
    limiter = limiter_on(clock, 10)
    limiter.try_acquire()
    clock.now += 0.03
    assert limiter.try_acquire() == pytest.approx(0.07)
    clock.now += 0.07
    assert limiter.try_acquire() == 0.0


def test_a_bucket_within_a_nanosecond_of_a_token_counts_as_having_it():
    # Refills are float sums; 0.99999999999 of a token must not make a caller sleep for
    # an amount of time no clock can measure.
    clock = ManualClock(start=0.0)
    limiter = limiter_on(clock, 1)
    limiter.try_acquire()
    clock.now = 1.0 - 1e-11
    assert limiter.try_acquire() == 0.0
    limiter = limiter_on(clock := ManualClock(start=0.0), 1)
    limiter.try_acquire()
    clock.now = 1.0 - 1e-9  # the edge of the slack is still inside it
    assert limiter.try_acquire() == 0.0


def test_a_bucket_short_of_a_token_by_more_than_the_slack_waits():
    clock = ManualClock(start=0.0)
    limiter = limiter_on(clock, 1)
    limiter.try_acquire()
    clock.now = 1.0 - 1e-6
    assert limiter.try_acquire() == pytest.approx(1e-6, rel=1e-3)


def test_the_shortest_wait_reported_is_a_nanosecond():
    clock = ManualClock(start=0.0)
    limiter = limiter_on(clock, 1000)
    limiter.try_acquire()
    clock.now = (1.0 - 2e-9) / 1000  # 2e-9 of a token missing: 2e-12 s at this rate
    assert limiter.try_acquire() == 1e-9


def test_a_token_taken_within_the_slack_leaves_an_empty_bucket_not_a_debt():
    clock = ManualClock(start=0.0)
    limiter = limiter_on(clock, 1)
    limiter.try_acquire()
    clock.now = 1.0 - 1e-11
    assert limiter.try_acquire() == 0.0  # took 0.99999999999 of a token
    assert limiter.try_acquire() == pytest.approx(1.0)  # a whole token from empty, not 1 + 1e-11
    clock.now += 1.0
    assert limiter.try_acquire() == 0.0


# --- penalties ----------------------------------------------------------------------------


def test_rate_limiter_penalize_holds_everyone_back_then_resumes_without_a_burst():
    clock = ManualClock()
    limiter = limiter_on(clock, 10, burst=5)
    limiter.penalize(3.0)
    assert limiter.try_acquire() == pytest.approx(3.0)
    clock.now += 1.0
    assert limiter.try_acquire() == pytest.approx(2.0)
    clock.now += 2.0
    assert limiter.try_acquire() == 0.0
    assert limiter.try_acquire() == pytest.approx(0.1)  # back to the steady pace, no burst of 5


def test_a_pause_ends_with_one_call_ready_and_nothing_more():
    # The refused call has waited its turn, so it goes the moment the pause ends; nothing else
    # accrues during the pause, so the next one waits its whole pace.
    clock = ManualClock()
    limiter = limiter_on(clock, 10)
    limiter.try_acquire()
    limiter.penalize(1.0)
    assert limiter.try_acquire() == pytest.approx(1.0)
    clock.now += 0.5
    assert limiter.try_acquire() == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.try_acquire() == 0.0
    assert limiter.try_acquire() == pytest.approx(0.1)
    clock.now += 0.05
    assert limiter.try_acquire() == pytest.approx(0.05)
    clock.now += 0.05
    assert limiter.try_acquire() == 0.0


def test_a_full_bucket_gives_no_burst_after_a_pause():
    clock = ManualClock()
    limiter = limiter_on(clock, 10, burst=3)
    clock.now += 0.05
    limiter.penalize(1.0)
    clock.now += 1.0
    assert limiter.try_acquire() == 0.0
    assert limiter.try_acquire() == pytest.approx(0.1)


def test_a_shorter_penalty_does_not_cut_a_longer_one_short():
    clock = ManualClock()
    limiter = limiter_on(clock, 10)
    limiter.penalize(5.0)
    clock.now += 1.0
    limiter.penalize(1.0)
    assert limiter.try_acquire() == pytest.approx(4.0)
    limiter.penalize(10.0)  # a longer one extends it
    assert limiter.try_acquire() == pytest.approx(10.0)


@pytest.mark.parametrize("seconds", [0, 0.0, -1.0, -math.inf, math.inf, math.nan, None])
def test_a_meaningless_penalty_is_ignored(seconds):
    clock = ManualClock()
    limiter = limiter_on(clock, 10, burst=5)
    limiter.penalize(seconds)  # must not raise
    # must not block, nor take the burst away
    assert [limiter.try_acquire() for _ in range(5)] == [0.0] * 5
    assert limiter.try_acquire() == pytest.approx(0.1)


def test_a_tiny_penalty_still_counts():
    clock = ManualClock()
    limiter = limiter_on(clock, 10, burst=5)
    limiter.penalize(0.5)
    assert limiter.try_acquire() == pytest.approx(0.5)


# --- construction and threads -------------------------------------------------------------


def test_the_default_clock_is_real_time():
    limiter = RateLimiter(200)
    assert limiter.try_acquire() == 0.0
    wait = limiter.try_acquire()
    assert 0.0 < wait <= 0.005 + 1e-6
    time.sleep(wait)  # real time passes, so the token is free
    assert limiter.try_acquire() == 0.0


def test_rate_limiter_is_thread_safe():
    limiter = RateLimiter(1000, burst=1)
    granted = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            take_token(limiter, time.sleep)
            with lock:
                granted.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 200
    # 200 tokens at 1000 a second, starting with one: never faster than the rate allows.
    assert max(granted) - started >= 199 / 1000 * 0.99


@pytest.mark.parametrize("rate", [0, -1, float("inf"), float("nan")])
def test_rate_limiter_refuses_a_rate_that_is_not_positive_and_finite(rate):
    with pytest.raises(ValueError) as caught:
        RateLimiter(rate)
    assert str(caught.value) == f"rate_per_second must be a positive finite number, got {rate!r}"


@pytest.mark.parametrize("burst", [0, -3])
def test_rate_limiter_refuses_a_burst_under_one(burst):
    with pytest.raises(ValueError) as caught:
        RateLimiter(1, burst=burst)
    assert str(caught.value) == f"burst must be at least 1, got {burst!r}"


def test_tiny_rates_and_a_burst_of_one_are_fine():
    clock = ManualClock()
    limiter = limiter_on(clock, 1e-6)
    assert limiter.try_acquire() == 0.0
    assert limiter.try_acquire() == pytest.approx(1e6)


def test_repr_shows_the_rate_and_the_burst_as_numbers():
    assert repr(RateLimiter(20, burst=3)) == "RateLimiter(rate_per_second=20, burst=3)"
    assert repr(RateLimiter(20, adaptive=True)) == "RateLimiter(rate_per_second=19, adaptive up to 19, burst=1)"
    limiter = RateLimiter(2, burst=2.0)
    assert (limiter.rate_per_second, limiter.burst) == (2.0, 2)
    assert type(limiter.rate_per_second) is float and type(limiter.burst) is int
