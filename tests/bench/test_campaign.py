"""The campaign file: a full one loads; every mistake is one UsageError naming
the file and the key; memory formulas are arithmetic, never Python."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.bench import load_campaign, parse_campaign
from shoal.bench.units import Formula, FormulaError, parse_seconds, parse_size
from shoal.errors import EXIT_USAGE, UsageError

FULL = """
name = "benchy-p2"
nodes = "cn[1-4]"
repetitions = 3
warmups = 1
time_limit = "6h"

[[layouts]]
slots = 2
[[layouts]]
name = "23core"
cores_per_slot = 23
span_numa = true

[command]
run = "benchy force --p2 --cache-dir {scratch} | awk '{print $1}' > ${HOME}/x"
env = { RAYON_NUM_THREADS = "{threads}" }
memory = "45GiB + {threads} * 30GiB"

[scratch]
dir = "/mnt/storage"
free = "40GiB"

[host]
thp = "never"
hugepages = "off"

[parse]
timestamp = "%Y-%m-%d %H:%M:%S"
timezone = "Europe/Paris"

[[phases]]
name = "p2"
start = 'seal_pre_commit_phase2_all_zero: start'
end = 'p34 disabled'

[[metrics]]
name = "p2-wall"
json = "p2-wall-time-ms"
scale = 0.001
unit = "s"
"""


def test_a_full_campaign_loads(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text(FULL)
    c = load_campaign(f)
    assert c.name == "benchy-p2" and c.repetitions == 3 and c.time_limit_s == 6 * 3600
    assert [x.label for x in c.layouts] == ["2slots", "23core"]
    assert c.command is not None
    assert c.command.memory_for(threads=4, cores=2, slots=2) == (45 + 4 * 30) << 30
    assert c.scratch is not None and c.scratch.free_bytes == 40 << 30
    assert c.metrics[0].json_path == "p2-wall-time-ms"


def test_the_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    f = tmp_path / "night-run.toml"
    f.write_text('[[phases]]\nname = "a"\nstart = "s"\nend = "e"\n')
    assert load_campaign(f).name == "night-run"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("reptitions = 3", "c.toml: reptitions: unknown key (did you mean 'repetitions'?)"),
        ("[[layouts]]\nslot = 2", "c.toml: layouts[0].slot: unknown key (did you mean 'slots'?)"),
        ("[command]\nrun = 'x'\nmemroy = 1", "command.memroy: unknown key (did you mean 'memory"),
        ("[[layouts]]\nsmt = true", "layouts[0]: a layout needs slots, cores_per_slot or"),
        ("[[layouts]]\ncores_per_slot = 2\ncpus_per_slot = 4", "not both"),
        ("[[layouts]]\nslots = 0", "layouts[0].slots: Input should be greater than 0"),
        ("[[layouts]]\nname = 'a/b'\nslots = 1", "layouts[0].name: String should match pattern"),
        (
            "[[phases]]\nname = 'p2'\nstart = '(a'\nend = 'b'",
            "phases[0]: phase p2: start pattern '(a' does not compile",
        ),
        (
            "[[phases]]\nname = 'p3'\nstart = 'a'\nend = '[b'",
            "phases[0]: phase p3: end pattern '[b' does not compile",
        ),
        ("[command]\nrun = 'x {thread}'", "command.run: unknown placeholder {thread}"),
        ("[command]\nrun = 'x'\nmemory = '45GiB + __import__(\"os\")'", "command.memory:"),
        ("[command]\nrun = 'x'\nmemory = '45GiB + {threads} ** 2'", "unexpected '*'"),
        ("[command]\nrun = 'x'\nmemory = '4 parsecs'", "unknown unit 'parsecs'"),
        ("time_limit = '6 weeks'", "time_limit: '6 weeks' is not a duration"),
        ("[parse]\ntimestamp = '%Q'", "parse.timestamp: timestamp format '%Q': '%Q' is not"),
        ("[parse]\ntimezone = 'Mars/Base'", "parse.timezone: unknown time zone 'Mars/Base'"),
        ("[host]\nthp = 'sometimes'", "host.thp: Input should be 'always', 'madvise' or 'never'"),
        ("[scratch]\ndir = 'tmp'", "scratch.dir: 'tmp': must be an absolute path"),
        ("[[metrics]]\nname = 'm'\nregex = 'a'", "metrics[0]: metric m: regex 'a' has no group"),
        ("[[metrics]]\nname = 'm'", "metrics[0]: metric m: give regex or json"),
        (
            "[[phases]]\nname = 'a'\nstart = 's'\nend = 'e'\n" * 2,
            "phase or metric name 'a' is used twice",
        ),
        ("x = [", "c.toml: not valid TOML"),
    ],
)
def test_mistakes_name_the_key(text: str, message: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_campaign(text, "c.toml")
    assert message in str(e.value)
    assert e.value.exit_code == EXIT_USAGE
    assert "\n" not in str(e.value)


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read it"):
        load_campaign(tmp_path / "nope.toml")


def test_formulas_are_arithmetic_with_units_and_placeholders() -> None:
    f = Formula("45GiB + {threads} * 30GiB")
    assert f(threads=2, cores=1, slots=1) == 105 << 30
    assert Formula("(1GiB + 512MiB) * {slots} / 2")(threads=1, cores=1, slots=4) == 3 << 30
    assert Formula(4096)(threads=1, cores=1, slots=1) == 4096
    with pytest.raises(FormulaError, match="unknown placeholder"):
        Formula("{memory}")
    with pytest.raises(FormulaError, match="missing"):
        Formula("(1GiB + 2")
    with pytest.raises(FormulaError, match="negative"):
        Formula("1GiB - {threads} * 1GiB")(threads=2, cores=1, slots=1)
    assert parse_size("1.5GB") == 1_500_000_000 and parse_seconds("30m") == 1800
