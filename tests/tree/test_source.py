from pathlib import Path

import pytest

from shoal.errors import UsageError
from shoal.tree.source import open_source


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        open_source(str(tmp_path / "nope"))


def test_directory_without_r(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="use -r"):
        open_source(str(tmp_path))


def test_bad_chunk_size(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(UsageError, match="chunk size"):
        open_source(str(f), chunk_size=10)


def test_not_a_regular_file() -> None:
    with pytest.raises(UsageError, match="not a regular file"):
        open_source("/dev/null")


def test_chunks_cover_the_file_once(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x" * 10_000)
    src = open_source(str(f), chunk_size=4096)
    chunks = list(src.chunks())
    assert [len(c) for c in chunks] == [4096, 4096, 1808]
    assert src.sent == 10_000 and src.meta.size == 10_000 and len(src.digest) == 32


def test_tar_stream_is_chunked_and_bounded(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / "big").write_bytes(b"y" * 100_000)
    src = open_source(str(d), recursive=True, chunk_size=4096)
    sizes = [len(c) for c in src.chunks()]
    assert max(sizes) == 4096
    assert sum(sizes) % 512 == 0 and sum(sizes) > 100_000
