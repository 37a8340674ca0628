"""What one Jobe server (2.x, CodeIgniter 4, PHP 8) answers, as data: its
routes, its checks of a run_spec in their order, its error texts, and the PHP
conversions those texts and checks depend on (intval, string casts, print_r,
strict base-64, json_decode's error names).

The gateway checks a request here before it chooses a backend, so that a
client gets Jobe's answer whether or not a backend sees the request; the test
stand-in (tests/gateway/jobe_backend.py) answers from the same model. Written
from Jobe's source and REST API document, no code of theirs.
"""

from __future__ import annotations

import binascii
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

PREFIX = "/jobe/index.php/"  # Apache hands what follows to CodeIgniter's router
JSON_TYPE = "application/json; charset=UTF-8"
OVERLOAD_SOURCE = "!** TESTING OVERLOAD EXCEPTION **!"
MIN_FILE_ID = 8  # RunSpecifier: shorter ids in file_list are refused
MAX_DEPTH = 512  # json_decode's default depth
CPUTIME_LIMIT = 120  # Jobe's default cputime_upper_limit_secs
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": (
        "X-API-KEY, Origin, X-Requested-With, Content-Type, Accept, Access-Control-Request-Method"
    ),
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS, PUT, HEAD, DELETE",
}
INT_MAX = 2**63 - 1
URI_SEGMENT = re.compile(r"[a-z 0-9~%.:_\-]+", re.IGNORECASE)  # CodeIgniter's permitted chars
ALNUM = re.compile(r"[A-Za-z0-9]+")  # fullmatch; the (:alphanum) placeholder, ctype_alnum


class JobeError(Exception):
    """An answer Jobe gives instead of running: ``body`` is the JSON value
    (a string; "" for the framework's own errors), or None for no body."""

    def __init__(self, status: int, body: str | None) -> None:
        super().__init__(body)
        self.status = status
        self.body = body


def result(
    run_id: str | None, outcome: int, cmpinfo: str = "", stdout: str = "", stderr: str = ""
) -> dict[str, Any]:
    """A ResultObject: always these five keys, in this order."""
    return {
        "run_id": run_id,
        "outcome": outcome,
        "cmpinfo": cmpinfo,
        "stdout": stdout,
        "stderr": stderr,
    }


OVERLOAD = result("0", 21)


def encode(value: Any) -> bytes:
    """As CodeIgniter's JSON formatter (unescaped slashes and Unicode, no spaces;
    PHP still escapes the two line terminators)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


# ---- routes -----------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    name: str  # languages, runs, put_file, head_file, preflight
    fid: str = ""


def route(method: str, raw_path: str, headers: dict[str, str] | Any) -> Route:
    """The route Jobe takes for ``method`` on ``raw_path`` (undecoded), or
    JobeError: 400 for characters the router refuses, 404 for no route (a
    wrong method on a known path included)."""
    if not raw_path.startswith(PREFIX):
        raise JobeError(404, "")
    uri = unquote_plus(raw_path[len(PREFIX) :].split("?", 1)[0])  # PHP's urldecode
    for seg in uri.split("/"):
        if seg and not URI_SEGMENT.fullmatch(seg):
            raise JobeError(400, "")
    uri = uri.strip("/ ")
    if method == "OPTIONS":  # every path: the CORS filter answers a preflight
        if "access-control-request-method" in headers:
            return Route("preflight")
        raise JobeError(404, "")
    if uri == "restapi/languages" and method == "GET":
        return Route("languages")
    if uri == "restapi/runs" and method == "POST":
        return Route("runs")
    if uri.startswith("restapi/files/") and method in ("PUT", "HEAD"):
        fid = uri[len("restapi/files/") :]
        if ALNUM.fullmatch(fid):
            return Route("put_file" if method == "PUT" else "head_file", fid)
    raise JobeError(404, "")


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


# ---- a run_spec -------------------------------------------------------------------
@dataclass
class Run:
    language: str  # lower case, as Jobe looks it up
    cputime: int  # intval of parameters.cputime (0 when absent)
    file_ids: list[str] = field(default_factory=list)
    overload_test: bool = False  # Jobe's test hook: outcome 21 once the files are found


def _assign_str(run: dict[str, Any], attr: str, default: str | None = None) -> str:
    v = run.get(attr)
    if v is None:
        if default is None:
            raise JobeError(400, f"run_spec is missing the required attribute '{attr}'")
        return default
    if isinstance(v, list | dict):
        raise JobeError(
            500,
            f"Server exception (Cannot assign {type_name(v)} to property "
            f"Jobe\\RunSpecifier::${attr} of type string)",
        )
    return php_str(v)


_RESERVED = re.compile(r'[<>:"/|?*\x00-\x1f\x7f\xa0\xad#\[\]@!$&\'()+,;={}^~`]')


def valid_source_filename(name: str) -> bool:
    """RunSpecifier::isValidSourceFilename (a byte-wise check of the UTF-8)."""
    as_bytes = name.encode("utf-8", "surrogatepass").decode("latin-1")
    return _RESERVED.search(as_bytes) is None and not name.startswith((".", "-"))


def valid_filespec(f: list[Any]) -> bool:
    return (
        len(f) in (2, 3)
        and isinstance(f[0], str)
        and isinstance(f[1], str)
        and len(f[0].encode()) >= MIN_FILE_ID
        and ALNUM.fullmatch(f[0]) is not None
        and len(f[1]) > 0
        and ALNUM.fullmatch(re.sub(r"[-_.]", "", f[1])) is not None
    )


def check_run(raw: bytes, cputime_limit: Any) -> Run:
    """Jobe's checks of a POST runs body, in its order, up to the language
    lookup included; ``cputime_limit(language)`` is the limit for a known
    language, None for an unknown one. JobeError for what Jobe refuses."""
    if not raw:
        raise JobeError(400, "Non-JSON post data received")
    try:
        body = json_decode(raw)
    except ValueError as e:
        raise JobeError(
            500, f"Server exception (Failed to parse JSON string. Error: {e})"
        ) from None
    if not isinstance(body, dict):
        raise JobeError(400, "Non-JSON post data received")
    if "run_spec" not in body:
        raise JobeError(500, "Server exception (Undefined property: stdClass::$run_spec)")
    spec = body["run_spec"]
    if not isinstance(spec, dict):
        raise JobeError(400, "No run_spec attribute found in post data")
    source = _assign_str(spec, "sourcecode")
    lang = strtolower(_assign_str(spec, "language_id"))
    limit = cputime_limit(lang)
    if limit is None:
        raise JobeError(400, f"Language '{lang}' is not known")
    _assign_str(spec, "input", "")
    debug = spec.get("debug")
    if isinstance(debug, list | dict):
        raise JobeError(
            500,
            f"Server exception (Cannot assign {type_name(debug)} to property "
            "Jobe\\RunSpecifier::$debug of type bool)",
        )
    params = spec.get("parameters")
    cpu = intval(params.get("cputime")) if isinstance(params, dict) else 0
    if cpu > limit:
        raise JobeError(400, f"cputime exceeds maximum allowed on this Jobe server ({limit} secs)")
    name = spec.get("sourcefilename")
    if name is not None:
        if isinstance(name, list):
            raise JobeError(
                500,
                "Server exception (ltrim(): Argument #1 ($string) must be of type string, "
                "array given)",
            )
        if isinstance(name, dict):
            raise JobeError(
                500,
                "Server exception (preg_replace(): Argument #3 ($subject) must be of type "
                "array|string, stdClass given)",
            )
        if not isinstance(name, str) or not valid_source_filename(name):
            raise JobeError(400, "The sourcefilename for the run_spec is illegal")
    files = spec.get("file_list")
    if files is None:
        files = []
    if not isinstance(files, list | dict):
        raise JobeError(
            500,
            "Server exception (foreach() argument must be of type array|object, "
            f"{type_name(files)} given)",
        )
    ids = []
    for f in files if isinstance(files, list) else files.values():
        if not isinstance(f, list):
            raise JobeError(
                500,
                "Server exception (count(): Argument #1 ($value) must be of type "
                f"Countable|array, {type_name(f)} given)",
            )
        if not valid_filespec(f):
            raise JobeError(400, "Invalid file specifier: " + print_r(f))
        ids.append(f[0])
    return Run(lang, cpu, ids, source == OVERLOAD_SOURCE)


def check_put(raw: bytes, fid: str) -> bytes:
    """The file's contents from a PUT files body, or JobeError as Jobe answers."""
    if not raw:
        raise JobeError(400, "put: missing file_contents parameter")
    try:
        body = json_decode(raw)
    except ValueError:
        raise JobeError(500, "") from None  # uncaught in Jobe's controller: the framework's 500
    if not isinstance(body, dict) or body.get("file_contents") is None:
        raise JobeError(400, "put: missing file_contents parameter")
    contents = body["file_contents"]
    if isinstance(contents, list | dict):
        raise JobeError(500, "")  # base64_decode's TypeError, uncaught too
    data = base64_strict(php_str(contents))
    if data is None:
        raise JobeError(400, f"put: contents of file {fid} are not valid base-64")
    return data


def wants_html(headers: Any) -> bool:
    """CodeIgniter answers its own errors as an HTML page to a client whose
    Accept names text/html, as JSON to any other."""
    return "text/html" in headers.get("accept", "")
