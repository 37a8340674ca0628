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

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from shoal.gateway.php import (
    JobeError,
    base64_strict,
    intval,
    json_decode,
    php_str,
    print_r,
    strtolower,
    type_name,
)

PREFIX = "/jobe/index.php/"  # Apache hands what follows to CodeIgniter's router
JSON_TYPE = "application/json; charset=UTF-8"
OVERLOAD_SOURCE = "!** TESTING OVERLOAD EXCEPTION **!"
MIN_FILE_ID = 8  # RunSpecifier: shorter ids in file_list are refused
CPUTIME_LIMIT = 120  # Jobe's default cputime_upper_limit_secs
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": (
        "X-API-KEY, Origin, X-Requested-With, Content-Type, Accept, Access-Control-Request-Method"
    ),
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS, PUT, HEAD, DELETE",
}
URI_SEGMENT = re.compile(r"[a-z 0-9~%.:_\-]+", re.IGNORECASE)  # CodeIgniter's permitted chars
ALNUM = re.compile(r"[A-Za-z0-9]+")  # fullmatch; the (:alphanum) placeholder, ctype_alnum


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
