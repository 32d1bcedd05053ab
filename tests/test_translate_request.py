"""Table tests of the pure request translation: messages, parameters, formats, tools, schemas."""

from __future__ import annotations

from typing import Any

import pytest

from api.core.params import layer_params, native_fields, read_params, reasoning_mode
from api.core.schema import normalize_parameters
from api.openai.chat_request import (
    convert_messages,
    convert_tools,
    from_chat_request,
    response_format,
)
from api.openai.completions import embed_request, encode_vector, from_completion_request
from state.options import OptionError

PNG = "iVBORw0KGgo="  # 8 bytes of PNG signature, valid base64


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        (
            [{"role": "developer", "content": "be brief"}],
            [{"role": "system", "content": "be brief"}],
        ),
        (
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "a"},
                        {"type": "image_url", "image_url": {"url": f"data:image/gif;base64,{PNG}"}},
                        {"type": "text", "text": "b"},
                    ],
                }
            ],
            [{"role": "user", "content": "a\nb", "images": [PNG]}],
        ),
        (
            [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": "https://x.test/a.png"}],
                }
            ],
            [{"role": "user", "content": "", "images": ["https://x.test/a.png"]}],
        ),
        (
            [
                {
                    "role": "assistant",
                    "content": None,
                    "reasoning": "hm",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": ""},
                        },
                        {
                            "id": "c2",
                            "type": "function",
                            "function": {"name": "g", "arguments": "{not json"},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "ok"}]},
                {"role": "tool", "tool_call_id": "c1", "name": "explicit", "content": "r"},
            ],
            [
                {
                    "role": "assistant",
                    "content": "",
                    "thinking": "hm",
                    "tool_calls": [
                        {"id": "c1", "function": {"index": 0, "name": "f", "arguments": {}}},
                        {
                            "id": "c2",
                            "function": {
                                "index": 1,
                                "name": "g",
                                "arguments": {"_raw": "{not json"},
                            },
                        },
                    ],
                },
                {"role": "tool", "content": "ok", "tool_call_id": "c2", "tool_name": "g"},
                {"role": "tool", "content": "r", "tool_call_id": "c1", "tool_name": "explicit"},
            ],
        ),
        (
            [
                {
                    "role": "assistant",
                    "content": "x",
                    "reasoning_content": "rc",
                    "tool_calls": [{"function": {"name": "f", "arguments": "[1]"}}],
                }
            ],
            [
                {
                    "role": "assistant",
                    "content": "x",
                    "thinking": "rc",
                    "tool_calls": [
                        {"function": {"index": 0, "name": "f", "arguments": {"_raw": "[1]"}}}
                    ],
                }
            ],
        ),
        (
            [
                {
                    "role": "assistant",
                    "content": "a",
                    "reasoning_details": [
                        {"type": "reasoning.text", "text": "step 1. "},
                        {"type": "reasoning.encrypted"},
                        {"type": "reasoning.text", "text": "step 2."},
                    ],
                }
            ],
            [{"role": "assistant", "content": "a", "thinking": "step 1. step 2."}],
        ),
        (
            [{"role": "function", "name": "f", "content": "legacy"}],
            [{"role": "tool", "content": "legacy", "tool_name": "f"}],
        ),
        (
            [{"role": "assistant", "content": "<think>plan it</think>\n\nThe answer."}],
            [{"role": "assistant", "content": "The answer.", "thinking": "plan it"}],
        ),
        (
            [{"role": "assistant", "content": "<think>unclosed"}],
            [{"role": "assistant", "content": "<think>unclosed"}],
        ),
        (
            [{"role": "user", "content": "<think>x</think>y"}],
            [{"role": "user", "content": "<think>x</think>y"}],
        ),
    ],
)
def test_convert_messages(messages: list[Any], expected: list[Any]) -> None:
    assert convert_messages(messages) == expected


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        (None, "messages"),
        ([], "messages"),
        (["hi"], "messages[0]"),
        ([{"role": "robot", "content": "x"}], "messages[0].role"),
        ([{"role": "user", "content": 5}], "messages[0].content"),
        ([{"role": "user", "content": [{"type": "file"}]}], "messages[0].content[0].type"),
        (
            [{"role": "user", "content": [{"type": "text", "text": 1}]}],
            "messages[0].content[0].text",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "data:x,abc"}}],
                }
            ],
            "messages[0].content[0].image_url.url",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}
                    ],
                }
            ],
            "messages[0].content[0].image_url.url",
        ),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}],
            "messages[0].content[0].image_url.url",
        ),
        (
            [{"role": "assistant", "tool_calls": [{"function": {}}]}],
            "messages[0].tool_calls[0].function.name",
        ),
    ],
)
def test_convert_messages_errors_name_the_param(messages: Any, param: str) -> None:
    with pytest.raises(OptionError) as info:
        convert_messages(messages)
    assert info.value.param == param


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, {}),
        (
            {
                "temperature": 0,
                "top_p": 1,
                "seed": 3.0,
                "stop": "x",
                "presence_penalty": 0.5,
                "frequency_penalty": 1,
                "max_tokens": 10,
            },
            {
                "options": {
                    "temperature": 0.0,
                    "top_p": 1.0,
                    "seed": 3,
                    "stop": ["x"],
                    "presence_penalty": 0.5,
                    "frequency_penalty": 1.0,
                    "num_predict": 10,
                }
            },
        ),
        ({"max_tokens": 10, "max_completion_tokens": 20}, {"options": {"num_predict": 20}}),
        (
            {
                "num_ctx": 8192,
                "top_k": 20,
                "options": {"min_p": 0.1, "top_k": 5, "keep_alive": "5m"},
                "keep_alive": -1,
                "truncate": False,
                "shift": True,
            },
            {
                "options": {"min_p": 0.1, "top_k": 20, "num_ctx": 8192},
                "keep_alive": -1,
                "truncate": False,
                "shift": True,
            },
        ),
        ({"think": "HIGH"}, {"think": "high"}),
        ({"reasoning_effort": "none"}, {"think": False}),
        ({"reasoning_effort": "minimal"}, {"think": "low"}),
        ({"reasoning_effort": "xhigh"}, {"think": "max"}),
        ({"reasoning_effort": "low", "reasoning": {"effort": "high"}}, {"think": "high"}),
        ({"reasoning_effort": "low", "think": False}, {"think": False}),
        ({"temperature": None, "stop": None}, {}),
    ],
)
def test_read_params(body: dict[str, Any], expected: dict[str, Any]) -> None:
    assert native_fields(read_params(body)) == expected


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"temperature": "hot"}, "temperature"),
        ({"max_tokens": "10"}, "max_tokens"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"num_ctx": "8192"}, "num_ctx"),
        ({"top_k": 1.5}, "top_k"),
        ({"stop": [1]}, "stop"),
        ({"options": []}, "options"),
        ({"options": {"num_ctx": "x"}}, "options.num_ctx"),
        ({"options": {"bogus": 1}}, "options.bogus"),
        ({"keep_alive": "forever"}, "keep_alive"),
        ({"think": "very"}, "think"),
        ({"reasoning_effort": "huge"}, "reasoning_effort"),
        ({"reasoning": "high"}, "reasoning"),
        ({"reasoning": {"effort": 3}}, "reasoning.effort"),
        ({"truncate": "no"}, "truncate"),
        ({"use_mmap": 1}, "use_mmap"),
    ],
)
def test_read_params_type_errors(body: dict[str, Any], param: str) -> None:
    with pytest.raises(OptionError) as info:
        read_params(body)
    assert info.value.param == param


def test_precedence_request_over_override_over_default_and_enforce_wins() -> None:
    request = read_params({"temperature": 0.1, "num_ctx": 99, "think": True})
    merged = layer_params(
        request,
        overrides={"temperature": 0.5, "top_k": 7, "keep_alive": "1h"},
        enforce={"num_ctx": 4096},
        defaults={"temperature": 0.9, "top_k": 1, "seed": 4, "think": False},
    )
    assert native_fields(merged) == {
        "options": {"temperature": 0.1, "top_k": 7, "seed": 4, "num_ctx": 4096},
        "think": True,
        "keep_alive": "1h",
    }


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((None, {}, {}, None), "reasoning_content"),
        ((None, {}, {}, "hidden"), "hidden"),
        ((None, {}, {"reasoning_output": "both"}, "hidden"), "both"),
        ((None, {"reasoning_output": "inline"}, {"reasoning_output": "both"}, None), "inline"),
        (("reasoning", {"reasoning_output": "inline"}, {}, None), "reasoning"),
    ],
)
def test_reasoning_mode(args: tuple[Any, ...], expected: str) -> None:
    assert reasoning_mode(*args) == expected


@pytest.mark.parametrize(
    ("rf", "expected"),
    [
        (None, None),
        ({"type": "text"}, None),
        ({"type": "json_object"}, "json"),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
            {"type": "object"},
        ),
        ({"type": "json_schema", "json_schema": {"name": "x"}}, "json"),
    ],
)
def test_response_format(rf: Any, expected: Any) -> None:
    assert response_format(rf) == expected


@pytest.mark.parametrize(
    "rf",
    [
        "json",
        {"type": "xml"},
        {"type": "json_schema"},
        {"type": "json_schema", "json_schema": {"schema": []}},
    ],
)
def test_response_format_errors(rf: Any) -> None:
    with pytest.raises(OptionError) as info:
        response_format(rf)
    assert info.value.param.startswith("response_format")


TOOLS = [
    {"type": "function", "function": {"name": "a", "description": "A"}},
    {
        "type": "function",
        "function": {
            "name": "b",
            "parameters": {"type": "object", "properties": {"x": {"type": "string"}}},
        },
    },
]
NATIVE_A = {
    "type": "function",
    "function": {
        "name": "a",
        "description": "A",
        "parameters": {"type": "object", "properties": {}},
    },
}
NATIVE_B = {
    "type": "function",
    "function": {
        "name": "b",
        "parameters": {"type": "object", "properties": {"x": {"type": "string"}}},
    },
}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, ([NATIVE_A, NATIVE_B], None, "auto")),
        ("auto", ([NATIVE_A, NATIVE_B], None, "auto")),
        ("none", ([], None, "none")),
        (
            "required",
            (
                [NATIVE_A, NATIVE_B],
                "You must respond by calling one of the provided "
                "tools; do not answer in plain text.",
                "required",
            ),
        ),
        (
            {"type": "function", "function": {"name": "b"}},
            (
                [NATIVE_B],
                "You must respond by calling the function 'b'; do not answer in plain text.",
                "named",
            ),
        ),
    ],
)
def test_convert_tools(choice: Any, expected: Any) -> None:
    assert convert_tools(TOOLS, choice) == expected


@pytest.mark.parametrize(
    ("tools", "choice"),
    [
        ("x", None),
        ([{"type": "retrieval"}], None),
        ([{"function": {}}], None),
        (TOOLS, "sometimes"),
        (TOOLS, {"type": "function", "function": {"name": "zzz"}}),
        ([], "required"),
    ],
)
def test_convert_tools_errors(tools: Any, choice: Any) -> None:
    with pytest.raises(OptionError) as info:
        convert_tools(tools, choice)
    assert info.value.param.startswith(("tools", "tool_choice"))


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        (
            {
                "type": "object",
                "properties": {
                    "n": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": 9,
                        "default": 3,
                        "description": "Count",
                    }
                },
            },
            {
                "type": "object",
                "properties": {
                    "n": {
                        "type": "integer",
                        "description": "Count (default 3; minimum 1; maximum 9)",
                    }
                },
            },
        ),
        (
            {
                "$defs": {"Unit": {"type": "string", "enum": ["c", "f"]}},
                "type": "object",
                "properties": {"u": {"$ref": "#/$defs/Unit", "description": "unit"}},
            },
            {
                "type": "object",
                "properties": {"u": {"type": "string", "enum": ["c", "f"], "description": "unit"}},
            },
        ),
        (
            {
                "type": "object",
                "properties": {"v": {"oneOf": [{"type": "string"}, {"type": "integer"}]}},
            },
            {
                "type": "object",
                "properties": {"v": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
            },
        ),
        (
            {
                "allOf": [
                    {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                    {
                        "properties": {"b": {"type": "string", "format": "date", "pattern": "^2"}},
                        "required": ["b"],
                    },
                ]
            },
            {
                "type": "object",
                "properties": {
                    "a": {"type": "string"},
                    "b": {"type": "string", "description": 'pattern "^2"; format "date"'},
                },
                "required": ["a", "b"],
            },
        ),
        (
            {
                "type": "object",
                "title": "T",
                "additionalProperties": False,
                "properties": {"o": {"type": ["string", "null"], "const": "x"}},
            },
            {
                "type": "object",
                "properties": {"o": {"type": "string", "description": 'may be null; must be "x"'}},
            },
        ),
        (
            {
                "$defs": {
                    "Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}
                },
                "type": "object",
                "properties": {"n": {"$ref": "#/$defs/Node"}},
            },
            {
                "type": "object",
                "properties": {
                    "n": {
                        "type": "object",
                        "properties": {
                            "next": {"type": "object", "description": "(a Node object)"}
                        },
                    }
                },
            },
        ),
        ({}, {"type": "object", "properties": {}}),
    ],
)
def test_normalize_parameters(schema: dict[str, Any], expected: dict[str, Any]) -> None:
    assert normalize_parameters(schema) == expected


def _plan(body: dict[str, Any], caps: set[str] | None) -> dict[str, Any]:
    return from_chat_request(
        body, model="m:latest", capabilities=caps, overrides={}, enforce={}, defaults={}
    ).native


@pytest.mark.parametrize(
    ("body", "caps", "expected"),
    [
        ({"think": True}, {"completion"}, {}),
        ({"think": True}, None, {"think": True}),
        ({"reasoning_effort": "high"}, {"completion", "thinking"}, {"think": "high"}),
        ({"tools": TOOLS, "tool_choice": "none"}, {"completion"}, {}),
        ({"logprobs": True, "top_logprobs": 3}, None, {"logprobs": True, "top_logprobs": 3}),
        ({"response_format": {"type": "json_object"}}, None, {"format": "json"}),
    ],
)
def test_from_chat_request_capabilities(
    body: dict[str, Any], caps: set[str] | None, expected: dict[str, Any]
) -> None:
    messages = [{"role": "user", "content": "x"}]
    native = _plan({"messages": messages, **body}, caps)
    assert native == {
        "model": "m:latest",
        "stream": True,
        "messages": [{"role": "user", "content": "x"}],
        **expected,
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": TOOLS}, "tools"),
        ({"n": 0}, "n"),
        ({"n": 99}, "n"),
        ({"stream": "yes"}, "stream"),
        ({"stream_options": {"include_usage": 1}}, "stream_options.include_usage"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 50}, "top_logprobs"),
    ],
)
def test_from_chat_request_errors(body: dict[str, Any], param: str) -> None:
    with pytest.raises(OptionError) as info:
        _plan({"messages": [{"role": "user", "content": "x"}], **body}, {"completion"})
    assert info.value.param == param


IMAGE_MESSAGE = {
    "role": "user",
    "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ],
}


@pytest.mark.parametrize(
    ("caps", "ok"),
    [
        ({"completion", "vision"}, True),
        (None, True),  # capabilities unknown: nothing is refused
        ({"completion"}, False),
    ],
)
def test_images_need_a_vision_model(caps: set[str] | None, ok: bool) -> None:
    body = {"messages": [IMAGE_MESSAGE]}
    if ok:
        assert _plan(body, caps)["messages"][0]["images"] == ["iVBORw0KGgo="]
    else:
        with pytest.raises(OptionError, match="does not support images") as info:
            _plan(body, caps)
        assert info.value.param == "messages"


def test_completion_request_fan_out_limits_are_inclusive() -> None:
    plan = from_completion_request(
        {"prompt": ["p"] * 32, "n": 2},
        model="m",
        capabilities=None,
        overrides={},
        enforce={},
        defaults={},
    )
    assert len(plan.natives) == 64


@pytest.mark.parametrize(("count", "ok"), [(16, True), (17, False)])
def test_image_url_count_is_capped(count: int, ok: bool) -> None:
    parts = [
        {"type": "image_url", "image_url": {"url": f"https://img.example/{i}.png"}}
        for i in range(count)
    ]
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}, *parts]}]}
    if ok:
        assert len(_plan(body, None)["messages"][0]["images"]) == count
        return
    with pytest.raises(OptionError) as info:
        _plan(body, None)
    assert info.value.param == "messages" and "at most 16" in str(info.value)


def test_required_and_named_tool_choice_prepend_a_system_nudge() -> None:
    native = _plan(
        {
            "messages": [{"role": "user", "content": "x"}],
            "tools": TOOLS,
            "tool_choice": {"type": "function", "function": {"name": "a"}},
        },
        {"completion", "tools"},
    )
    assert native["tools"] == [NATIVE_A]
    assert native["messages"][0] == {
        "role": "system",
        "content": "You must respond by calling the function 'a'; do not answer in plain text.",
    }


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"prompt": "hi"}, [{"model": "m", "stream": True, "prompt": "hi"}]),
        (
            {"prompt": ["a", "b"], "suffix": "end", "logprobs": 2, "max_tokens": 5},
            [
                {
                    "model": "m",
                    "stream": True,
                    "options": {"num_predict": 5},
                    "suffix": "end",
                    "logprobs": True,
                    "top_logprobs": 2,
                    "prompt": "a",
                },
                {
                    "model": "m",
                    "stream": True,
                    "options": {"num_predict": 5},
                    "suffix": "end",
                    "logprobs": True,
                    "top_logprobs": 2,
                    "prompt": "b",
                },
            ],
        ),
        (
            {"prompt": "x", "n": 2, "seed": 7},
            [
                {"model": "m", "stream": True, "options": {"seed": 7}, "prompt": "x"},
                {"model": "m", "stream": True, "options": {"seed": 8}, "prompt": "x"},
            ],
        ),
    ],
)
def test_completion_request(body: dict[str, Any], expected: list[Any]) -> None:
    plan = from_completion_request(
        body, model="m", capabilities=None, overrides={}, enforce={}, defaults={}
    )
    assert plan.natives == expected


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "prompt"),
        ({"prompt": [1, 2]}, "prompt"),
        ({"prompt": 3}, "prompt"),
        ({"prompt": "x", "logprobs": True}, "logprobs"),
        ({"prompt": "x", "suffix": 1}, "suffix"),
        ({"prompt": "x", "echo": "y"}, "echo"),
        ({"prompt": ["p"] * 33}, "prompt"),  # MAX_PROMPTS: fan-out cap
        ({"prompt": ["p"] * 5, "n": 13}, "n"),  # 65 generations > MAX_GENERATIONS
        ({"prompt": "x", "n": 17}, "n"),
    ],
)
def test_completion_request_errors(body: dict[str, Any], param: str) -> None:
    with pytest.raises(OptionError) as info:
        from_completion_request(
            body, model="m", capabilities=None, overrides={}, enforce={}, defaults={}
        )
    assert info.value.param == param


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"input": "x"}, {"model": "m", "input": ["x"]}),
        (
            {"input": ["a", "b"], "dimensions": 4, "truncate": False, "keep_alive": "1m"},
            {
                "model": "m",
                "input": ["a", "b"],
                "dimensions": 4,
                "keep_alive": "1m",
                "truncate": False,
            },
        ),
    ],
)
def test_embed_request(body: dict[str, Any], expected: dict[str, Any]) -> None:
    assert embed_request(body, "m", {}, {}, {}) == expected


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": [1, 2]}, "input"),
        ({"input": [[1], [2]]}, "input"),
        ({"input": []}, "input"),
        ({"input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"input": "x", "dimensions": 0}, "dimensions"),
    ],
)
def test_embed_request_errors(body: dict[str, Any], param: str) -> None:
    with pytest.raises(OptionError) as info:
        embed_request(body, "m", {}, {}, {})
    assert info.value.param == param


def test_encode_vector_is_little_endian_float32() -> None:
    assert encode_vector([1.0, -2.0]) == "AACAPwAAAMA="


def test_gpt_oss_true_think_becomes_a_level() -> None:
    native = from_chat_request(
        {"messages": [{"role": "user", "content": "x"}], "think": True},
        model="gpt-oss:20b",
        capabilities={"thinking"},
        overrides={},
        enforce={},
        defaults={},
    ).native
    assert native["think"] == "medium"


def test_audio_is_not_an_image_for_the_vision_check() -> None:
    audio = {
        "role": "user",
        "content": [{"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}],
    }
    native = _plan({"messages": [audio]}, {"completion", "audio"})
    assert native["messages"][0]["images"] == ["UklGRg=="]
