"""JSON encoding and random ids shared by every surface (pure)."""

from __future__ import annotations

import json
import random

# One encoder for every SSE frame: json.dumps(..., ensure_ascii=False) builds a new
# JSONEncoder per call, which is a measurable share of a stream's cost (a frame per token).
encode_json = json.JSONEncoder(ensure_ascii=False).encode
# Ids are unique, not secret: a Mersenne Twister seeded from os.urandom suffices. os.urandom
# itself releases the GIL for its syscall and then waits to get it back from the usage
# writer thread, which profiles showed at several microseconds per call under load.
fast_random = random.Random()


def random_id(prefix: str, sep: str = "-", bits: int = 128) -> str:
    """A unique id such as chatcmpl-<32 hex> or msg_<24 hex> (ids need not be secret)."""
    return f"{prefix}{sep}{fast_random.getrandbits(bits):0{bits // 4}x}"
