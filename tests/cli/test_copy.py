"""`shoal copy` / `shoal gather` end to end: real agent processes, mutual TLS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from agentproc import Agents

SHOAL = [sys.executable, "-m", "shoal.cli.main"]


@dataclass
class Nodes:
    """Five agents with their own files roots (copies land in root/dest)."""

    agents: Agents
    roots: dict[str, Path]

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        next(a for a in self.agents.started if a.name == name).kill(sig)


@pytest.fixture
def nodes(agents: Agents, tmp_path: Path) -> Nodes:
    roots = {}
    for i in range(1, 6):
        root = tmp_path / f"root-n{i}"
        (root / "dest").mkdir(parents=True)
        agents.start(f"n{i}", files_root=root)
        roots[f"n{i}"] = root
    agents.inventory()
    return Nodes(agents, roots)


def shoal(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SHOAL, *args], capture_output=True, text=True, timeout=120, **kw)


def temp_leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".shoal-" in p.name]


def test_copy_then_gather_over_mtls(nodes: Nodes, tmp_path: Path) -> None:
    src = tmp_path / "big.tar"
    src.write_bytes(os.urandom(5_000_000))
    r = shoal("copy", "-w", "n[1-5]", str(src), "/dest/")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "PASS: n[1-5], SUM: 5"
    for root in nodes.roots.values():
        assert (root / "dest" / "big.tar").read_bytes() == src.read_bytes()
        assert temp_leftovers(root) == []
    r = shoal("gather", "-w", "n[1-5]", "/dest/big.tar", str(tmp_path / "logs"))
    assert r.returncode == 0, r.stderr
    got = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert got == [f"big.tar.n{i}" for i in range(1, 6)]


def test_directory_copy_keeps_links_and_modes(nodes: Nodes, tmp_path: Path) -> None:
    d = tmp_path / "dataset"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "data").write_bytes(os.urandom(100_000))
    os.chmod(d / "sub" / "data", 0o640)
    (d / "latest").symlink_to("sub/data")
    r = shoal("copy", "-w", "n[1-3]", "-r", "-p", f"{d}/", "/dest/")
    assert r.returncode == 0, r.stderr
    for n in ("n1", "n2", "n3"):
        got = nodes.roots[n] / "dest" / "dataset"
        assert os.readlink(got / "latest") == "sub/data"
        assert (got / "sub" / "data").stat().st_mode & 0o777 == 0o640


def _tree(d: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(text)
    return d


def _files(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): p.read_text() for p in sorted(d.rglob("*")) if p.is_file()}


def test_directory_copy_merges_into_an_existing_one(nodes: Nodes, tmp_path: Path) -> None:
    """As cp -r and scp -r: the source's files replace theirs, the others stay."""
    src = _tree(tmp_path / "srcdir", {"a.txt": "new a", "sub/b.txt": "b"})
    for n in ("n1", "n2"):
        _tree(nodes.roots[n] / "dest" / "srcdir", {"a.txt": "old a", "keep.txt": n, "sub/c": "c"})
    r = shoal("copy", "-w", "n[1-2]", "-r", str(src), "/dest/")
    assert r.returncode == 0, r.stderr
    for n in ("n1", "n2"):
        got = _files(nodes.roots[n] / "dest" / "srcdir")
        assert got == {"a.txt": "new a", "keep.txt": n, "sub/b.txt": "b", "sub/c": "c"}
        assert temp_leftovers(nodes.roots[n]) == []


def test_delete_mirrors_the_source_directory(nodes: Nodes, tmp_path: Path) -> None:
    src = _tree(tmp_path / "srcdir", {"a.txt": "new a"})
    _tree(nodes.roots["n1"] / "dest" / "srcdir", {"a.txt": "old a", "stale.txt": "x"})
    r = shoal("copy", "-w", "n1", "-r", "--delete", str(src), "/dest/")
    assert r.returncode == 0, r.stderr
    assert _files(nodes.roots["n1"] / "dest" / "srcdir") == {"a.txt": "new a"}
    r = shoal("copy", "-w", "n1", "--delete", str(src / "a.txt"), "/dest/")
    assert r.returncode == 2 and "needs -r" in r.stderr


def test_a_merge_that_would_replace_a_directory_with_a_file_changes_nothing(
    nodes: Nodes, tmp_path: Path
) -> None:
    src = _tree(tmp_path / "srcdir", {"a.txt": "new", "sub": "a file here"})
    there = _tree(nodes.roots["n1"] / "dest" / "srcdir", {"a.txt": "old", "sub/x": "x"})
    r = shoal("copy", "-w", "n[1-2]", "-r", str(src), "/dest/")
    assert r.returncode == 1 and "FAILED: n1" in r.stdout and "PASS: n2" in r.stdout
    assert "srcdir/sub is a directory where the source has another kind" in r.stderr
    assert _files(there) == {"a.txt": "old", "sub/x": "x"}  # not half-merged
    assert temp_leftovers(nodes.roots["n1"]) == []
    assert all("Traceback" not in a.log_text() for a in nodes.agents.started)


def test_a_file_copy_never_widens_the_mode(nodes: Nodes, tmp_path: Path) -> None:
    key = tmp_path / "id_key"
    key.write_text("secret")
    key.chmod(0o600)
    script = tmp_path / "tool"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o750)
    for f in (key, script):
        r = shoal("copy", "-w", "n[1-2]", str(f), "/dest/")
        assert r.returncode == 0, r.stderr
    for n in ("n1", "n2"):
        assert (nodes.roots[n] / "dest" / "id_key").stat().st_mode & 0o777 == 0o600
        assert (nodes.roots[n] / "dest" / "tool").stat().st_mode & 0o777 == 0o750


def test_absolute_and_outward_symlinks_stay_links(nodes: Nodes, tmp_path: Path) -> None:
    d = _tree(tmp_path / "etcish", {"hosts": "127.0.0.1 localhost"})
    (d / "passwd").symlink_to("/etc/passwd")
    (d / "up").symlink_to("../../elsewhere")
    (d / "etc").symlink_to("/etc")  # a link to a directory: not followed
    r = shoal("copy", "-w", "n[1-2]", "-r", str(d), "/dest/")
    assert r.returncode == 0, r.stderr
    for n in ("n1", "n2"):
        got = nodes.roots[n] / "dest" / "etcish"
        assert os.readlink(got / "passwd") == "/etc/passwd"
        assert os.readlink(got / "up") == "../../elsewhere"
        assert os.readlink(got / "etc") == "/etc"
        assert (got / "hosts").read_text() == "127.0.0.1 localhost"


def test_gather_reads_what_a_file_holds_whatever_its_size_says(
    agents: Agents, tmp_path: Path
) -> None:
    """/proc/loadavg says size 0 and holds a line: it is gathered as read."""
    agents.start("g1")  # files root "/": the node's real /proc
    agents.inventory()
    r = shoal("gather", "-w", "g1", "/proc/loadavg", str(tmp_path / "logs"))
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "logs" / "loadavg.g1").read_text()
    assert len(text.split()) == 5 and text.endswith("\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/nonexistent/file", "/dest/"], "no such file"),
        (["{tmp}", "/dest/"], "use -r"),
        (["{file}", "dest/"], "absolute"),
        (["{file}", "/dest/", "--chunk-size", "lots"], "expected a size"),
    ],
)
def test_bad_input_is_one_line_before_any_connection(
    shoal_home: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    # An inventory of nodes nobody serves: any connection attempt would show.
    (shoal_home / "inventory.toml").write_text('[nodes]\nx1 = "127.0.0.1:9"\n')
    argv = [a.format(tmp=tmp_path, file=f) for a in args]
    r = shoal("copy", "-w", "x1", *argv)
    assert r.returncode == 2
    assert message in r.stderr and r.stderr.count("\n") == 1
    assert "UNREACHABLE" not in r.stdout + r.stderr


def test_gather_into_a_file_is_refused(shoal_home: Path, tmp_path: Path) -> None:
    (tmp_path / "logs").write_text("a file")
    r = shoal("gather", "-w", "n1", "/var/log/x", str(tmp_path / "logs"))
    assert r.returncode == 2 and "not a directory" in r.stderr


def _size(p: Path) -> int:
    """-1 for a file gone meanwhile (a claim's transient name, tree/claim.py)."""
    try:
        return p.stat().st_size
    except FileNotFoundError:
        return -1


def _wait_for_spool(root: Path, min_bytes: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        parts = [p for p in (root / "dest").iterdir() if p.name.endswith(".shoal-part")]
        if any(_size(p) >= min_bytes for p in parts):
            return
        time.sleep(0.005)
    pytest.fail(f"no transfer reached {root}")


def test_relay_killed_mid_copy_subtree_is_adopted_and_verified(
    nodes: Nodes, tmp_path: Path
) -> None:
    src = tmp_path / "big"
    src.write_bytes(os.urandom(150_000_000))
    p = subprocess.Popen(
        # A kill is seen at once (RST); a long stall timeout keeps a loaded machine
        # from taking slow nodes for dead.
        [
            *SHOAL,
            "copy",
            "-w",
            "n[1-5]",
            "-W",
            "1",
            "--chunk-size",
            "64K",
            "--stall-timeout",
            "120",
            str(src),
            "/dest/",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_spool(nodes.roots["n3"], 2_000_000)
    nodes.kill("n2")  # a relay in the middle of the chain n1 > n2 > n3 > n4 > n5
    out, err = p.communicate(timeout=120)
    assert p.returncode == 4, err
    assert "PASS: n[1,3-5], SUM: 4" in out and "UNREACHABLE: n2, SUM: 1" in out, err
    for n in ("n1", "n3", "n4", "n5"):
        assert (nodes.roots[n] / "dest" / "big").read_bytes() == src.read_bytes()
        assert temp_leftovers(nodes.roots[n]) == []


def test_ctrl_c_removes_every_temporary_file(nodes: Nodes, tmp_path: Path) -> None:
    src = tmp_path / "big"
    src.write_bytes(os.urandom(200_000_000))
    p = subprocess.Popen(
        [
            *SHOAL,
            "copy",
            "-w",
            "n[1-5]",
            "-W",
            "1",
            "--chunk-size",
            "16K",
            "--stall-timeout",
            "120",
            str(src),
            "/dest/",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_spool(nodes.roots["n2"], 1_000_000)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    deadline = time.monotonic() + 30  # generous: these machines are small and noisy
    while time.monotonic() < deadline:
        if not any(temp_leftovers(r) for r in nodes.roots.values()):
            break
        time.sleep(0.02)
    assert [temp_leftovers(r) for r in nodes.roots.values()] == [[]] * 5
    assert not any((r / "dest" / "big").exists() for r in nodes.roots.values())


@pytest.mark.skipif(os.geteuid() != 0, reason="filling a tiny tmpfs needs root to mount it")
def test_disk_full_on_one_relay_fails_it_alone(nodes: Nodes, tmp_path: Path) -> None:
    dest = nodes.roots["n2"] / "dest"
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(dest)], check=True)
    try:
        src = tmp_path / "big"
        src.write_bytes(os.urandom(8_000_000))
        r = shoal("copy", "-w", "n[1-5]", "-W", "1", str(src), "/dest/")
        assert r.returncode == 1, r.stderr
        assert "FAILED: n2, SUM: 1" in r.stdout and "PASS: n[1,3-5], SUM: 4" in r.stdout
        assert "disk full" in r.stderr
        assert list(dest.iterdir()) == []
        for n in ("n3", "n4", "n5"):
            assert (nodes.roots[n] / "dest" / "big").read_bytes() == src.read_bytes()
    finally:
        subprocess.run(["umount", "-l", str(dest)], check=False)


def _copy_in_background(*args: str) -> subprocess.Popen[str]:
    # A kill is seen at once (RST); a long stall timeout keeps a loaded machine
    # from taking slow nodes for dead.
    return subprocess.Popen(
        [*SHOAL, "copy", "--chunk-size", "64K", "--stall-timeout", "120", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _part_of(directory: Path, name: str, min_bytes: int) -> Path:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for p in directory.iterdir():
            if p.name.startswith(f".{name}.") and p.name.endswith(".shoal-part"):
                if _size(p) >= min_bytes:
                    return p
        time.sleep(0.005)
    pytest.fail(f"no transfer of {name} reached {directory}")


def test_relay_killed_mid_copy_its_part_is_swept_when_it_restarts(
    nodes: Nodes, tmp_path: Path
) -> None:
    src = tmp_path / "big"
    src.write_bytes(os.urandom(150_000_000))
    p = _copy_in_background("-w", "n[1-5]", "-W", "1", str(src), "/dest/")
    dest = nodes.roots["n2"] / "dest"
    _part_of(dest, "big", 2_000_000)
    nodes.kill("n2")  # SIGKILL: nothing of the agent runs to clean up
    out, err = p.communicate(timeout=120)
    assert p.returncode == 4 and "UNREACHABLE: n2, SUM: 1" in out, err
    (left,) = temp_leftovers(nodes.roots["n2"])  # what the crash left
    size = left.stat().st_size
    again = nodes.agents.start("n2", files_root=nodes.roots["n2"])
    assert temp_leftovers(nodes.roots["n2"]) == []
    log = again.log_text()
    assert f"agent n2: swept 1 stale spool file(s) of transfers that died, {size} bytes" in log
    assert str(left) in log


def test_an_agent_stopped_mid_copy_leaves_no_part(nodes: Nodes, tmp_path: Path) -> None:
    """SIGTERM: the agent closes its transfers (FilesService.close) before it
    exits, so nothing is left for a sweep; the others still get the file."""
    src = tmp_path / "big"
    src.write_bytes(os.urandom(200_000_000))
    p = _copy_in_background("-w", "n[1-5]", "-W", "1", str(src), "/dest/")
    _part_of(nodes.roots["n2"] / "dest", "big", 2_000_000)
    nodes.kill("n2", signal.SIGTERM)
    assert temp_leftovers(nodes.roots["n2"]) == []
    out, err = p.communicate(timeout=120)
    assert p.returncode == 4 and "UNREACHABLE: n2, SUM: 1" in out, (out, err)
    assert "PASS: n[1,3-5], SUM: 4" in out
    assert not (nodes.roots["n2"] / "dest" / "big").exists()


def test_restart_sweep_keeps_the_part_a_live_agent_is_writing(
    agents: Agents, tmp_path: Path
) -> None:
    """Two agents on one filesystem: the one restarting removes its own dead
    part, never the part the other is writing at that moment."""
    root = tmp_path / "shared"
    (root / "dest").mkdir(parents=True)
    s1 = agents.start("s1", files_root=root)
    s2 = agents.start("s2", files_root=root)
    agents.inventory()
    dest = root / "dest"
    old, new = tmp_path / "old", tmp_path / "new"
    old.write_bytes(os.urandom(100_000_000))
    new.write_bytes(os.urandom(100_000_000))
    p = _copy_in_background("-w", "s2", str(old), "/dest/")
    dead = _part_of(dest, "old", 2_000_000)
    s2.kill()
    p.communicate(timeout=120)
    p = _copy_in_background("-w", "s1", str(new), "/dest/")
    live = _part_of(dest, "new", 2_000_000)
    os.kill(p.pid, signal.SIGSTOP)  # s1's transfer is live, mid-way, while s2 starts
    try:
        s2 = agents.start("s2", files_root=root)
        assert not dead.exists()
        assert live.exists()
    finally:
        os.kill(p.pid, signal.SIGCONT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert (dest / "new").read_bytes() == new.read_bytes()
    assert temp_leftovers(root) == []
    assert "swept 1 stale spool file(s)" in s2.log_text()
    assert "swept" not in s1.log_text()
