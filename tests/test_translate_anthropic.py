"""Table tests of the pure Anthropic Messages request translation (api.anthropic.request)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from api.anthropic.request import MessagesPlan, estimate_tokens, from_messages_request
from api.core.tools import REQUIRED_NUDGE
from state.options import OptionError

PNG = "iVBORw0KGgo="  # the 8-byte PNG signature, valid base64
URL = "https://img.test/cat.png"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
EMPTY = {"type": "object", "properties": {}}


# -- request builders -----------------------------------------------------------------------
def text(value: str, **extra: Any) -> dict[str, Any]:
    return {"type": "text", "text": value, **extra}


def image(data: str = PNG, media_type: str = "image/png") -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def image_url(url: str = URL) -> dict[str, Any]:
    return {"type": "image", "source": {"type": "url", "url": url}}


def tool_use(cid: str, name: str, value: Any = None) -> dict[str, Any]:
    return {"type": "tool_use", "id": cid, "name": name, "input": value}


def tool_result(cid: str, content: Any = None, **extra: Any) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": cid, "content": content, **extra}


def msg(role: str, *blocks: Any) -> dict[str, Any]:
    """A message: one string argument is string content, else a list of blocks."""
    content = blocks[0] if len(blocks) == 1 and isinstance(blocks[0], str) else list(blocks)
    return {"role": role, "content": content}


def tool(name: str, schema: Any = SCHEMA, **extra: Any) -> dict[str, Any]:
    return {"name": name, "description": f"{name} tool", "input_schema": schema, **extra}


# -- native builders ------------------------------------------------------------------------
def native_msg(role: str, content: str = "", **extra: Any) -> dict[str, Any]:
    return {"role": role, "content": content, **extra}


def native_call(cid: str, index: int, name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"id": cid, "function": {"index": index, "name": name, "arguments": args}}


def native_tool(name: str, schema: Any = SCHEMA) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": name, "description": f"{name} tool", "parameters": schema},
    }


def expect(messages: list[Any], options: Any = None, **extra: Any) -> dict[str, Any]:
    """The native body: options default to max_tokens 64 as num_predict."""
    opts = {"num_predict": 64} if options is None else options
    return {
        "model": "m",
        "messages": messages,
        "stream": True,
        **({"options": opts} if opts else {}),
        **extra,
    }


HI = [msg("user", "Hi")]
NHI = [native_msg("user", "Hi")]


def translate(body: dict[str, Any], **kw: Any) -> MessagesPlan:
    args: dict[str, Any] = {"capabilities": None, "overrides": {}, "enforce": {}, "defaults": {}}
    return from_messages_request(body, model="m", **{**args, **kw})


def full(**fields: Any) -> dict[str, Any]:
    """A request body: model, max_tokens 64 and one user message unless given."""
    return {"model": "claude-x", "max_tokens": 64, "messages": HI, **fields}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, expect(NHI)),
        ({"system": "Be brief."}, expect([native_msg("system", "Be brief."), *NHI])),
        (
            {"system": [text("A", cache_control={"type": "ephemeral"}), text("B")]},
            expect([native_msg("system", "A\n\nB"), *NHI]),
        ),
        ({"system": ""}, expect(NHI)),
        # role: "system" between turns (Claude Code) stays in place
        (
            {
                "messages": [
                    msg("user", "a"),
                    msg("system", text("reminder")),
                    msg("assistant", "b"),
                    msg("system", ""),
                    msg("user", "c"),
                ]
            },
            expect(
                [
                    native_msg("user", "a"),
                    native_msg("system", "reminder"),
                    native_msg("assistant", "b"),
                    native_msg("user", "c"),
                ]
            ),
        ),
        (
            {"messages": [msg("user", text("one", cache_control={}), text("two", citations=[]))]},
            expect([native_msg("user", "one\ntwo")]),
        ),
        # images: base64 (padding repaired) and http(s) URLs kept for the fetcher
        (
            {"messages": [msg("user", text("look"), image("iVBORw0KGgo"), image_url())]},
            expect([native_msg("user", "look", images=[PNG, URL])]),
        ),
        ({"messages": [msg("user", image())]}, expect([native_msg("user", "", images=[PNG])])),
        # tool_use -> tool_calls; tool_result -> tool messages before the user's text
        (
            {
                "messages": [
                    msg("user", "Weather and time?"),
                    msg(
                        "assistant",
                        text("Let me check."),
                        tool_use("toolu_1", "get_weather", {"city": "Paris"}),
                        tool_use("toolu_2", "get_time", '{"tz": "CET"}'),
                    ),
                    msg(
                        "user",
                        tool_result("toolu_1", "Sunny"),
                        text("and?"),
                        tool_result("toolu_2", [text("timeout")], is_error=True),
                    ),
                ]
            },
            expect(
                [
                    native_msg("user", "Weather and time?"),
                    native_msg(
                        "assistant",
                        "Let me check.",
                        tool_calls=[
                            native_call("toolu_1", 0, "get_weather", {"city": "Paris"}),
                            native_call("toolu_2", 1, "get_time", {"tz": "CET"}),
                        ],
                    ),
                    native_msg("tool", "Sunny", tool_call_id="toolu_1", tool_name="get_weather"),
                    native_msg(
                        "tool", "Error: timeout", tool_call_id="toolu_2", tool_name="get_time"
                    ),
                    native_msg("user", "and?"),
                ]
            ),
        ),
        # a result with text and an image, an unknown id (no name), an empty error
        (
            {
                "messages": [
                    msg("assistant", tool_use("toolu_9", "shot")),
                    msg(
                        "user",
                        tool_result("toolu_9", [text("a"), image(), text("b")]),
                        tool_result("toolu_x", is_error=True),
                        tool_result("toolu_y", "", is_error=False),
                    ),
                ]
            },
            expect(
                [
                    native_msg("assistant", tool_calls=[native_call("toolu_9", 0, "shot", {})]),
                    native_msg(
                        "tool", "a\nb", tool_call_id="toolu_9", tool_name="shot", images=[PNG]
                    ),
                    native_msg("tool", "Error", tool_call_id="toolu_x"),
                    native_msg("tool", "", tool_call_id="toolu_y"),
                ]
            ),
        ),
        # thinking is replayed, redacted thinking dropped
        (
            {
                "messages": [
                    msg("user", "Q"),
                    msg(
                        "assistant",
                        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                        {"type": "redacted_thinking", "data": "opaque"},
                        text("42"),
                    ),
                ]
            },
            expect([native_msg("user", "Q"), native_msg("assistant", "42", thinking="hmm")]),
        ),
        # plain-text documents and search results become text
        (
            {
                "messages": [
                    msg(
                        "user",
                        {
                            "type": "document",
                            "title": "Notes",
                            "context": "from a meeting",
                            "source": {"type": "text", "media_type": "text/plain", "data": "x=1"},
                        },
                        {
                            "type": "document",
                            "source": {"type": "content", "content": [text("p1"), image()]},
                        },
                        {
                            "type": "search_result",
                            "title": "Docs",
                            "source": "https://d.test",
                            "content": [text("r1"), text("r2")],
                        },
                    )
                ]
            },
            expect(
                [
                    native_msg(
                        "user",
                        "Notes\nfrom a meeting\nx=1\np1\nDocs\nhttps://d.test\nr1\nr2",
                        images=[PNG],
                    )
                ]
            ),
        ),
        # sampling; stop_sequences are NOT sent as Ollama's stop; Ollama extras accepted
        (
            {
                "temperature": 0.5,
                "top_p": 0.9,
                "top_k": 20,
                "stop_sequences": ["END"],
                "stop": ["ignored"],
                "seed": 7,
                "num_ctx": 8192,
                "options": {"repeat_penalty": 1.1},
                "keep_alive": "5m",
                "truncate": False,
                "service_tier": "auto",
                "context_management": {"edits": []},
                "container": "c1",
                "mcp_servers": [],
                "metadata": {"user_id": "u1", "other": 1},
                "something_new": {"x": 1},
            },
            expect(
                NHI,
                {
                    "num_predict": 64,
                    "temperature": 0.5,
                    "top_p": 0.9,
                    "top_k": 20,
                    "seed": 7,
                    "num_ctx": 8192,
                    "repeat_penalty": 1.1,
                },
                keep_alive="5m",
                truncate=False,
            ),
        ),
        ({"max_tokens": 32000.0, "top_k": 0}, expect(NHI, {"num_predict": 32000, "top_k": 0})),
        # thinking -> think
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, expect(NHI, think="low")),
        ({"thinking": {"type": "enabled", "budget_tokens": 4095}}, expect(NHI, think="low")),
        ({"thinking": {"type": "enabled", "budget_tokens": 4096}}, expect(NHI, think="medium")),
        ({"thinking": {"type": "enabled", "budget_tokens": 16384}}, expect(NHI, think="high")),
        ({"thinking": {"type": "enabled", "budget_tokens": 99999}}, expect(NHI, think="high")),
        ({"thinking": {"type": "disabled"}}, expect(NHI, think=False)),
        ({"thinking": {"type": "adaptive"}}, expect(NHI)),
        (
            {"thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}},
            expect(NHI, think="high"),
        ),
        ({"output_config": {"effort": "low"}}, expect(NHI, think="low")),
        ({"output_config": {"effort": "medium"}}, expect(NHI, think="medium")),
        ({"output_config": {"effort": "xhigh"}}, expect(NHI, think="max")),
        ({"output_config": {"effort": "max"}}, expect(NHI, think="max")),
        (
            {"thinking": {"type": "disabled"}, "output_config": {"effort": "high"}},
            expect(NHI, think=False),
        ),
        (
            {
                "thinking": {"type": "enabled", "budget_tokens": 2048},
                "output_config": {"effort": "max"},
            },
            expect(NHI, think="low"),
        ),
        ({"think": True}, expect(NHI, think=True)),
        ({"think": True, "thinking": {"type": "disabled"}}, expect(NHI, think=False)),
        # tools and tool_choice
        ({"tools": [tool("f")]}, expect(NHI, tools=[native_tool("f")])),
        (
            {
                "tools": [tool("f", type="custom", cache_control={})],
                "tool_choice": {"type": "auto"},
            },
            expect(NHI, tools=[native_tool("f")]),
        ),
        (
            {"tools": [tool("f"), tool("g")], "tool_choice": {"type": "any"}},
            expect(
                [native_msg("system", REQUIRED_NUDGE), *NHI],
                tools=[native_tool("f"), native_tool("g")],
            ),
        ),
        (
            {"tools": [tool("f"), tool("g")], "tool_choice": {"type": "tool", "name": "g"}},
            expect(
                [
                    native_msg(
                        "system",
                        "You must respond by calling the function 'g'; do not answer in plain "
                        "text.",
                    ),
                    *NHI,
                ],
                tools=[native_tool("g")],
                format=SCHEMA,
            ),
        ),
        ({"tools": [tool("f")], "tool_choice": {"type": "none"}}, expect(NHI)),
        (
            {"tools": [{"name": "f"}]},
            expect(
                NHI, tools=[{"type": "function", "function": {"name": "f", "parameters": EMPTY}}]
            ),
        ),
        # server tools are left out
        (
            {
                "tools": [
                    {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
                    {"type": "bash_20250124", "name": "bash"},
                    tool("f"),
                    {"type": "mcp_toolset", "mcp_server_name": "x"},
                ]
            },
            expect(NHI, tools=[native_tool("f")]),
        ),
        # structured output
        (
            {"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},
            expect(NHI, format=SCHEMA),
        ),
        ({"output_format": {"type": "json_schema", "schema": SCHEMA}}, expect(NHI, format=SCHEMA)),
    ],
)
def test_native_body(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    assert translate(full(**fields)).native == expected


@pytest.mark.parametrize(
    ("kw", "fields", "expected"),
    [
        (
            {"defaults": {"temperature": 0.2, "num_ctx": 4096}},
            {"temperature": 0.7},
            expect(NHI, {"num_predict": 64, "temperature": 0.7, "num_ctx": 4096}),
        ),
        (
            {"overrides": {"top_k": 10}},
            {"top_k": 20},
            expect(NHI, {"num_predict": 64, "top_k": 20}),
        ),
        ({"overrides": {"top_k": 10}}, {}, expect(NHI, {"num_predict": 64, "top_k": 10})),
        (
            {"enforce": {"num_ctx": 2048, "num_predict": 100}},
            {"num_ctx": 8192},
            expect(NHI, {"num_predict": 100, "num_ctx": 2048}),
        ),
        (
            {"enforce": {"think": False}},
            {"thinking": {"type": "enabled", "budget_tokens": 2048}},
            expect(NHI, think=False),
        ),
        (
            {"overrides": {"think": "high", "keep_alive": "1h"}},
            {},
            expect(NHI, think="high", keep_alive="1h"),
        ),
        (
            {"capabilities": {"completion"}},
            {"thinking": {"type": "enabled", "budget_tokens": 2048}},
            expect(NHI),
        ),
        (
            {"capabilities": {"completion", "thinking", "tools"}},
            {"thinking": {"type": "enabled", "budget_tokens": 2048}, "tools": [tool("f")]},
            expect(NHI, think="low", tools=[native_tool("f")]),
        ),
    ],
)
def test_model_settings(
    kw: dict[str, Any], fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert translate(full(**fields), **kw).native == expected


PLAN = {
    "stream": False,
    "stop_sequences": [],
    "tool_choice": "auto",
    "forced_function": None,
    "parallel_tool_calls": True,
    "thinking_requested": False,
    "thinking_output": "show",
    "end_user": None,
    "dropped_tools": [],
    "image_urls": [],
    "has_images": False,
}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, PLAN),
        (
            {
                "stream": True,
                "stop_sequences": ["END", "\n\nHuman:"],
                "metadata": {"user_id": "u-1"},
            },
            PLAN | {"stream": True, "stop_sequences": ["END", "\n\nHuman:"], "end_user": "u-1"},
        ),
        (
            {
                "tools": [tool("f")],
                "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
            },
            PLAN | {"tool_choice": "required", "parallel_tool_calls": False},
        ),
        (
            {"tools": [tool("f")], "tool_choice": {"type": "tool", "name": "f"}},
            PLAN | {"tool_choice": "named", "forced_function": "f"},
        ),
        (
            {
                "tools": [tool("f")],
                "tool_choice": {"type": "auto", "disable_parallel_tool_use": False},
            },
            PLAN,
        ),
        ({"tools": [tool("f")], "tool_choice": {"type": "none"}}, PLAN | {"tool_choice": "none"}),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 2048}},
            PLAN | {"thinking_requested": True},
        ),
        (
            {"thinking": {"type": "adaptive", "display": "omitted"}},
            PLAN | {"thinking_requested": True, "thinking_output": "omit"},
        ),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 2048, "display": "summarized"}},
            PLAN | {"thinking_requested": True},
        ),
        ({"output_config": {"effort": "high"}}, PLAN | {"thinking_requested": True}),
        ({"thinking": {"type": "disabled"}}, PLAN),
        (
            {
                "tools": [
                    {"type": "web_search_20250305", "name": "web_search"},
                    {"type": "computer_20250124"},
                ]
            },
            PLAN | {"dropped_tools": ["web_search", "computer_20250124"]},
        ),
        (
            {"messages": [msg("user", image_url(), image())]},
            PLAN | {"image_urls": [URL], "has_images": True},
        ),
        ({"messages": [msg("user", image())]}, PLAN | {"has_images": True}),
    ],
)
def test_plan_fields(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    plan = dataclasses.asdict(translate(full(**fields)))
    assert {k: v for k, v in plan.items() if k != "native"} == expected


def test_plan_decoder() -> None:
    plan = translate(
        full(
            stop_sequences=["END"],
            tools=[tool("f")],
            tool_choice={"type": "tool", "name": "f", "disable_parallel_tool_use": True},
        )
    )
    decoder = plan.decoder()
    fields = (
        "tool_choice",
        "parallel_tool_calls",
        "forced_function",
        "stop_sequences",
        "call_prefix",
    )
    assert {f: getattr(decoder, f) for f in fields} == {
        "tool_choice": "named",
        "parallel_tool_calls": False,
        "forced_function": "f",
        "stop_sequences": ("END",),
        "call_prefix": "toolu_",
    }


HEX64 = "ab" * 32
UUID_A = "1f2e3d4c-0000-4000-8000-000000000001"
UUID_S = "5e6f7a8b-0000-4000-8000-000000000002"


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        (None, None),
        ({}, None),
        ({"user_id": None}, None),
        ({"user_id": ""}, None),
        ({"user_id": "user-42"}, "user-42"),
        ({"user_id": "x" * 300}, "x" * 256),
        (
            {
                "user_id": json.dumps(
                    {"device_id": HEX64, "account_uuid": UUID_A, "session_id": UUID_S}
                )
            },
            "account:1f2e3d4c session:5e6f7a8b",
        ),
        (
            {"user_id": json.dumps({"device_id": HEX64, "account_uuid": "", "session_id": UUID_S})},
            "device:abababab session:5e6f7a8b",
        ),
        ({"user_id": f'{{"session_id": "{UUID_S}"}}'}, "session:5e6f7a8b"),
        ({"user_id": '{"team": "blue"}'}, '{"team": "blue"}'),
        ({"user_id": "{not json"}, "{not json"),
        (
            {"user_id": f"user_{HEX64}_account_{UUID_A}_session_{UUID_S}"},
            "account:1f2e3d4c session:5e6f7a8b",
        ),
        (
            {"user_id": f"user_{HEX64}_account__session_{UUID_S}"},
            "device:abababab session:5e6f7a8b",
        ),
    ],
)
def test_end_user(metadata: Any, expected: str | None) -> None:
    fields = {} if metadata is None else {"metadata": metadata}
    assert translate(full(**fields)).end_user == expected


def test_count_only() -> None:
    body = {"model": "claude-x", "system": "abcd", "messages": HI, "stream": True}
    plan = translate(body, count_only=True)
    assert (plan.native, plan.stream) == (expect([native_msg("system", "abcd"), *NHI], {}), False)
    # system (6 + 4 bytes) + user (4 + 2 bytes) = 16 bytes -> 4 tokens, plus 2 messages x 4
    assert estimate_tokens(plan.native) == 12


@pytest.mark.parametrize(
    ("native", "expected"),
    [
        ({"messages": []}, 0),
        ({"messages": [native_msg("user", "abcd")]}, 2 + 4),  # 8 bytes
        ({"messages": [native_msg("user", "日本語")]}, 4 + 4),  # 4 + 9 = 13 bytes
        ({"messages": [native_msg("user", "", images=["x", "y"])]}, 1 + 4 + 2 * 768),
        # assistant (9) + call name f (1) + '{"a": 1}' (8) = 18 bytes -> 5
        (
            {
                "messages": [
                    native_msg("assistant", tool_calls=[native_call("c", 0, "f", {"a": 1})])
                ]
            },
            5 + 4,
        ),
        ({"messages": [native_msg("tool", "ok", tool_name="f", thinking="")]}, 2 + 4),  # 7 bytes
        ({"messages": [], "tools": [{"type": "function"}]}, 6),  # '[{"type": "function"}]': 22
        ({"messages": [], "format": {"type": "object"}}, 5),  # '{"type": "object"}': 18
    ],
)
def test_estimate_tokens(native: dict[str, Any], expected: int) -> None:
    assert estimate_tokens(native) == expected


def bad(**fields: Any) -> dict[str, Any]:
    return full(**fields)


def one(*blocks: Any, role: str = "user") -> dict[str, Any]:
    """A body whose only message holds these blocks."""
    return full(messages=[msg(role, *blocks)])


def blob(source: dict[str, Any]) -> dict[str, Any]:
    return {"type": "image", "source": source}


PDF = {"type": "base64", "media_type": "application/pdf", "data": PNG}
C0 = "messages[0].content[0]"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (bad(max_tokens=None), "max_tokens"),
        (bad(max_tokens=0), "max_tokens"),
        (bad(max_tokens="64"), "max_tokens"),
        (bad(max_tokens=1.5), "max_tokens"),
        (bad(max_tokens=True), "max_tokens"),
        (bad(temperature=1.5), "temperature"),
        (bad(temperature=-0.1), "temperature"),
        (bad(temperature="hot"), "temperature"),
        (bad(top_p=2), "top_p"),
        (bad(top_k=-1), "top_k"),
        (bad(top_k=1.5), "top_k"),
        (bad(stop_sequences="END"), "stop_sequences"),
        (bad(stop_sequences=[""]), "stop_sequences[0]"),
        (bad(stop_sequences=["a", 1]), "stop_sequences[1]"),
        (bad(stop_sequences=["x"] * 65), "stop_sequences"),
        (bad(stream="yes"), "stream"),
        (bad(thinking="on"), "thinking"),
        (bad(thinking={"type": "enabled"}), "thinking.budget_tokens"),
        (bad(thinking={"type": "enabled", "budget_tokens": 1023}), "thinking.budget_tokens"),
        (bad(thinking={"type": "enabled", "budget_tokens": "2048"}), "thinking.budget_tokens"),
        (bad(thinking={"type": "sometimes"}), "thinking.type"),
        (bad(thinking={"type": "adaptive", "display": "full"}), "thinking.display"),
        (bad(output_config="high"), "output_config"),
        (bad(output_config={"effort": "extreme"}), "output_config.effort"),
        (bad(output_config={"format": {"type": "json"}}), "output_config.format"),
        (bad(output_format={"type": "json_schema"}), "output_format"),
        (bad(metadata="u"), "metadata"),
        (bad(metadata={"user_id": 5}), "metadata.user_id"),
        (bad(options={"bogus": 1}), "options.bogus"),
        (bad(num_ctx="big"), "num_ctx"),
        (bad(keep_alive=[]), "keep_alive"),
        (bad(think="very"), "think"),
        (bad(tools={}), "tools"),
        (bad(tools=["x"]), "tools[0]"),
        (bad(tools=[{"input_schema": SCHEMA}]), "tools[0].name"),
        (bad(tools=[tool("f", "obj")]), "tools[0].input_schema"),
        (bad(tools=[tool("f", description=5)]), "tools[0].description"),
        (bad(tools=[{"type": 5, "name": "f"}]), "tools[0].type"),
        (bad(tools=[tool("f")], tool_choice="auto"), "tool_choice"),
        (bad(tools=[tool("f")], tool_choice={"type": "required"}), "tool_choice"),
        (bad(tools=[tool("f")], tool_choice={"type": "tool"}), "tool_choice.name"),
        (bad(tools=[tool("f")], tool_choice={"type": "tool", "name": "g"}), "tool_choice.name"),
        (
            bad(
                tools=[{"type": "web_search_20250305", "name": "web_search"}],
                tool_choice={"type": "tool", "name": "web_search"},
            ),
            "tool_choice.name",
        ),
        (bad(tool_choice={"type": "any"}), "tool_choice"),
        (
            bad(tools=[{"type": "bash_20250124", "name": "bash"}], tool_choice={"type": "any"}),
            "tool_choice",
        ),
        (
            bad(
                tools=[tool("f")], tool_choice={"type": "auto", "disable_parallel_tool_use": "yes"}
            ),
            "tool_choice.disable_parallel_tool_use",
        ),
        (bad(system=5), "system"),
        (bad(system=[image()]), "system[0].type"),
        (bad(system=[{"type": "text", "text": 1}]), "system[0].text"),
        (bad(messages=None), "messages"),
        (bad(messages=[]), "messages"),
        (bad(messages=["hi"]), "messages[0]"),
        (bad(messages=[msg("tool", "x")]), "messages[0].role"),
        (bad(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
        (
            bad(messages=[msg("user", "x"), {"role": "user", "content": ["x"]}]),
            "messages[1].content[0]",
        ),
        (one(image(), role="system"), f"{C0}.type"),
        (one({"type": "text", "text": 5}), f"{C0}.text"),
        (one(tool_use("t", "f")), f"{C0}.type"),
        (one({"type": "thinking", "thinking": "x"}), f"{C0}.type"),
        (one({"type": "container_upload", "file_id": "f"}), f"{C0}.type"),
        (one(image(), role="assistant"), f"{C0}.type"),
        (one(tool_result("t", "x"), role="assistant"), f"{C0}.type"),
        (one({"type": "tool_use", "name": "f", "input": {}}, role="assistant"), f"{C0}.id"),
        (one(tool_use("t", ""), role="assistant"), f"{C0}.name"),
        (one(tool_use("t", "f", [1]), role="assistant"), f"{C0}.input"),
        (one({"type": "thinking", "signature": "s"}, role="assistant"), f"{C0}.thinking"),
        (one({"type": "image"}), f"{C0}.source"),
        (one(blob({"type": "file", "file_id": "f"})), f"{C0}.source.type"),
        (one(image(media_type="application/pdf")), f"{C0}.source.media_type"),
        (one(blob({"type": "base64", "data": PNG})), f"{C0}.source.media_type"),
        (one(image("@@@")), f"{C0}.source.data"),
        (one(image_url("ftp://x.test/a.png")), f"{C0}.source.url"),
        (one({"type": "document", "source": PDF}), f"{C0}.source.type"),
        (one({"type": "document", "source": {"type": "url", "url": URL}}), f"{C0}.source.type"),
        (one({"type": "document", "source": {"type": "text", "data": 5}}), f"{C0}.source.data"),
        (
            one(
                {"type": "document", "source": {"type": "content", "content": [tool_use("t", "f")]}}
            ),
            f"{C0}.source.content[0].type",
        ),
        (one({"type": "search_result", "content": 5}), f"{C0}.content"),
        (one({"type": "search_result", "content": [image()]}), f"{C0}.content[0].text"),
        (one({"type": "tool_result", "content": "x"}), f"{C0}.tool_use_id"),
        (one(tool_result("t", 5)), f"{C0}.content"),
        (
            one(tool_result("t", [{"type": "document", "source": PDF}])),
            f"{C0}.content[0].source.type",
        ),
        (one(tool_result("t", [tool_result("u", "x")])), f"{C0}.content[0].type"),
        (one(tool_result("t", "x", is_error="yes")), f"{C0}.is_error"),
        (one(*[image_url(f"https://img.test/{i}.png") for i in range(17)]), "messages"),
    ],
)
def test_bad_request(body: dict[str, Any], param: str) -> None:
    with pytest.raises(OptionError) as info:
        translate(body)
    assert info.value.param == param


@pytest.mark.parametrize(
    ("body", "capabilities", "param"),
    [
        (one(image()), {"completion"}, "messages"),
        (one(tool_result("t", [image()])), {"completion", "tools"}, "messages"),
        (bad(tools=[tool("f")]), {"completion"}, "tools"),
    ],
)
def test_bad_for_model(body: dict[str, Any], capabilities: set[str], param: str) -> None:
    with pytest.raises(OptionError) as info:
        translate(body, capabilities=capabilities)
    assert info.value.param == param
