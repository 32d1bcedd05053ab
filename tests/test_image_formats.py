"""GIF/BMP/TIFF images become PNG before they reach Ollama; safe formats and audio pass as sent."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from PIL import Image

from api.core.errors import APIError
from api.core.image_formats import convert_images, needs_png, to_png
from tests.conftest import auth_headers, create_test_key
from tests.fake_ollama import FakeOllama


def encoded(fmt: str, size: tuple[int, int] = (3, 2), mode: str = "RGB") -> str:
    """A tiny image in `fmt`, base64."""
    out = io.BytesIO()
    Image.new(mode, size, (200, 10, 10)).save(out, fmt)
    return base64.b64encode(out.getvalue()).decode()


WAV = base64.b64encode(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(28)).decode()


@pytest.mark.parametrize(
    ("data", "convert"),
    [
        (encoded("GIF"), True),
        (encoded("BMP"), True),
        (encoded("TIFF"), True),
        (encoded("PNG"), False),
        (encoded("JPEG"), False),
        (encoded("WEBP"), False),
        (WAV, False),  # input_audio bytes share the images list and must never be touched
        ("!!not base64!!", False),
    ],
)
def test_needs_png(data: str, convert: bool) -> None:
    assert needs_png(data) is convert


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_to_png_keeps_the_picture(fmt: str) -> None:
    png = base64.b64decode(to_png(encoded(fmt, (5, 4))))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as image:
        assert image.size == (5, 4)
        assert image.convert("RGB").getpixel((0, 0))[0] > 150  # still red


def test_to_png_refuses_garbage_with_a_400() -> None:
    broken = base64.b64encode(b"GIF89a" + b"\x00" * 5).decode()
    with pytest.raises(APIError) as info:
        to_png(broken)
    assert (info.value.status, info.value.param, info.value.code) == (
        400,
        "messages",
        "invalid_image",
    )


async def test_convert_images_in_place_only_where_needed() -> None:
    gif, png = encoded("GIF"), encoded("PNG")
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "", "images": [gif, png, WAV]},
        {"role": "user", "content": "no images"},
    ]
    await convert_images(messages)
    first, second, third = messages[0]["images"]
    assert base64.b64decode(first).startswith(b"\x89PNG") and (second, third) == (png, WAV)


async def test_gif_data_url_reaches_ollama_as_png(
    make_gateway: Any, fake_ollama: FakeOllama
) -> None:
    client = await make_gateway()
    secret = create_test_key(client.app)
    body = {
        "model": "llava:7b",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/gif;base64," + encoded("GIF")},
                    },
                ],
            }
        ],
    }
    resp = await client.post("/v1/chat/completions", json=body, headers=auth_headers(secret))
    assert resp.status == 200, await resp.text()
    [image] = fake_ollama.last("/api/chat")["messages"][0]["images"]
    assert base64.b64decode(image).startswith(b"\x89PNG\r\n\x1a\n")


async def test_image_to_a_model_without_vision_is_a_400(make_gateway: Any) -> None:
    client = await make_gateway()
    secret = create_test_key(client.app)
    body = {
        "model": "llama3.2",
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64," + encoded("PNG")},
                    }
                ],
            }
        ],
    }
    resp = await client.post("/v1/chat/completions", json=body, headers=auth_headers(secret))
    error = (await resp.json())["error"]
    assert resp.status == 400 and error["param"] == "messages"
    assert "does not support images" in error["message"]
