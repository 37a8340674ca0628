"""Jobe conformance (#14): every request shape of Jobe's REST API and every
difference the issue found, sent to the gateway and to the stand-in backend
alone, each answer compared field by field (status, Content-Type, body: keys,
types, texts) with what a Jobe 2.x server answers. The expected answers are
written here from Jobe's source (app/Controllers, app/Libraries/RunSpecifier,
LanguageTask, the CodeIgniter 4 router and response code) and its REST API
document, not from either implementation under test."""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from procs import API, Proc, control, start_backend, start_gateway, write_config

JSON = "application/json; charset=UTF-8"
KEYS = ["run_id", "outcome", "cmpinfo", "stdout", "stderr"]
OVERLOAD = {"run_id": "0", "outcome": 21, "cmpinfo": "", "stdout": "", "stderr": ""}
NOBODY = object()  # an empty body
HELLO_C = '#include <stdio.h>\nint main(void) {\n    printf("Hello\\n");\n    return 0;\n}\n'
FILE_ID = "conformfile1"  # PUT by the module fixture on the gateway and the backend
CORS = {
    "access-control-allow-origin": "*",
    "access-control-allow-headers": (
        "X-API-KEY, Origin, X-Requested-With, Content-Type, Accept, Access-Control-Request-Method"
    ),
    "access-control-allow-methods": "GET, POST, OPTIONS, PUT, HEAD, DELETE",
}


@dataclass
class Want:
    status: int
    body: Any = NOBODY  # the decoded JSON, NOBODY for none; a dict: the fields given must match
    ctype: str | None = JSON  # None: no Content-Type at all
    headers: dict[str, str] = field(default_factory=dict)


def ok(**fields: Any) -> Want:
    """200 with a run result: all five keys, these fields as given."""
    return Want(200, {"run_id": None, "outcome": 15, "cmpinfo": "", "stderr": "", **fields})


def error(status: int, text: str) -> Want:
    return Want(status, text)


def spec(**fields: Any) -> dict[str, Any]:
    return {"run_spec": {"language_id": "python3", "sourcecode": "print('hi')", **fields}}


def filespec_text(*items: str) -> str:
    """Jobe's text for a refused file specifier: print_r of the array."""
    lines = "".join(f"    [{i}] => {v}\n" for i, v in enumerate(items))
    return f"Invalid file specifier: Array\n(\n{lines})\n"


def php_error(what: str) -> Want:
    return error(500, f"Server exception ({what})")


NOT_FOUND = Want(404, "")
RUNS = "/runs"


# (id, method, path under the API, request kwargs, what Jobe answers)
CASES: list[tuple[str, str, str, dict[str, Any], Want]] = [
    # ---- languages -------------------------------------------------------
    ("languages", "GET", "/languages", {}, Want(200, "languages")),
    ("languages-trailing-slash", "GET", "/languages/", {}, Want(200, "languages")),
    ("languages-two-slashes", "GET", "/languages//", {}, Want(200, "languages")),
    ("languages-head-no-route", "HEAD", "/languages", {}, Want(404)),
    ("languages-post-no-route", "POST", "/languages", {"json": {}}, NOT_FOUND),
    # ---- runs: results ---------------------------------------------------
    ("run-python3", "POST", RUNS, {"json": spec()}, ok(stdout="hi\n")),
    ("run-trailing-slash", "POST", RUNS + "/", {"json": spec()}, ok(stdout="hi\n")),
    (
        "run-stdin",
        "POST",
        RUNS,
        {"json": spec(sourcecode="print(input())\nprint(input())", input="L1\nL2\n")},
        ok(stdout="L1\nL2\n"),
    ),
    ("run-sourcefilename", "POST", RUNS, {"json": spec(sourcefilename="test.py")}, ok()),
    ("run-empty-sourcefilename", "POST", RUNS, {"json": spec(sourcefilename="")}, ok()),
    (
        "run-c",
        "POST",
        RUNS,
        {"json": {"run_spec": {"language_id": "c", "sourcecode": HELLO_C}}},
        ok(stdout="Hello\n"),
    ),
    (
        "run-compile-error-11",
        "POST",
        RUNS,
        {"json": spec(sourcecode="print('hi'")},
        Want(200, {"outcome": 11, "stdout": "", "stderr": ""}),
    ),
    (
        "run-runtime-error-12",
        "POST",
        RUNS,
        {"json": spec(sourcecode="[1][2]")},
        Want(200, {"outcome": 12, "cmpinfo": "", "stdout": ""}),
    ),
    ("run-language-case", "POST", RUNS, {"json": spec(language_id="Python3")}, ok()),
    ("run-language-upper", "POST", RUNS, {"json": spec(language_id="PYTHON3")}, ok()),
    (
        "run-debug-flag",
        "POST",
        RUNS,
        {"json": spec(debug=False)},
        ok(stdout="hi\n"),
    ),
    # cputime: intval of what is given, over the limit (120) refused
    ("cputime-60", "POST", RUNS, {"json": spec(parameters={"cputime": 60})}, ok()),
    ("cputime-120", "POST", RUNS, {"json": spec(parameters={"cputime": 120})}, ok()),
    ("cputime-120.9", "POST", RUNS, {"json": spec(parameters={"cputime": 120.9})}, ok()),
    ("cputime-string", "POST", RUNS, {"json": spec(parameters={"cputime": "5"})}, ok()),
    ("cputime-list", "POST", RUNS, {"json": spec(parameters={"cputime": [1]})}, ok()),
    ("cputime-true", "POST", RUNS, {"json": spec(parameters={"cputime": True})}, ok()),
    ("cputime-junk", "POST", RUNS, {"json": spec(parameters={"cputime": "abc"})}, ok()),
    ("parameters-list", "POST", RUNS, {"json": spec(parameters=[1, 2])}, ok()),
    (
        "numeric-strings",
        "POST",
        RUNS,
        {"json": spec(parameters={"memorylimit": "500", "numprocs": " 20", "streamsize": "2"})},
        ok(stdout="hi\n"),
    ),
    (
        "args-parameters",
        "POST",
        RUNS,
        {
            "json": spec(
                sourcecode="import sys\nprint(sys.argv[1:])",
                parameters={"runargs": ["a", "b"], "interpreterargs": ["-B"]},
            )
        },
        ok(stdout="['a', 'b']\n"),
    ),
    *[
        (
            f"cputime-over-{name}",
            "POST",
            RUNS,
            {"json": spec(parameters={"cputime": value})},
            error(400, "cputime exceeds maximum allowed on this Jobe server (120 secs)"),
        )
        for name, value in [
            ("121", 121),
            ("151", 151),
            ("string", "121"),
            ("leading-number", "121abc"),
            ("exponent", "1e3"),
            ("spaces", " 200 "),
        ]
    ],
    (
        "cputime-object",
        "POST",
        RUNS,
        {"json": spec(parameters={"cputime": {}})},
        php_error("Object of class stdClass could not be converted to int"),
    ),
    # ---- overload ----------------------------------------------------------
    (
        "overload-hook",
        "POST",
        RUNS,
        {"json": spec(sourcecode="!** TESTING OVERLOAD EXCEPTION **!")},
        Want(200, OVERLOAD),
    ),
    (
        "overload-hook-missing-file-is-404-first",
        "POST",
        RUNS,
        {
            "json": spec(
                sourcecode="!** TESTING OVERLOAD EXCEPTION **!", file_list=[["nosuchfileid", "f"]]
            )
        },
        error(404, "One or more of the specified files is missing/unavailable"),
    ),
    # ---- runs: bodies Jobe refuses, its texts --------------------------------
    ("empty-body", "POST", RUNS, {"content": b""}, error(400, "Non-JSON post data received")),
    (
        "not-json",
        "POST",
        RUNS,
        {"content": b"not json{"},
        php_error("Failed to parse JSON string. Error: Syntax error"),
    ),
    (
        "bad-utf8",
        "POST",
        RUNS,
        {"content": b'{"run_spec": "\xff"}'},
        php_error(
            "Failed to parse JSON string. Error: "
            "Malformed UTF-8 characters, possibly incorrectly encoded"
        ),
    ),
    (
        "nan",
        "POST",
        RUNS,
        {"content": b'{"run_spec": NaN}'},
        php_error("Failed to parse JSON string. Error: Syntax error"),
    ),
    (
        "too-deep",
        "POST",
        RUNS,
        {"content": b"[" * 513 + b"]" * 513},
        php_error("Failed to parse JSON string. Error: Maximum stack depth exceeded"),
    ),
    *[
        (
            f"json-error-{name}",
            "POST",
            RUNS,
            {"content": body},
            php_error(f"Failed to parse JSON string. Error: {text}"),
        )
        for name, body, text in [
            ("mismatch", b'{"run_spec": [1}}', "State mismatch (invalid or malformed JSON)"),
            ("trailing-comma", b'{"run_spec": [1,]}', "Syntax error"),
            (
                "ctrl-char",
                b'{"run_spec": "a\x01"}',
                "Control character error, possibly incorrectly encoded",
            ),
            (
                "surrogate",
                b'{"run_spec": "\\ud800"}',
                "Single unpaired UTF-16 surrogate in unicode escape",
            ),
            ("nul-key", b'{"\\u0000x": 1}', "The decoded property name is invalid"),
            ("bad-byte-outside", b'{"run_spec": 1\xff}', "Syntax error"),
            ("extra-data", b'{"run_spec": {}} x', "Syntax error"),
        ]
    ],
    ("json-list", "POST", RUNS, {"json": [1]}, error(400, "Non-JSON post data received")),
    ("json-string", "POST", RUNS, {"json": "x"}, error(400, "Non-JSON post data received")),
    (
        "no-run-spec",
        "POST",
        RUNS,
        {"json": {"nope": 1}},
        php_error("Undefined property: stdClass::$run_spec"),
    ),
    *[
        (
            f"run-spec-{name}",
            "POST",
            RUNS,
            {"json": {"run_spec": value}},
            error(400, "No run_spec attribute found in post data"),
        )
        for name, value in [("null", None), ("string", "x"), ("list", [])]
    ],
    (
        "missing-sourcecode",
        "POST",
        RUNS,
        {"json": {"run_spec": {"language_id": "python3"}}},
        error(400, "run_spec is missing the required attribute 'sourcecode'"),
    ),
    (
        "missing-language-id",
        "POST",
        RUNS,
        {"json": {"run_spec": {"sourcecode": "x"}}},
        error(400, "run_spec is missing the required attribute 'language_id'"),
    ),
    (
        "missing-both",
        "POST",
        RUNS,
        {"json": {"run_spec": {}}},
        error(400, "run_spec is missing the required attribute 'sourcecode'"),
    ),
    (
        "null-language-id",
        "POST",
        RUNS,
        {"json": spec(language_id=None)},
        error(400, "run_spec is missing the required attribute 'language_id'"),
    ),
    (
        "sourcecode-list",
        "POST",
        RUNS,
        {"json": spec(sourcecode=[])},
        php_error("Cannot assign array to property Jobe\\RunSpecifier::$sourcecode of type string"),
    ),
    (
        "language-object",
        "POST",
        RUNS,
        {"json": spec(language_id={})},
        php_error(
            "Cannot assign stdClass to property Jobe\\RunSpecifier::$language_id of type string"
        ),
    ),
    (
        "unknown-language",
        "POST",
        RUNS,
        {"json": spec(language_id="nosuchlanguage")},
        error(400, "Language 'nosuchlanguage' is not known"),
    ),
    (
        "unknown-language-lowered",
        "POST",
        RUNS,
        {"json": spec(language_id="COBOL")},
        error(400, "Language 'cobol' is not known"),
    ),
    (
        "language-number",
        "POST",
        RUNS,
        {"json": spec(language_id=5)},
        error(400, "Language '5' is not known"),
    ),
    (
        "input-list",
        "POST",
        RUNS,
        {"json": spec(input=["x"])},
        php_error("Cannot assign array to property Jobe\\RunSpecifier::$input of type string"),
    ),
    (
        "debug-object",
        "POST",
        RUNS,
        {"json": spec(debug={})},
        php_error("Cannot assign stdClass to property Jobe\\RunSpecifier::$debug of type bool"),
    ),
    *[
        (
            f"sourcefilename-{name}",
            "POST",
            RUNS,
            {"json": spec(sourcefilename=value)},
            error(400, "The sourcefilename for the run_spec is illegal"),
        )
        for name, value in [
            ("slash", "../x.py"),
            ("hidden", ".x.py"),
            ("dash", "-x.py"),
            ("space-ok-but-hash", "a#b.py"),
            ("number", 5),
            ("nbsp", "a\u00a0b.py"),
        ]
    ],
    (
        "sourcefilename-list",
        "POST",
        RUNS,
        {"json": spec(sourcefilename=[])},
        php_error("ltrim(): Argument #1 ($string) must be of type string, array given"),
    ),
    # ---- file_list ---------------------------------------------------------
    (
        "file-id-short",
        "POST",
        RUNS,
        {"json": spec(file_list=[["shortid", "f"]])},
        error(400, filespec_text("shortid", "f")),
    ),
    (
        "file-id-not-alnum",
        "POST",
        RUNS,
        {"json": spec(file_list=[["abcd-efgh", "f"]])},
        error(400, filespec_text("abcd-efgh", "f")),
    ),
    (
        "file-name-slash",
        "POST",
        RUNS,
        {"json": spec(file_list=[["abcdefgh", "../f"]])},
        error(400, filespec_text("abcdefgh", "../f")),
    ),
    (
        "file-name-dots-only",
        "POST",
        RUNS,
        {"json": spec(file_list=[["abcdefgh", ".."]])},
        error(400, filespec_text("abcdefgh", "..")),
    ),
    (
        "file-spec-one-item",
        "POST",
        RUNS,
        {"json": spec(file_list=[["abcdefgh"]])},
        error(400, filespec_text("abcdefgh")),
    ),
    (
        "file-spec-four-items",
        "POST",
        RUNS,
        {"json": spec(file_list=[["abcdefgh", "f", True, None]])},
        error(400, filespec_text("abcdefgh", "f", "1", "")),
    ),
    (
        "file-id-number",
        "POST",
        RUNS,
        {"json": spec(file_list=[[12345678, "f"]])},
        error(400, filespec_text("12345678", "f")),
    ),
    (
        "file-name-nested",
        "POST",
        RUNS,
        {"json": spec(file_list=[["abcdefgh", ["x"]]])},
        error(
            400,
            "Invalid file specifier: Array\n(\n    [0] => abcdefgh\n    [1] => Array\n"
            "        (\n            [0] => x\n        )\n\n)\n",
        ),
    ),
    (
        "file-list-string",
        "POST",
        RUNS,
        {"json": spec(file_list="notalist")},
        php_error("foreach() argument must be of type array|object, string given"),
    ),
    (
        "file-list-number",
        "POST",
        RUNS,
        {"json": spec(file_list=5)},
        php_error("foreach() argument must be of type array|object, int given"),
    ),
    (
        "file-spec-string",
        "POST",
        RUNS,
        {"json": spec(file_list=["x"])},
        php_error("count(): Argument #1 ($value) must be of type Countable|array, string given"),
    ),
    (
        "file-spec-object",
        "POST",
        RUNS,
        {"json": spec(file_list=[{}])},
        php_error("count(): Argument #1 ($value) must be of type Countable|array, stdClass given"),
    ),
    (
        "file-missing",
        "POST",
        RUNS,
        {"json": spec(file_list=[["nosuchfileid", "file1"]])},
        error(404, "One or more of the specified files is missing/unavailable"),
    ),
    (
        "file-triple-missing",
        "POST",
        RUNS,
        {"json": spec(file_list=[["nosuchfileid", "file1", False]])},
        error(404, "One or more of the specified files is missing/unavailable"),
    ),
    (
        "file-used",
        "POST",
        RUNS,
        {"json": spec(sourcecode="print(open('in.txt').read())", file_list=[[FILE_ID, "in.txt"]])},
        ok(stdout="42\n\n"),
    ),
    (
        "file-list-object",
        "POST",
        RUNS,
        {"json": spec(sourcecode="print(open('d.x').read())", file_list={"a": [FILE_ID, "d.x"]})},
        ok(stdout="42\n\n"),
    ),
    (
        "file-name-hidden-ok",
        "POST",
        RUNS,
        {"json": spec(sourcecode="print(open('.in').read())", file_list=[[FILE_ID, ".in"]])},
        ok(stdout="42\n\n"),
    ),
    # ---- files -----------------------------------------------------------
    ("head-file", "HEAD", "/files/" + FILE_ID, {}, Want(204, ctype=None)),
    ("head-file-missing", "HEAD", "/files/nosuchfileid", {}, Want(404)),
    ("head-file-short-id", "HEAD", "/files/abc", {}, Want(404)),
    ("head-file-not-alnum", "HEAD", "/files/a-b", {}, Want(404)),
    (
        "put-file",
        "PUT",
        "/files/putfile01",
        {"json": {"file_contents": base64.b64encode(b"x").decode()}},
        Want(204, ctype=None),
    ),
    (
        "put-unpadded",
        "PUT",
        "/files/putfile02",
        {"json": {"file_contents": "eA"}},
        Want(204, ctype=None),
    ),
    (
        "put-spaced",
        "PUT",
        "/files/putfile03",
        {"json": {"file_contents": "e A\n=="}},
        Want(204, ctype=None),
    ),
    ("put-short-id", "PUT", "/files/a", {"json": {"file_contents": "eA=="}}, Want(204, ctype=None)),
    (
        "put-empty-body",
        "PUT",
        "/files/abc",
        {"content": b""},
        error(400, "put: missing file_contents parameter"),
    ),
    (
        "put-no-contents",
        "PUT",
        "/files/abc",
        {"json": {}},
        error(400, "put: missing file_contents parameter"),
    ),
    (
        "put-null-contents",
        "PUT",
        "/files/abc",
        {"json": {"file_contents": None}},
        error(400, "put: missing file_contents parameter"),
    ),
    (
        "put-list",
        "PUT",
        "/files/abc",
        {"json": [1]},
        error(400, "put: missing file_contents parameter"),
    ),
    (
        "put-bad-base64",
        "PUT",
        "/files/abc",
        {"json": {"file_contents": "!!notb64"}},
        error(400, "put: contents of file abc are not valid base-64"),
    ),
    (
        "put-data-after-padding",
        "PUT",
        "/files/abc",
        {"json": {"file_contents": "eA==eA=="}},
        error(400, "put: contents of file abc are not valid base-64"),
    ),
    ("put-not-json", "PUT", "/files/abc", {"content": b"zzz"}, Want(500, "")),
    ("put-contents-object", "PUT", "/files/abc", {"json": {"file_contents": {}}}, Want(500, "")),
    ("put-id-not-alnum", "PUT", "/files/a-b", {"json": {"file_contents": "eA=="}}, NOT_FOUND),
    ("put-no-id", "PUT", "/files/", {"json": {"file_contents": "eA=="}}, NOT_FOUND),
    (
        "put-disallowed-char",
        "PUT",
        "/files/a%21b",
        {"json": {"file_contents": "eA=="}},
        Want(400, ""),
    ),
    (
        "put-id-too-long",
        "PUT",
        "/files/" + "a" * 300,
        {"json": {"file_contents": "eA=="}},
        error(500, f"put: failed to write file {'a' * 300} to cache"),
    ),
    # ---- CORS, methods and paths Jobe has no route for -------------------------
    (
        "options-preflight",
        "OPTIONS",
        RUNS,
        {"headers": {"Access-Control-Request-Method": "POST", "Origin": "http://x"}},
        Want(204, ctype=None, headers=CORS),
    ),
    (
        "options-preflight-anywhere",
        "OPTIONS",
        "/nothing/here",
        {"headers": {"Access-Control-Request-Method": "GET"}},
        Want(204, ctype=None, headers=CORS),
    ),
    ("options-not-preflight", "OPTIONS", RUNS, {}, NOT_FOUND),
    ("get-runs", "GET", RUNS, {}, NOT_FOUND),
    ("get-run-by-id", "GET", RUNS + "/123", {}, NOT_FOUND),
    ("get-runresults", "GET", "/runresults/123", {}, NOT_FOUND),
    ("put-runs", "PUT", RUNS, {"json": spec()}, NOT_FOUND),
    ("delete-file", "DELETE", "/files/" + FILE_ID, {}, NOT_FOUND),
    ("get-file", "GET", "/files/" + FILE_ID, {}, NOT_FOUND),
    ("post-files", "POST", "/files", {"json": {"file_contents": "eA=="}}, NOT_FOUND),
    ("patch-languages", "PATCH", "/languages", {}, NOT_FOUND),
    ("unknown-resource", "GET", "/nothing", {}, NOT_FOUND),
    ("api-root", "GET", "", {}, NOT_FOUND),
    ("disallowed-char", "GET", "/lang%21uages", {}, Want(400, "")),
    (
        "unknown-html",
        "GET",
        "/nothing",
        {"headers": {"Accept": "text/html,application/xhtml+xml"}},
        Want(404, "html", ctype="text/html; charset=UTF-8"),
    ),
]


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Proc]]:
    """The stand-in backend alone and a gateway in front of it (and of a second
    one), each with FILE_ID put."""
    tmp = tmp_path_factory.mktemp("conform")
    bs = [start_backend(tmp, slots=4, wait=2) for _ in range(2)]
    extra = f'[gateway]\nfiles_dir = "{tmp / "files"}"\nhealth_interval = 0.5\n'
    cfg = write_config(tmp / "gw.toml", [{"url": b.url, "capacity": 4} for b in bs], extra)
    g = start_gateway(cfg, "--quiet")
    both = {"backend": bs[0], "gateway": g}
    for p in both.values():
        r = httpx.put(p.url + API + "/files/" + FILE_ID, json={"file_contents": b64("42\n")})
        assert r.status_code == 204
    yield both
    g.stop()
    for b in bs:
        b.stop()


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def check(r: httpx.Response, want: Want) -> None:
    """The answer against Jobe's, field by field."""
    assert r.status_code == want.status, (r.status_code, r.text[:300])
    assert r.headers.get("content-type") == want.ctype, r.headers
    for k, v in want.headers.items():
        assert r.headers.get(k) == v, (k, r.headers)
    if want.body is NOBODY:
        assert r.content == b""
        return
    if want.body == "html":
        assert r.text.lstrip().lower().startswith("<!doctype html")
        return
    got = r.json()
    if want.body == "languages":
        assert isinstance(got, list) and got
        assert all(isinstance(p, list) and len(p) == 2 for p in got)
        assert all(isinstance(x, str) for p in got for x in p)
        assert {"c", "python3"} <= {p[0] for p in got}
        return
    if isinstance(want.body, dict):
        assert isinstance(got, dict) and list(got) == KEYS, got  # all five, Jobe's order
        assert isinstance(got["outcome"], int)
        for k in ("cmpinfo", "stdout", "stderr"):
            assert isinstance(got[k], str), (k, got)
        for k, v in want.body.items():
            assert got[k] == v, (k, got[k], v)
        if want.body.get("outcome") == 11:
            assert got["cmpinfo"], got
        if want.body.get("outcome") == 12:
            assert got["stderr"], got
        return
    assert type(got) is type(want.body) and got == want.body, (got, want.body)


@pytest.mark.parametrize("target", ["backend", "gateway"])
@pytest.mark.parametrize(
    ("method", "path", "kw", "want"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_answers_as_jobe(
    targets: dict[str, Proc], target: str, method: str, path: str, kw: dict[str, Any], want: Want
) -> None:
    url = targets[target].url + API + path
    r = httpx.request(method, url, timeout=60, **kw)
    check(r, want)


@pytest.mark.parametrize("target", ["backend", "gateway"])
def test_outside_the_api_is_jobes_json_404(targets: dict[str, Proc], target: str) -> None:
    for path in ("/", "/jobe/", "/jobe/index.php", "/restapi/languages", "/metricsx"):
        check(httpx.get(targets[target].url + path), NOT_FOUND)


@pytest.mark.parametrize("target", ["backend", "gateway"])
def test_non_utf8_output_is_shown_as_hex_as_jobe_does(
    targets: dict[str, Proc], target: str
) -> None:
    src = "import sys\nsys.stdout.buffer.write(b'Hi\\n\\x01\\x06\\xc0\\xc9\\n')"
    r = httpx.post(targets[target].url + API + RUNS, json=spec(sourcecode=src), timeout=60)
    check(r, ok(stdout="Hi\n\\x01\\x06\\xc0\\xc9\n"))


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Proc]]:
    """A slow backend (each run 1.5 s) limited to cputime 30, a fast one at
    Jobe's default, and gateways in front of them."""
    tmp = tmp_path_factory.mktemp("small")
    slow = start_backend(tmp, slots=1, wait=0.2, delay=1.5, cputime_limit=30)
    fast = start_backend(tmp, slots=4, wait=2)
    extra = f'[gateway]\nfiles_dir = "{tmp / "f1"}"\nqueue_timeout = 0.2\nhealth_interval = 0.5\n'
    only = start_gateway(
        write_config(
            tmp / "g1.toml", [{"url": slow.url, "capacity": 1, "cputime_limit": 30}], extra
        ),
        "--quiet",
    )
    extra2 = f'[gateway]\nfiles_dir = "{tmp / "f2"}"\nhealth_interval = 0.5\n'
    mixed = start_gateway(
        write_config(
            tmp / "g2.toml",
            [{"url": slow.url, "cputime_limit": 30}, {"url": fast.url}],
            extra2,
        ),
        "--quiet",
    )
    yield {"slow": slow, "fast": fast, "only": only, "mixed": mixed}
    for p in (only, mixed, slow, fast):
        p.stop()


def test_cputime_limit_is_the_backends(small: dict[str, Proc]) -> None:
    """A backend configured with cputime_limit = 30: Jobe's text with its limit."""
    url = small["only"].url + API + RUNS
    r = httpx.post(url, json=spec(parameters={"cputime": 31}), timeout=30)
    check(r, error(400, "cputime exceeds maximum allowed on this Jobe server (30 secs)"))
    r = httpx.post(url, json=spec(parameters={"cputime": 30}), timeout=30)
    check(r, ok(stdout="hi\n"))


def test_a_long_run_goes_only_to_a_backend_that_allows_it(small: dict[str, Proc]) -> None:
    before = int(str(control(small["slow"])["runs"]))
    url = small["mixed"].url + API + RUNS
    for _ in range(6):
        r = httpx.post(url, json=spec(parameters={"cputime": 60}), timeout=30)
        check(r, ok(stdout="hi\n"))
    assert int(str(control(small["slow"])["runs"])) == before


def test_queue_time_out_answers_jobes_overload_with_five_keys(small: dict[str, Proc]) -> None:
    """The gateway's own overload (no slot within queue_timeout) is Jobe's
    overload answer, field for field."""
    g = small["only"]
    url = g.url + API + RUNS
    first: list[httpx.Response] = []
    t = threading.Thread(target=lambda: first.append(httpx.post(url, json=spec(), timeout=30)))
    t.start()
    try:
        for _ in range(500):  # until the first run holds the one slot
            if httpx.get(g.url + "/shoal/status").json()["backends"][0]["outstanding"]:
                break
        check(httpx.post(url, json=spec(), timeout=30), Want(200, OVERLOAD))
    finally:
        t.join()
    check(first[0], ok(stdout="hi\n"))


def test_unknown_backend_key_is_a_config_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    cfg = write_config(tmp_path / "bad.toml", [{"url": "http://127.0.0.1:1", "cputime_limt": 60}])
    p = subprocess.run(
        [sys.executable, "-m", "shoal.cli.main", "gateway", "serve", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 5
    assert p.stderr.strip().splitlines() == [
        f"shoal: error: {cfg}: backend #1: cputime_limt: Extra inputs are not permitted"
    ]


@pytest.mark.skipif(
    not os.environ.get("JOBE_TESTSUBMIT"),
    reason="set JOBE_TESTSUBMIT to the path of Jobe's testsubmit.py to run it",
)
def test_jobes_own_testsubmit_py(targets: dict[str, Proc]) -> None:
    """Jobe's test program against the gateway, in the two languages the
    stand-in runs: no exception, every error check and the cputime check as
    with Jobe. (Its pylint and fork-limit tests need Jobe's sandbox.)"""
    import subprocess
    import sys

    port = targets["gateway"].url.rsplit(":", 1)[1]
    argv = [sys.executable, os.environ["JOBE_TESTSUBMIT"], "--host", "127.0.0.1"]
    p = subprocess.run(
        [*argv, "--port", port, "python3", "c"], capture_output=True, text=True, timeout=600
    )
    out = p.stdout
    assert "0 exceptions" in out and "Traceback" not in p.stderr, out[-3000:] + p.stderr
    for check_ in (
        "Check 404 response when run requires a file that was not PUT. OK",
        "Check 400 response: non-existent language OK",
        "Check 400 response: missing language_id OK",
        "Check 400 response: missing sourcecode OK",
        "Testing overload exception OK",
        "Testing a submission with an excessive cputime parameter\nOK",
        "Valid Python3 OK",
        "Test good C hello world OK",
    ):
        assert check_ in out, (check_, out[-3000:])
