from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from procs import STARTED, Proc, start_backend, start_gateway, write_config


@pytest.fixture(autouse=True)
def _stop_leftovers() -> Iterator[None]:
    """A test that fails half-way (say, its second gateway does not start) must
    not leave its backends running."""
    n = len(STARTED)
    yield
    for p in STARTED[n:]:
        p.stop()
    del STARTED[n:]


@pytest.fixture(scope="module")
def two_backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Proc]]:
    tmp = tmp_path_factory.mktemp("jobes")
    bs = [start_backend(tmp, slots=2, wait=0.3) for _ in range(2)]
    yield bs
    for b in bs:
        b.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, two_backends: list[Proc]) -> Iterator[Proc]:
    tmp: Path = tmp_path_factory.mktemp("gw")
    extra = f'[gateway]\nfiles_dir = "{tmp / "files"}"\nhealth_interval = 0.5\nqueue_timeout = 5\n'
    cfg = write_config(
        tmp / "gw.toml", [{"url": b.url, "capacity": 2} for b in two_backends], extra
    )
    g = start_gateway(cfg, "--quiet")
    yield g
    g.stop()
