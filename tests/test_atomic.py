import os

import pytest

from hne_core.atomic import atomic_dir, atomic_path, write_text_atomic


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_failed_directory_keeps_the_old_one(tmp_path):
    out = tmp_path / "dir"
    with atomic_dir(out) as tmp:
        (tmp / "a").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "a").write_text("new")
            raise RuntimeError("killed")
    assert (out / "a").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir"]


def test_outputs_get_the_usual_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "f.txt", "x")
        with atomic_dir(tmp_path / "d"):
            pass
    finally:
        os.umask(mask)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_outputs_get_the_umask_permissions_and_the_umask_is_never_changed(tmp_path, monkeypatch):
    """Reading the umask must not set it (threads writing at that moment would get 0): os.umask is never called."""
    import hne_core.atomic as atomic

    old = os.umask(0o027)
    try:
        calls = []
        real = os.umask
        monkeypatch.setattr(atomic.os, "umask", lambda m: calls.append(m) or real(m))
        write_text_atomic(tmp_path / "f.txt", "x")
        with atomic_dir(tmp_path / "d"):
            pass
        assert calls == [] and real(0o027) == 0o027
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o750
