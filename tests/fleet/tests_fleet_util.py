"""Looking at processes through /proc: which agents run for a name, and their environment."""

from __future__ import annotations

from pathlib import Path


def agents_named(name: str, tls_dir: Path) -> list[int]:
    """Live (not zombie) `shoal agent --name NAME --tls-dir TLS_DIR` processes, by
    pid: this test's (other tests may run agents of the same name)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z" or b"agent" not in argv or str(tls_dir).encode() not in argv:
            continue
        if argv[argv.index(b"agent") :].count(name.encode()) and b"--name" in argv:
            i = argv.index(b"--name")
            if i + 1 < len(argv) and argv[i + 1] == name.encode():
                out.append(int(d.name))
    return sorted(out)


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = [x.decode(errors="replace").split("=", 1) for x in raw.split(b"\0") if b"=" in x]
    return {k: v for k, v in pairs}
