"""The PHP conversions Jobe's answers depend on (shoal.gateway.jobe), case by
case against PHP 8's documented results."""

from __future__ import annotations

import pytest

from shoal.gateway import jobe, php


@pytest.mark.parametrize(
    ("value", "want"),
    [
        (None, 0), (True, 1), (False, 0), (5, 5), (60.9, 60), (-1.5, -1), ("5", 5),
        ("121abc", 121), ("abc", 0), (" 12", 12), (" 12 ", 12), ("1e3", 1000), ("1.9", 1),
        (".5", 0), ("0x1A", 0), ("-3", -3), ([], 0), ([0], 1), ("9" * 30, 2**63 - 1),
        (2**64, 0), (float("inf"), 0),
    ],
)  # fmt: skip
def test_intval(value: object, want: int) -> None:
    assert php.intval(value) == want


def test_intval_of_an_object_is_phps_error() -> None:
    with pytest.raises(php.JobeError) as e:
        php.intval({})
    assert e.value.status == 500
    assert (
        e.value.body == "Server exception (Object of class stdClass could not be converted to int)"
    )


@pytest.mark.parametrize(
    ("value", "want"),
    [(5, True), (1.5, True), ("5", True), (" 5", True), ("5 ", True), ("1e3", True),
     ("5abc", False), ("", False), (".", False), ("0x1A", False), (True, False), (None, False),
     ([1], False)],
)  # fmt: skip
def test_is_numeric(value: object, want: bool) -> None:
    assert php.is_numeric(value) is want


@pytest.mark.parametrize(
    ("value", "want"),
    [(True, "1"), (False, ""), (None, ""), (5, "5"), (1.5, "1.5"), (1.0, "1"), (1e15, "1.0E+15"),
     (1.5e20, "1.5E+20"), (1e-5, "1.0E-5"), (0.0001, "0.0001"), (0.1 + 0.2, "0.3"), (-0.0, "-0"),
     (2**70, "1.1805916207174E+21")],
)  # fmt: skip
def test_string_cast(value: object, want: str) -> None:
    assert php.php_str(value) == want


def test_print_r_nests_as_php() -> None:
    got = php.print_r(["a", ["b", {"k": None}], 1.5])
    assert got == (
        "Array\n(\n    [0] => a\n    [1] => Array\n        (\n            [0] => b\n"
        "            [1] => stdClass Object\n                (\n                    [k] => \n"
        "                )\n\n        )\n\n    [2] => 1.5\n)\n"
    )


@pytest.mark.parametrize(
    ("text", "want"),
    [("eA==", b"x"), ("eA", b"x"), ("e A\n=\t=", b"x"), ("", b""), ("eA=", None), ("e", None),
     ("eA==eA==", None), ("eA===", None), ("!!", None), ("eHl6", b"xyz")],
)  # fmt: skip
def test_strict_base64(text: str, want: bytes | None) -> None:
    assert php.base64_strict(text) == want


@pytest.mark.parametrize(
    ("name", "ok"),
    [("prog.py", True), ("Test.java", True), ("a b.py", True), ("../x", False), (".x", False),
     ("-x", False), ("a|b", False), ("a\\b", True), ("a~b", False), ("\u00e0.py", False),
     ("\u00e9.py", True)],
)  # fmt: skip
def test_source_filename(name: str, ok: bool) -> None:
    """Byte-wise, as Jobe's regular expression: U+00E0 is C3 A0, and A0 is refused."""
    assert jobe.valid_source_filename(name) is ok


def test_strtolower_is_ascii_only() -> None:
    assert php.strtolower("Python3 ÄB") == "python3 Äb"
