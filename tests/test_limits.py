"""Per-key limits: rpm sliding window, tpm from real usage, concurrency, OpenAI headers."""

from __future__ import annotations

import asyncio

import pytest

from state.limits import Limiter, RateLimited, duration
from state.registry import ApiKey


class Clock:
    """A hand-driven monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def key(**limits: int) -> ApiKey:
    """A key with the given limits."""
    return ApiKey(id="k1", name="app", secret_hash="h", masked="sk-…", **limits)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (-3, "0s"),
        (0.02, "20ms"),
        (0.0001, "1ms"),
        (1, "1s"),
        (7.2, "8s"),
        (60, "1m0s"),
        (65, "1m5s"),
        (359.5, "6m0s"),
    ],
)
def test_duration_format(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_unlimited_key_gets_no_headers() -> None:
    adm = Limiter().admit(key())
    assert adm.headers == {}
    adm.add_tokens(10**9)
    adm.release()


def test_rpm_sliding_window_and_headers() -> None:
    clock = Clock()
    lim = Limiter(clock)
    k = key(rpm=3)
    heads = []
    for _ in range(3):
        adm = lim.admit(k)
        adm.release()
        heads.append(adm.headers)
        clock.now += 10
    assert [h["x-ratelimit-remaining-requests"] for h in heads] == ["2", "1", "0"]
    assert heads[0]["x-ratelimit-limit-requests"] == "3"
    assert heads[0]["x-ratelimit-reset-requests"] == "1m0s"
    with pytest.raises(RateLimited) as info:
        lim.admit(k)  # t=1030: the first request (t=1000) leaves the window at 1060
    exc = info.value
    assert exc.retry_after == pytest.approx(30)
    assert exc.headers["Retry-After"] == "30"
    assert exc.headers["x-ratelimit-remaining-requests"] == "0"
    assert "3 requests per minute" in exc.message
    clock.now = 1060.001
    lim.admit(k).release()


def test_tpm_counts_real_usage_and_refuses_until_window_frees() -> None:
    clock = Clock()
    lim = Limiter(clock)
    k = key(tpm=100)
    adm = lim.admit(k)
    assert adm.headers["x-ratelimit-remaining-tokens"] == "100"
    # A streaming request reports its tokens as they come.
    for _ in range(6):
        adm.add_tokens(10)
    adm.release()
    clock.now += 5
    adm2 = lim.admit(k)
    assert adm2.headers["x-ratelimit-remaining-tokens"] == "40"
    adm2.add_tokens(50)  # overshoot is allowed for the request in flight
    adm2.release()
    clock.now += 5
    with pytest.raises(RateLimited) as info:
        lim.admit(k)
    # Need the window under 100: the first 60 tokens (t=1000..) leave at 1060.
    assert info.value.retry_after == pytest.approx(50)
    assert info.value.headers["x-ratelimit-remaining-tokens"] == "0"
    clock.now = 1060.5
    lim.admit(k).release()


def test_concurrency_limit_and_idempotent_release() -> None:
    lim = Limiter(Clock())
    k = key(max_concurrency=2)
    a, b = lim.admit(k), lim.admit(k)
    with pytest.raises(RateLimited) as info:
        lim.admit(k)
    assert info.value.retry_after == 1.0 and "concurrent" in info.value.message
    a.release()
    a.release()  # twice must not free two slots
    c = lim.admit(k)
    with pytest.raises(RateLimited):
        lim.admit(k)
    b.release()
    c.release()


def test_limits_are_per_key() -> None:
    lim = Limiter(Clock())
    k1 = key(rpm=1)
    k2 = ApiKey(id="k2", name="other", secret_hash="h2", masked="x", rpm=1)
    lim.admit(k1).release()
    lim.admit(k2).release()
    with pytest.raises(RateLimited):
        lim.admit(k1)


def test_changed_limits_apply_at_once() -> None:
    lim = Limiter(Clock())
    k = key(rpm=1)
    lim.admit(k).release()
    with pytest.raises(RateLimited):
        lim.admit(k)
    k.rpm = 5  # the admin raised the limit
    lim.admit(k).release()


async def test_concurrency_under_load_with_streaming_tokens() -> None:
    """Many concurrent streaming requests: never more than max_concurrency in flight,
    and tokens reported mid-stream close the key once tpm is reached."""
    lim = Limiter()
    k = key(max_concurrency=3, tpm=1000)
    in_flight = 0
    peak = 0
    admitted = refused = 0

    async def one() -> None:
        nonlocal in_flight, peak, admitted, refused
        for _ in range(50):
            try:
                adm = lim.admit(k)
            except RateLimited as exc:
                refused += 1
                assert int(exc.headers["Retry-After"]) >= 1
                await asyncio.sleep(0.001)
                continue
            admitted += 1
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                for _ in range(5):  # a stream of 5 chunks, 10 tokens each
                    await asyncio.sleep(0)
                    adm.add_tokens(10)
            finally:
                in_flight -= 1
                adm.release()
            return

    await asyncio.gather(*(one() for _ in range(40)))
    assert peak == 3
    # 1000 tokens/min at 50 tokens a request: at most 20 requests (+ the ones in flight
    # when the limit was crossed, at most max_concurrency) got through.
    assert 20 <= admitted <= 23
    assert refused > 0
    with pytest.raises(RateLimited) as info:
        lim.admit(k)
    assert "tokens per minute" in info.value.message
