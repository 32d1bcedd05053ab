"""Images in formats Ollama's runners may not decode (GIF, BMP, TIFF, ICO) become PNG.

Ollama accepts raw image bytes and leaves decoding to the runner; PNG, JPEG and WebP are the
safe formats (wire doc A.7). Others are re-encoded with Pillow (first frame of an animation),
off the event loop. Selection is by magic bytes, so audio passed in the same `images` list
(input_audio parts) and the safe formats are never touched or even fully decoded.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
from collections.abc import Sequence
from typing import Any

from PIL import Image, UnidentifiedImageError

from api.core.errors import APIError

# Formats a runner may fail on, by their first bytes.
_CONVERT = (b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*", b"\x00\x00\x01\x00")
MAX_PIXELS = 40_000_000  # refuse decompression bombs well before Pillow's own limit


def needs_png(b64: str) -> bool:
    """Whether a base64 image is in a format to convert (looks at its first bytes only)."""
    try:
        head = base64.b64decode(b64[:16])
    except (binascii.Error, ValueError):
        return False
    return head.startswith(_CONVERT)


def to_png(b64: str) -> str:
    """Re-encode one base64 image as base64 PNG; APIError 400 when it cannot be read."""
    try:
        with Image.open(io.BytesIO(base64.b64decode(b64))) as image:
            if image.width * image.height > MAX_PIXELS:
                raise APIError(
                    400,
                    f"Image too large: {image.width}x{image.height} pixels "
                    f"(at most {MAX_PIXELS:,}).",
                    param="messages",
                    code="invalid_image",
                )
            image.seek(0)
            mode = "RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB"
            out = io.BytesIO()
            image.convert(mode).save(out, "PNG")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise APIError(
            400, f"An image could not be decoded: {exc}.", param="messages", code="invalid_image"
        ) from None
    return base64.b64encode(out.getvalue()).decode("ascii")


async def convert_images(messages: Sequence[dict[str, Any]]) -> None:
    """Convert, in place, every image of the messages that needs it (in a worker thread)."""
    for msg in messages:
        images = msg.get("images")
        if not isinstance(images, list):
            continue
        for i, img in enumerate(images):
            if isinstance(img, str) and needs_png(img):
                images[i] = await asyncio.to_thread(to_png, img)
