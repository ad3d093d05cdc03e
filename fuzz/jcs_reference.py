"""An independent RFC 8785 (JCS) serialiser, written from the RFC, to check `canonicalize` against.

It shares no code with `node.signing` or the `rfc8785` package: numbers follow ECMA-262
Number::toString (RFC 8785 §3.2.2.3) built from Python's shortest round-trip digits, strings
the escaping of §3.2.2.2, member order the UTF-16 code-unit sort of §3.2.3. Stave's own limits
(integers within ±(2^53−1), PROTOCOL §2, and the nesting depth) are applied the same way.
"""

from __future__ import annotations

import json
import math
from typing import Any

from node.signing import MAX_DEPTH, MAX_SAFE_INTEGER


class NoJCSForm(Exception):
    """The value has no JCS form under Stave's rules."""


def reference_jcs(value: Any) -> bytes:
    """The JCS bytes of `value`; NoJCSForm when it has none."""
    return _serialize(value, 0).encode("utf-8")


def _serialize(value: Any, depth: int) -> str:
    if depth > MAX_DEPTH:
        raise NoJCSForm("too deep")
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        if abs(value) > MAX_SAFE_INTEGER:
            raise NoJCSForm("integer out of range")
        return str(value)
    if type(value) is float:
        return es_number(value)
    if type(value) is str:
        return _string(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_serialize(item, depth + 1) for item in value) + "]"
    if isinstance(value, dict):  # a dict or a subclass; other mappings are not JSON
        for key in value:
            if type(key) is not str:
                raise NoJCSForm("non-string member name")
        members = sorted(value.items(), key=lambda item: _utf16_units(item[0]))
        return "{" + ",".join(_string(k) + ":" + _serialize(v, depth + 1) for k, v in members) + "}"
    raise NoJCSForm(f"{type(value).__name__} is not JSON")


_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n"}
_SHORT_ESCAPES.update({"\f": "\\f", "\r": "\\r"})


def _string(text: str) -> str:
    out = ['"']
    for char in text:
        code = ord(char)
        if 0xD800 <= code <= 0xDFFF:
            raise NoJCSForm("lone surrogate")
        if char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif code < 0x20:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _utf16_units(text: str) -> list[int]:
    units: list[int] = []
    for char in text:
        code = ord(char)
        if code >= 0x10000:
            code -= 0x10000
            units += [0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF)]
        else:
            units.append(code)
    return units


def es_number(number: float) -> str:
    """ECMA-262 Number::toString(x) for a finite double."""
    if not math.isfinite(number):
        raise NoJCSForm("non-finite number")
    if number == 0:
        return "0"
    if number < 0:
        return "-" + es_number(-number)
    # repr gives the shortest digit string that round-trips, as ECMA-262 requires.
    mantissa, _, exponent = repr(number).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    leading = len(digits) - len(digits.lstrip("0"))
    significand = digits.lstrip("0").rstrip("0")
    k = len(significand)
    n = len(whole) - leading + (int(exponent) if exponent else 0)
    if k <= n <= 21:
        return significand + "0" * (n - k)
    if 0 < n <= 21:
        return significand[:n] + "." + significand[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + significand
    e = n - 1
    sign = "+" if e >= 0 else "-"
    if k == 1:
        return f"{significand}e{sign}{abs(e)}"
    return f"{significand[0]}.{significand[1:]}e{sign}{abs(e)}"


def parse_jcs(text: bytes) -> Any:
    """JCS bytes back to a value, reading numbers as doubles as RFC 8785 does."""
    return json.loads(text.decode("utf-8"), parse_int=_json_int)


def _json_int(digits: str) -> int | float:
    number = int(digits)
    return number if abs(number) <= MAX_SAFE_INTEGER else float(digits)


def json_equal(a: Any, b: Any) -> bool:
    """Whether two JSON values are the same value (1 and 1.0 are; a tuple is a list)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, float) or isinstance(b, float):
        # JSON numbers are IEEE doubles (RFC 8785 §3.2.2.3): 1e21 is written 1000000000000000000000.
        return isinstance(a, int | float) and isinstance(b, int | float) and float(a) == float(b)
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b
