"""Values as the real CLI writes them: ids, UUIDs, timestamps, JavaScript numbers, compact JSON."""

from __future__ import annotations

import json
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def rand_id(prefix: str, n: int = 22) -> str:
    """An API id such as ``msg_01…`` or ``toolu_01…``: `prefix` and `n` base-62 characters."""
    return prefix + "".join(_B62[b % 62] for b in os.urandom(n))


def uuid4() -> str:
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def is_uuid(text: str) -> bool:
    """The real CLI's /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i."""
    parts = text.split("-")
    return [len(p) for p in parts] == [8, 4, 4, 4, 12] and all(
        c in "0123456789abcdefABCDEF" for c in "".join(parts)
    )


def js_number(text: str) -> float | None:
    """JavaScript's Number(text) for the values a test passes (None for NaN)."""
    text = text.strip()
    if text == "":
        return 0.0
    try:
        return float(int(text, 0)) if text.lower().startswith(("0x", "0o", "0b")) else float(text)
    except ValueError:
        return None


def js_str(x: float) -> str:
    """String(x) in JavaScript, for the numbers that appear in messages."""
    if x == int(x) and abs(x) < 1e21:
        return str(int(x))
    text = repr(x)
    if "e" in text:
        mantissa, exp = text.split("e")
        text = f"{mantissa}e{'+' if int(exp) > 0 else '-'}{abs(int(exp))}"
    return text


def num(x: float) -> float | int:
    """JSON.stringify writes integral numbers without '.0'."""
    return int(x) if x == int(x) and abs(x) < 1e15 else x


def timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def dumps(obj: Any) -> str:
    """JSON.stringify: no spaces, no ASCII escaping."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
