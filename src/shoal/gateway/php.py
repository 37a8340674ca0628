"""PHP as Jobe runs on it (PHP 8): the conversions and json_decode's error
names that Jobe's checks and texts depend on (intval, is_numeric, string
casts, strtolower, print_r, strict base-64). Written from PHP's documented
behaviour, no code of theirs."""

from __future__ import annotations

import binascii
import json
import math
import re
from typing import Any

INT_MAX = 2**63 - 1
MAX_DEPTH = 512  # json_decode's default depth


class JobeError(Exception):
    """An answer Jobe gives instead of running: ``body`` is the JSON value
    (a string; "" for the framework's own errors), or None for no body."""

    def __init__(self, status: int, body: str | None) -> None:
        super().__init__(body)
        self.status = status
        self.body = body


# ---- PHP conversions ----------------------------------------------------------
def type_name(v: Any) -> str:
    """PHP 8.3's zend_zval_value_name for a json_decode'd value."""
    if v is None:
        return "null"
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, int):
        return "int" if -INT_MAX - 1 <= v <= INT_MAX else "float"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "stdClass"


def php_float_str(x: float) -> str:
    """(string) of a float: precision 14, as %G, with PHP's spelling."""
    if math.isnan(x):
        return "NAN"
    if math.isinf(x):
        return "INF" if x > 0 else "-INF"
    s = f"{x:.14G}"
    if "E" in s:
        mant, exp = s.split("E")
        if "." not in mant:
            mant += ".0"
        s = f"{mant}E{exp[0]}{exp[1:].lstrip('0') or '0'}"
    return s


def php_str(v: Any) -> str:
    """A scalar's string cast (callers have ruled out arrays and objects)."""
    if v is True:
        return "1"
    if v is False or v is None:
        return ""
    if isinstance(v, int):
        return str(v) if -INT_MAX - 1 <= v <= INT_MAX else php_float_str(float(v))
    if isinstance(v, float):
        return php_float_str(v)
    return str(v)


NUMERIC = re.compile(r"[ \t\n\r\v\f]*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)[ \t\n\r\v\f]*")


def _leading_number(s: str) -> tuple[float | int, bool] | None:
    """PHP's numeric-string reading: the value and whether the whole string is it."""
    m = NUMERIC.match(s)
    if m is None:
        return None
    text = m.group(1)
    whole = m.end() == len(s)
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text), whole
    return float(text), whole


def is_numeric(v: Any) -> bool:
    if v is True or v is False or v is None:
        return False
    if isinstance(v, int | float):
        return True
    if isinstance(v, str):
        got = _leading_number(v)
        return got is not None and got[1]
    return False


def _float_to_int(x: float) -> int:
    if not math.isfinite(x):
        return 0
    n = int(x)
    if -INT_MAX - 1 <= n <= INT_MAX:
        return n
    n %= 2**64  # PHP 8 wraps an out-of-range float
    return n - 2**64 if n > INT_MAX else n


def intval(v: Any) -> int:
    """PHP's intval for a json_decode'd value; TypeError's message for an object."""
    if v is None or v is False:
        return 0
    if v is True:
        return 1
    if isinstance(v, int):
        return v if -INT_MAX - 1 <= v <= INT_MAX else _float_to_int(float(v))
    if isinstance(v, float):
        return _float_to_int(v)
    if isinstance(v, str):
        got = _leading_number(v)
        if got is None:
            return 0
        n = got[0]
        if isinstance(n, int):
            return max(-INT_MAX - 1, min(INT_MAX, n))  # strtol saturates
        if not math.isfinite(n):
            return INT_MAX if n > 0 else -INT_MAX - 1
        return max(-INT_MAX - 1, min(INT_MAX, int(n)))
    if isinstance(v, list):
        return 1 if v else 0
    raise JobeError(
        500, "Server exception (Object of class stdClass could not be converted to int)"
    )


def strtolower(s: str) -> str:
    """PHP 8's strtolower: ASCII letters only."""
    return s.translate(_LOWER)


_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def print_r(v: Any, indent: int = 0) -> str:
    """print_r($v, true) of a json_decode'd value."""
    if isinstance(v, list | dict):
        items = enumerate(v) if isinstance(v, list) else v.items()
        pad = " " * indent
        out = ["Array\n" if isinstance(v, list) else "stdClass Object\n", pad, "(\n"]
        for k, x in items:
            out += [" " * (indent + 4), f"[{k}] => ", print_r(x, indent + 8), "\n"]
        out += [pad, ")\n"]
        return "".join(out)
    return php_str(v)


_WHITESPACE = str.maketrans("", "", " \t\r\n")
_B64 = re.compile(r"([A-Za-z0-9+/]*)(=*)")


def base64_strict(s: str) -> bytes | None:
    """base64_decode($s, true): None where PHP answers false. Whitespace is
    skipped anywhere, padding may be left out, nothing may follow it."""
    m = _B64.fullmatch(s.translate(_WHITESPACE))
    if m is None:
        return None
    data, pad = m.group(1), len(m.group(2))
    if len(data) % 4 == 1 or (pad and (pad > 2 or (len(data) + pad) % 4)):
        return None
    return binascii.a2b_base64(data + "=" * (-len(data) % 4))


# ---- json_decode ----------------------------------------------------------------
def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def json_decode(raw: bytes) -> Any:
    """The body as json_decode sees it; ValueError with PHP's error name."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        before = raw[: e.start].decode("utf-8")
        if _STRINGS.sub("", before).count('"') % 2:  # PHP checks UTF-8 inside strings
            raise ValueError("Malformed UTF-8 characters, possibly incorrectly encoded") from None
        raise ValueError("Syntax error") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("Maximum stack depth exceeded") from None
    except json.JSONDecodeError as e:
        raise ValueError(_why(text, e)) from None
    except ValueError:  # NaN, Infinity: not JSON to PHP
        raise ValueError("Syntax error") from None
    _check_decoded(value)
    return value


def _why(text: str, e: json.JSONDecodeError) -> str:
    if _depth_before(text, e.pos) > MAX_DEPTH:
        return "Maximum stack depth exceeded"
    if e.msg.startswith("Invalid control character"):
        return "Control character error, possibly incorrectly encoded"
    ch = text[e.pos : e.pos + 1]
    prev = text[: e.pos].rstrip(" \t\n\r")[-1:]
    if ch in ("]", "}") and prev not in (",", ":"):  # a container closed by the wrong bracket
        opener = _innermost(text, e.pos)
        if opener and {"[": "]", "{": "}"}[opener] != ch:
            return "State mismatch (invalid or malformed JSON)"
    return "Syntax error"


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')


def _depth_before(text: str, pos: int) -> int:
    bare = _STRINGS.sub("", text[:pos])
    depth = most = 0
    for ch in bare:
        if ch in "[{":
            depth += 1
            most = max(most, depth)
        elif ch in "]}":
            depth -= 1
    return most


def _innermost(text: str, pos: int) -> str:
    stack: list[str] = []
    for ch in _STRINGS.sub("", text[:pos]):
        if ch in "[{":
            stack.append(ch)
        elif ch in "]}" and stack:
            stack.pop()
    return stack[-1] if stack else ""


def _check_decoded(value: Any) -> None:
    """What Python's decoder takes and PHP's does not: nesting over 512, an
    unpaired surrogate, an object key that starts with NUL."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, str):
            if _unpaired(v):
                raise ValueError("Single unpaired UTF-16 surrogate in unicode escape")
            continue
        if not isinstance(v, dict | list):
            continue
        if depth + 1 > MAX_DEPTH:
            raise ValueError("Maximum stack depth exceeded")
        if isinstance(v, dict):
            for k in v:
                if k.startswith("\0"):
                    raise ValueError("The decoded property name is invalid")
                if _unpaired(k):
                    raise ValueError("Single unpaired UTF-16 surrogate in unicode escape")
            stack.extend((x, depth + 1) for x in v.values())
        else:
            stack.extend((x, depth + 1) for x in v)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _unpaired(s: str) -> bool:
    return not s.isascii() and _SURROGATE.search(s) is not None
