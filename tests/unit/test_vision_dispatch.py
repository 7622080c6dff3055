"""Where a Vision call goes and what an answer does to its resource (``vision.dispatch``): the
resource chosen, refused resources, the limits on waiting through throttling, the pause a 429
or a failure leaves, and what the log says about retries. The pace itself is test_pacing's.
"""

from __future__ import annotations

import itertools
import logging
import math

import pytest

from indexer.retry import RetryPolicy
from indexer.vectorizers.vision.dispatch import (
    DEFAULT_THROTTLE_PAUSE,
    Gate,
    NoResourceLeft,
    Retriable,
    choose,
    dispatch,
)
from tests.fixtures.clock import ManualClock
from tests.unit.test_pacing import NoJitter, failed, limiter, throttled

LOGGER = "indexer.vectorizers.vision.dispatch"


def scripted(answers, seen: list | None = None):
    """An attempt that gives ``answers`` in turn (raising those that are errors), noting the
    resource and the time of each call in ``seen``."""
    answers = iter(answers)

    def attempt(gate: Gate):
        if seen is not None:
            seen.append((gate.name, gate.now()))
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return attempt


def run(gates, attempt, *, policy=None, spread=False, clock: ManualClock, **options):
    return dispatch(gates, attempt, policy=policy or RetryPolicy(), operation="op", spread=spread,
                    sleep=clock.sleep, **options)  # fmt: skip


# --------------------------------------------------------------------------- the answers


def test_a_retriable_answer_says_nothing_more_than_it_is_given():
    answer = Retriable(lambda attempts: RuntimeError("x"))
    assert (answer.reason, str(answer), answer.retry_after) == ("", "", None)
    assert not answer.throttled and not answer.refused
    named = Retriable(lambda attempts: RuntimeError("x"), reason="HTTP 503")
    assert (named.reason, str(named)) == ("HTTP 503", "HTTP 503")


def test_no_resource_left_names_why_each_was_refused():
    error = NoResourceLeft(["a: another model version", "b: another model version"])
    assert str(error) == "a: another model version; b: another model version"
    assert error.reasons == ["a: another model version", "b: another model version"]


def test_a_refused_resource_hands_the_call_to_another_without_counting_a_retry():
    clock = ManualClock(100.0)
    first, second = Gate("first", clock=clock), Gate("second", clock=clock)

    def attempt(gate: Gate):
        if gate is first:
            first.refused = "it answered with another model version"
            raise Retriable(lambda attempts: RuntimeError("refused"), refused=True)
        return gate.name

    assert run([first, second], attempt, policy=RetryPolicy(max_retries=0), clock=clock) == "second"


# --------------------------------------------------------------------------- one resource's state


def test_a_paced_resource_tells_the_time_of_its_limiters_clock():
    clock = ManualClock(100.0)
    assert Gate("a", limiter(clock)).now() == 100.0  # not the gate's own (monotonic) clock


@pytest.mark.parametrize("seconds", [math.inf, math.nan, 0, -1.0])
def test_a_pause_that_is_not_a_finite_positive_number_is_ignored(seconds):
    clock = ManualClock(100.0)
    gate = Gate("a", clock=clock)
    gate.pause(seconds)
    assert gate.paused_for() == 0.0


def test_a_429_without_a_retry_after_pauses_its_resource_one_second():
    clock = ManualClock(100.0)
    gate = Gate("a", clock=clock)
    assert gate.throttled(None) == DEFAULT_THROTTLE_PAUSE == 1.0
    assert gate.paused_for() == 1.0


def test_a_429_slows_a_paced_resource_by_how_long_it_asked_to_wait():
    clock = ManualClock(100.0)
    gate = Gate("a", limiter(clock), clock=clock)  # 19/s
    gate.throttled(0.005)  # 5 ms early: a tenth of an interval, a tenth of the cut
    assert gate.limiter is not None
    assert gate.limiter.rate_per_second == pytest.approx(19 * (1 - 0.1 * 0.005 * 19))


def test_a_429_that_comes_back_after_other_calls_left_keeps_the_pace_after_them():
    # The refused call left at 100.0; two more calls left at the pace before its 429 came
    # back: the retry goes one interval after the latest of them, not 4 ms after the answer.
    clock = ManualClock(100.0)
    paced = limiter(clock)  # 19/s
    calls: list[float] = []
    latest: list[float] = []

    def attempt(gate: Gate):
        calls.append(clock.now)
        if len(calls) > 1:
            return "done"
        for _ in range(2):  # two other calls leave meanwhile, each at its slot
            clock.now += paced.try_acquire()
            assert paced.try_acquire() == 0.0
        latest.append(clock.now)
        clock.now = 100.12  # the first call's 429 arrives
        raise throttled(0.004)

    assert run([Gate("a", paced, clock=clock)], attempt, spread=True, clock=clock) == "done"
    assert calls[1] == pytest.approx(latest[0] + 1 / 19)


# --------------------------------------------------------------------------- choosing a resource


def test_the_first_free_resource_is_chosen_with_no_wait():
    clock = ManualClock(100.0)
    a, b = Gate("a", clock=clock), Gate("b", clock=clock)
    assert choose([a, b], spread=False) == (a, 0.0)
    assert choose([a, b], spread=True) == (a, 0.0)  # from the first, unless told where to start


def test_a_resource_paused_even_briefly_is_passed_over_for_a_free_one():
    clock = ManualClock(100.0)
    a, b = Gate("a", clock=clock), Gate("b", clock=clock)
    a.pause(0.5)
    assert choose([a, b], spread=False) == (b, 0.0)


def test_a_paced_resource_is_waited_for_not_passed_over_for_the_next():
    clock = ManualClock(100.0)
    a, b = Gate("a", limiter(clock), clock=clock), Gate("b", clock=clock)
    assert choose([a, b], spread=False) == (a, 0.0)
    gate, wait = choose([a, b], spread=False)  # a's next slot is one interval away
    assert gate is None and wait == pytest.approx(1 / 19)


def test_spreading_goes_on_from_the_starting_position_to_the_next_free_one():
    clock = ManualClock(100.0)
    a, b, c = (Gate(name, limiter(clock), clock=clock) for name in "abc")
    assert choose([a, b, c], spread=True, start=1) == (b, 0.0)
    assert choose([a, b, c], spread=True, start=1) == (c, 0.0)  # b has no slot now: on to c, not back to a


def test_bulk_calls_start_from_the_next_resource_in_turn():
    clock = ManualClock(100.0)
    a, b = Gate("a", clock=clock), Gate("b", clock=clock)
    rotation = itertools.count()
    used = [run([a, b], lambda g: g.name, spread=True, rotation=rotation, clock=clock) for _ in range(4)]
    assert used == ["a", "b", "a", "b"]


def test_without_a_rotation_calls_start_from_the_first_resource():
    clock = ManualClock(100.0)
    a, b = Gate("a", clock=clock), Gate("b", clock=clock)
    assert [run([a, b], lambda g: g.name, spread=True, clock=clock) for _ in range(2)] == ["a", "a"]


# --------------------------------------------------------------------------- limits on waiting


def test_a_429_asking_for_longer_than_the_policy_waits_fails_the_call_at_once():
    clock = ManualClock(100.0)
    gate = Gate("a", limiter(clock), clock=clock)
    seen: list = []
    with pytest.raises(RuntimeError, match="^throttled after 1$"):
        run([gate], scripted([throttled(61.0), "done"], seen), policy=RetryPolicy(retry_after_max=60), clock=clock)
    assert len(seen) == 1


def test_a_429_asking_for_exactly_the_longest_wait_is_waited_through():
    clock = ManualClock(100.0)
    gate = Gate("a", limiter(clock), clock=clock)
    seen: list = []
    result = run([gate], scripted([throttled(60.0), "done"], seen), policy=RetryPolicy(retry_after_max=60), clock=clock)
    assert result == "done"
    assert seen[1][1] - seen[0][1] == pytest.approx(60.0)


def test_paced_throttling_fails_the_call_only_once_past_its_time_budget():
    # A 429 a second: the calls at 0, 1, 2 and 3 s are within a 3 s budget; the one at 4 s is not.
    clock = ManualClock(100.0)
    gate = Gate("a", limiter(clock), clock=clock)
    seen: list = []
    with pytest.raises(RuntimeError, match="^throttled after 1$"):
        run([gate], scripted([throttled(1.0)] * 10, seen), spread=True, throttle_budget=3, clock=clock)
    assert [round(at - 100.0, 6) for _, at in seen] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_a_failure_with_a_retry_after_is_tried_again_when_the_server_asked():
    clock = ManualClock(100.0)
    gate = Gate("a", clock=clock)
    seen: list = []
    failure = Retriable(lambda attempts: RuntimeError("down"), retry_after=7.0, reason="HTTP 503")
    policy = RetryPolicy(max_retries=3, backoff_factor=0.01, backoff_max=0.01)
    assert run([gate], scripted([failure, "done"], seen), policy=policy, clock=clock) == "done"
    assert seen[1][1] - seen[0][1] == pytest.approx(7.0)


# --------------------------------------------------------------------------- what the log says


def messages(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == LOGGER]


def test_each_retry_is_logged_with_its_reason_resource_count_and_wait(caplog):
    clock = ManualClock(100.0)
    gate = Gate("east", clock=clock)
    with_hint = Retriable(lambda attempts: RuntimeError("down"), retry_after=7.0, reason="HTTP 503")
    policy = RetryPolicy(max_retries=3, rng=NoJitter())  # type: ignore[arg-type]

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert run([gate], scripted([failed(), with_hint, "done"]), policy=policy, clock=clock) == "done"

    assert messages(caplog) == [
        "vision op: HTTP 503 from east; retry 1/3 in 0.25s",  # half its first backoff: no jitter drawn
        "vision op: HTTP 503 from east; retry 2/3 in 7.00s (server's Retry-After)",
    ]


def test_waiting_through_throttling_in_bulk_work_is_logged_at_debug(caplog):
    clock = ManualClock(100.0)
    gate = Gate("east", limiter(clock), clock=clock)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        assert run([gate], scripted([throttled(0.004), "done"]), spread=True, clock=clock) == "done"
    assert messages(caplog) == ["vision op: throttled by east; paused 0.004s"]
