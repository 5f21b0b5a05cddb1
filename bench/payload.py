"""The 1 MiB payload: JSON text (random-ish records), compressible, exactly 1 MiB long."""

from __future__ import annotations

import json
import random

MIB = 1 << 20
WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
]


def make_payload(size: int = MIB, seed: int = 7) -> str:
    """A JSON array of records, padded with whitespace to exactly ``size`` characters."""
    rng = random.Random(seed)
    parts: list[str] = []
    length = 2  # the brackets
    while True:
        record = json.dumps(
            {
                "id": rng.randrange(10**9),
                "user": f"user{rng.randrange(10**6)}",
                "email": f"{rng.choice(WORDS)}.{rng.randrange(10**4)}@example.com",
                "score": round(rng.random(), 6),
                "tags": rng.sample(WORDS, 3),
                "active": rng.random() < 0.5,
                "note": " ".join(rng.choices(WORDS, k=6)),
            },
            separators=(",", ":"),
        )
        extra = len(record) + (1 if parts else 0)
        if length + extra > size:
            break
        parts.append(record)
        length += extra
    return "[" + ",".join(parts) + " " * (size - length) + "]"
