"""Pure helpers behind the admin pages: formatting, editor rows, /api/ps rows."""

from __future__ import annotations

from typing import Any

import pytest

from state.options import OLLAMA_OPTIONS
from web.pages_dashboard import loaded_rows
from web.pages_util import fmt_ago, fmt_bytes, fmt_num, fmt_time, input_value, option_rows, ticks


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "–"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KB"),
        (2_019_393_189, "1.9 GB"),
        (5 * 1024**4, "5.0 TB"),
    ],
)
def test_fmt_bytes(value: Any, expected: str) -> None:
    assert fmt_bytes(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "–"),
        (0, "0"),
        (131072, "131,072"),
        (2.5, "2.5"),
        (3.0, "3"),
    ],
)
def test_fmt_num(value: Any, expected: str) -> None:
    assert fmt_num(value) == expected


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (None, "never"),
        (1000.0, "just now"),
        (1000 - 300, "5 min ago"),
        (1000 - 3 * 3600, "3 h ago"),
        (1000 - 86400, "1 day ago"),
        (1000 - 5 * 86400, "5 days ago"),
        (1000 + 600, "in 10 min"),
        (1000 + 7200, "in 2 h"),
        (1000 + 3 * 86400, "in 3 days"),
    ],
)
def test_fmt_ago(ts: Any, expected: str) -> None:
    assert fmt_ago(ts, now=1000.0) == expected


def test_fmt_time() -> None:
    assert fmt_time(0) == "1970-01-01 00:00 UTC"
    assert fmt_time(None) == "never"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        (True, "true"),
        (False, "false"),
        (4096, "4096"),
        (0.7, "0.7"),
        (1.0, "1.0"),
        ("10m", "10m"),
        (["END"], "END"),
        (["a", "b"], '["a", "b"]'),
        (["[x"], '["[x"]'),  # a lone stop string starting with "[" must not read back as JSON
    ],
)
def test_input_value(value: Any, expected: str) -> None:
    assert input_value(value) == expected


def _by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in rows}


def test_option_rows_list_every_option_with_type_and_default() -> None:
    rows = option_rows()
    names = [r["name"] for r in rows]
    assert names == ["think", "keep_alive", "reasoning_output", *[o.name for o in OLLAMA_OPTIONS]]
    temp = _by_name(rows)["temperature"]
    assert temp == {
        "name": "temperature",
        "kind": "float",
        "default": "0.8",
        "help": "Sampling temperature.",
        "runner": False,
        "value": "",
        "mode": "override",
        "source": None,
        "locked": False,
    }
    assert _by_name(rows)["num_ctx"]["runner"] is True


@pytest.mark.parametrize(
    ("blocks", "option", "value", "mode", "source", "locked"),
    [
        ({"ui": {"top_k": 5}}, "top_k", "5", "override", "ui", False),
        ({"ui_enforce": {"top_k": 5}}, "top_k", "5", "enforce", "ui", False),
        ({"cfg": {"top_k": 9}, "ui": {"top_k": 5}}, "top_k", "9", "override", "config", True),
        (
            {"cfg_enforce": {"top_k": 9}, "ui": {"top_k": 5}},
            "top_k",
            "9",
            "enforce",
            "config",
            True,
        ),
        ({"ui": {"think": "low"}}, "think", "low", "override", "ui", False),
        ({"ui": {"stop": ["a", "b"]}}, "stop", '["a", "b"]', "override", "ui", False),
    ],
)
def test_option_rows_sources(
    blocks: dict[str, Any], option: str, value: str, mode: str, source: str, locked: bool
) -> None:
    row = _by_name(option_rows(**blocks))[option]
    assert (row["value"], row["mode"], row["source"], row["locked"]) == (
        value,
        mode,
        source,
        locked,
    )


def test_ticks_escapes_before_marking_code() -> None:
    assert (
        str(ticks("use `a<b>` or <i>x</i>"))
        == "use <code>a&lt;b&gt;</code> or &lt;i&gt;x&lt;/i&gt;"
    )


def test_loaded_rows() -> None:
    ps = {
        "models": [
            {
                "name": "qwen3:8b",
                "size": 6_654_000_000,
                "size_vram": 3_327_000_000,
                "context_length": 8192,
                "expires_at": "2026-08-20T10:05:02.5Z",
                "details": {"parameter_size": "8.2B", "quantization_level": "Q4_K_M"},
            },
            {"model": "bare:1b"},
            "garbage",
        ]
    }
    assert loaded_rows(ps) == [
        {
            "name": "qwen3:8b",
            "context_length": 8192,
            "size": 6_654_000_000,
            "gpu_share": "50%",
            "expires_at": "2026-08-20 10:05:02",
            "parameter_size": "8.2B",
            "quantization": "Q4_K_M",
        },
        {
            "name": "bare:1b",
            "context_length": None,
            "size": None,
            "gpu_share": "–",
            "expires_at": None,
            "parameter_size": None,
            "quantization": None,
        },
    ]
    assert loaded_rows({}) == []
