"""The retry arithmetic shared by both Azure clients (``indexer.retry``): reading a server's
``Retry-After`` and the full-jitter backoff."""

from __future__ import annotations

import email.utils
import random
import time

import pytest

from indexer.retry import RetryPolicy, parse_retry_after


def test_retry_after_reads_seconds_and_http_dates():
    now = time.time()
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0
    for unreadable in (None, "", "soon", "nan", "inf"):
        assert parse_retry_after(unreadable) is None


def test_backoff_is_full_jitter_under_the_cap_and_bounded():
    policy = RetryPolicy(max_retries=6, backoff_factor=0.5, backoff_max=3.0, rng=random.Random(7))
    for retry_number in range(6):
        ceiling = min(3.0, 0.5 * 2**retry_number)
        delays = [policy.delay(retry_number, None) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # spread over the whole range, not fixed
    assert policy.delay(6, None) is None
    assert policy.delay(0, 2.5) == 2.5
    assert policy.delay(0, 61.0) is None  # beyond retry_after_max: give the hint back instead
