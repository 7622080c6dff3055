"""Adaptive pacing (``indexer.ratelimit``) and the dispatch of one Vision call over one or more
resources (``indexer.vectorizers.vision.dispatch``), on a clock the test moves."""

from __future__ import annotations

import itertools
import math

import pytest

from indexer.ratelimit import RateLimiter
from indexer.retry import RetryPolicy
from indexer.vectorizers.vision.dispatch import Gate, NoResourceLeft, Retriable, choose, dispatch
from tests.fixtures.clock import ManualClock, take_token


def limiter(clock: ManualClock, rate: float = 20, **options) -> RateLimiter:
    return RateLimiter(rate, adaptive=True, clock=clock, **options)


def test_an_adaptive_limiter_paces_under_the_limit_never_on_it():
    clock = ManualClock(100.0)
    paced = limiter(clock)
    start = clock.now
    for _ in range(96):
        take_token(paced, clock.sleep)
    # 95 intervals at 95% of 20/s: 5 s, where standing on the limit would take 4.75 s.
    assert clock.now - start == pytest.approx(95 / 19, rel=1e-6)


def test_a_429_slows_the_pace_once_per_cooldown_and_successes_bring_it_back():
    clock = ManualClock(100.0)
    paced = limiter(clock)
    assert paced.rate_per_second == pytest.approx(19)
    assert paced.slow_down() and paced.rate_per_second == pytest.approx(17.1)
    assert not paced.slow_down()  # answers to calls already in flight say the same thing
    clock.now += 1.0
    assert paced.slow_down() and paced.rate_per_second == pytest.approx(15.39)
    for _ in range(1000):
        paced.speed_up()
    assert paced.rate_per_second == pytest.approx(19)  # back to the ceiling, never above it


def test_the_pace_never_falls_below_its_floor():
    clock = ManualClock(100.0)
    paced = limiter(clock, floor=0.5)
    for _ in range(50):
        paced.slow_down()
        clock.now += 1.0
    assert paced.rate_per_second == pytest.approx(10)


def test_a_fixed_limiter_does_not_adapt():
    fixed = RateLimiter(20)
    assert not fixed.slow_down()
    fixed.speed_up()
    assert fixed.rate_per_second == 20


def throttled(retry_after: float | None) -> Retriable:
    return Retriable(
        lambda attempts: RuntimeError(f"throttled after {attempts}"), retry_after=retry_after, throttled=True
    )


def failed() -> Retriable:
    return Retriable(lambda attempts: RuntimeError(f"failed after {attempts}"), reason="HTTP 503")


def test_a_429_pauses_its_resource_for_exactly_what_was_asked():
    clock = ManualClock(100.0)
    gate = Gate("a", limiter(clock), clock=clock)
    answers = iter([throttled(0.004), "done"])
    seen: list[float] = []

    def attempt(g: Gate):
        seen.append(clock.now)
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    policy = RetryPolicy(max_retries=0)
    result = dispatch([gate], attempt, policy=policy, operation="op", spread=True, sleep=clock.sleep)
    assert result == "done"
    # The refused call went out again 4 ms later (the pause), and not a whole second later.
    assert seen[1] - seen[0] == pytest.approx(0.004, abs=1e-6)


def test_paced_throttling_is_not_counted_as_a_failure_but_has_a_time_budget():
    clock = ManualClock(100.0)
    gate = Gate("a", limiter(clock), clock=clock)
    calls = itertools.count()

    def always_throttled(g: Gate):
        next(calls)
        raise throttled(1.0)

    policy = RetryPolicy(max_retries=0)
    with pytest.raises(RuntimeError, match="throttled"):
        dispatch(
            [gate], always_throttled, policy=policy, operation="op", spread=True, throttle_budget=30,
            sleep=clock.sleep,
        )  # fmt: skip
    assert 30 <= next(calls) <= 33  # about one attempt a second for the 30 s budget, no more


def test_an_unpaced_single_call_counts_429s_and_gives_up_after_its_retries():
    clock = ManualClock(100.0)
    gate = Gate("a", clock=clock)
    calls = itertools.count()

    def always_throttled(g: Gate):
        next(calls)
        raise throttled(2.0)

    with pytest.raises(RuntimeError, match="throttled after 3"):
        dispatch([gate], always_throttled, policy=RetryPolicy(max_retries=2), operation="op", spread=False,
                 sleep=clock.sleep)  # fmt: skip
    assert next(calls) == 3


def test_a_failure_backs_off_that_resource_and_the_call_moves_to_the_next():
    clock = ManualClock(100.0)
    first, second = Gate("first", clock=clock), Gate("second", clock=clock)
    used: list[str] = []

    def attempt(g: Gate):
        used.append(g.name)
        if g is first:
            raise failed()
        return g.name

    policy = RetryPolicy(max_retries=3, backoff_factor=10, backoff_max=10)
    for _ in range(3):
        assert dispatch([first, second], attempt, policy=policy, operation="op", spread=False,
                        sleep=clock.sleep) == "second"  # fmt: skip
    assert used == ["first", "second", "second", "second"]  # the failed one is left alone while backed off
    assert first.paused_for() > 0


def test_spread_takes_whichever_resource_is_free_starting_from_a_rotating_position():
    clock = ManualClock(100.0)
    gates = [Gate(name, limiter(clock, rate=10), clock=clock) for name in "abc"]
    rotation = itertools.count()
    picked = [choose(gates, spread=True, start=next(rotation))[0] for _ in range(3)]
    assert [g.name for g in picked if g] == ["a", "b", "c"]
    gate, wait = choose(gates, spread=True, start=0)  # every slot taken: wait for the soonest
    assert gate is None and wait == pytest.approx(1 / 9.5)


def test_refused_resources_are_skipped_and_none_left_is_an_error():
    clock = ManualClock(100.0)
    good, bad = Gate("good", clock=clock), Gate("bad", clock=clock, refused="another model version")
    assert choose([bad, good], spread=False)[0] is good
    good.refused = "another model version"
    assert choose([bad, good], spread=True) == (None, math.inf)
    with pytest.raises(NoResourceLeft, match="another model version"):
        dispatch([bad, good], lambda g: "x", policy=RetryPolicy(), operation="op", spread=True,
                 sleep=clock.sleep)  # fmt: skip


def test_the_cut_follows_how_long_the_service_asked_to_wait():
    clock = ManualClock(100.0)
    paced = limiter(clock)  # 19/s: one interval is about 53 ms
    assert paced.slow_down(0.005)  # 5 ms early: about a tenth of an interval
    assert paced.rate_per_second == pytest.approx(19 * (1 - 0.1 * 0.005 * 19))
    clock.now += 1.0
    before = paced.rate_per_second
    assert paced.slow_down(0.8)  # refused for most of a one-second window: the full cut
    assert paced.rate_per_second == pytest.approx(before * 0.9)


# --- the adaptive settings, at their edges ---------------------------------------------------

SETTINGS_RULE = "need 0 < floor <= headroom <= 1, 0 < decrease < 1, increase >= 0 and cooldown >= 0"


@pytest.mark.parametrize(
    "options",
    [
        {"floor": 0},
        {"floor": 0.96},  # above the headroom
        {"headroom": 1.5},
        {"decrease": 0},
        {"decrease": 1},
        {"decrease": 1.5},
        {"increase": -0.001},
        {"cooldown": -1},
    ],
)
def test_each_adaptive_setting_out_of_range_is_refused_on_its_own(options):
    with pytest.raises(ValueError) as caught:
        RateLimiter(20, adaptive=True, **options)
    assert str(caught.value) == SETTINGS_RULE


@pytest.mark.parametrize(
    "options",
    [
        {"floor": 0.95},  # equal to the headroom: a fixed pace under the limit
        {"headroom": 1.0, "floor": 1.0},
        {"increase": 0},  # never climbs back
        {"cooldown": 0},
        {"cooldown": 0.5},
    ],
)
def test_adaptive_settings_on_their_bounds_are_accepted(options):
    paced = RateLimiter(20, adaptive=True, **options)
    assert paced.rate_per_second <= 20
    assert paced.rate_per_second == pytest.approx(20 * options.get("headroom", 0.95))  # it starts at its ceiling


def test_one_success_climbs_by_a_fraction_of_the_limit():
    clock = ManualClock(100.0)
    paced = limiter(clock)
    paced.slow_down()  # 19 -> 17.1
    paced.speed_up()
    assert paced.rate_per_second == pytest.approx(17.1 + 0.004 * 20)


def test_a_fixed_limiter_has_no_room_to_move():
    fixed = RateLimiter(20)
    assert fixed.floor == fixed.ceiling == fixed.rate_per_second == 20
    adaptive = RateLimiter(20, adaptive=True)
    assert (adaptive.floor, adaptive.ceiling) == (pytest.approx(5), pytest.approx(19))


def test_paused_for_counts_down_the_pause():
    clock = ManualClock(100.0)
    paced = limiter(clock)
    assert paced.paused_for() == 0.0
    paced.penalize(2.0)
    assert paced.paused_for() == pytest.approx(2.0)
    clock.now += 0.5
    assert paced.paused_for() == pytest.approx(1.5)
    clock.now += 5.0
    assert paced.paused_for() == 0.0


def test_a_429_that_comes_back_after_other_calls_left_keeps_the_pace_after_them():
    # 120 ms of round trip at 19/s: two more calls leave before the 429 of the first comes
    # back. The retry may go once the pause is over *and* one interval after the latest call,
    # not 4 ms after that call (which a limiter with no burst would refuse again).
    clock = ManualClock(100.0)
    paced = limiter(clock)
    assert paced.try_acquire() == 0.0
    refused_left = clock.now
    for _ in range(2):
        clock.now += paced.try_acquire()
        assert paced.try_acquire() == 0.0
    latest = clock.now
    clock.now = refused_left + 0.12  # the answer to the first call arrives
    assert clock.now > latest
    paced.penalize(0.004, since=refused_left)
    assert paced.paused_for() == pytest.approx(latest + 1 / 19 - clock.now)
    # Without other calls since the refused one, the pause is exactly what was asked.
    calm = limiter(ManualClock(100.0))
    calm.try_acquire()
    calm.penalize(0.004, since=calm.now())
    assert calm.paused_for() == pytest.approx(0.004)
    assert calm.now() == 100.0


class NoJitter:
    """A policy's random source that always draws the shortest wait: the worst case for a
    resource that is down (each call's own backoff alone would free it again at once)."""

    def uniform(self, low: float, high: float) -> float:
        return low


def test_a_resource_that_is_down_is_left_alone_longer_and_longer_across_calls():
    clock = ManualClock(100.0)
    dead, alive = (Gate(name, limiter(clock, rate=1), clock=clock) for name in ("dead", "alive"))
    used: list[str] = []

    def attempt(g: Gate):
        used.append(g.name)
        if g is dead:
            raise failed()
        return g.name

    policy = RetryPolicy(max_retries=5, rng=NoJitter())  # type: ignore[arg-type]
    rotation = itertools.count()
    for _ in range(40):  # bulk work: each call starts from the next resource in turn
        assert dispatch([dead, alive], attempt, policy=policy, operation="op", spread=True, rotation=rotation,
                        sleep=clock.sleep) == "alive"  # fmt: skip
    # Its pause doubles with each failure in a row (0.25, 0.5, 1, ... s), whichever call made it.
    assert used.count("dead") <= 9 and used.count("alive") == 40
    assert dead.paused_for() > 0


def test_a_success_ends_a_resources_run_of_failures():
    clock = ManualClock(100.0)
    gate = Gate("a", clock=clock)
    policy = RetryPolicy(backoff_factor=1, backoff_max=60)
    assert [gate.failed(0.0, policy) for _ in range(3)] == [0.5, 1.0, 2.0]
    gate.succeeded()
    assert gate.failed(0.0, policy) == 0.5
    assert gate.failed(7.0, policy) == 7.0  # the server's Retry-After, when longer, wins


def unanswered() -> Retriable:
    return Retriable(lambda attempts: RuntimeError(f"no answer after {attempts}"), unanswered=True, reason="refused")


def test_a_resource_silent_for_down_after_fails_calls_at_once_instead_of_retrying():
    clock = ManualClock(100.0)
    gate = Gate("down", limiter(clock), clock=clock)
    attempts = itertools.count()

    def refused(g: Gate):
        next(attempts)
        raise unanswered()

    policy = RetryPolicy(max_retries=50, backoff_factor=10, backoff_max=30, down_after=30, rng=NoJitter())  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="no answer"):
        dispatch([gate], refused, policy=policy, operation="op", spread=True, sleep=clock.sleep)
    assert clock.now - 100.0 < 60  # not 50 retries' worth of backoff
    tried = next(attempts)
    # Once it has been silent that long, a new call fails without another attempt or wait.
    started = clock.now
    with pytest.raises(RuntimeError, match="no answer after 1"):
        dispatch([gate], refused, policy=policy, operation="op", spread=True, sleep=clock.sleep)
    assert next(attempts) <= tried + 1 and clock.now - started < 1


def test_an_answer_ends_the_silence_and_another_resource_keeps_calls_going():
    clock = ManualClock(100.0)
    gate = Gate("a", clock=clock)
    gate.unanswered(unanswered())
    clock.sleep(40)
    assert gate.down(30) is not None
    gate.answered()  # a 5xx is an answer: busy, not down
    assert gate.down(30) is None

    dead, alive = Gate("dead", clock=clock), Gate("alive", clock=clock)
    dead.unanswered(unanswered())
    clock.sleep(40)

    def attempt(g: Gate):
        if g is dead:
            raise unanswered()
        return g.name

    policy = RetryPolicy(max_retries=5)
    assert dispatch([dead, alive], attempt, policy=policy, operation="op", spread=False, sleep=clock.sleep) == "alive"
