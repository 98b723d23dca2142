"""A .gz dump's checksums are checked before its scan (the whole file decompressed once
more), but not again when the same input's scan is resumed: the checkpoint says it was
checked, and the checkpoint belongs to one input. A changed file is checked again."""

from __future__ import annotations

import gzip

from sqlalchemy import func, select

from issueminer.cli.main import app
from issueminer.collect.checkpoints import Checkpointer
from issueminer.collect.sodump import streams
from issueminer.store import Issue, Store
from tests.test_sodump import _many_questions, _stop_at_commit


def test_a_resumed_gzip_scan_does_not_check_its_checksums_again(
    tmp_path, runner, monkeypatch
) -> None:
    path = tmp_path / "Posts.xml.gz"
    path.write_bytes(gzip.compress(_many_questions()))
    db = tmp_path / "resume.db"
    command = ["crawl", "so-dump", str(path), "--db", str(db), "--piece-size", "8KB"]
    checks: list[str] = []
    check = streams._check_gzip_checksums

    def counted(where: str, name: str) -> None:
        checks.append(where)
        check(where, name)

    monkeypatch.setattr(streams, "_check_gzip_checksums", counted)
    commit_page = Checkpointer.commit_page
    monkeypatch.setattr(Checkpointer, "commit_page", _stop_at_commit("stream", 2))
    assert runner.invoke(app, command).exit_code == 130  # stopped part way
    assert len(checks) == 1
    monkeypatch.setattr(Checkpointer, "commit_page", commit_page)
    resumed = runner.invoke(app, command)
    assert resumed.exit_code == 0, resumed.output
    assert len(checks) == 1  # the same input, resumed: not checked again
    with Store(f"sqlite:///{db}").session() as session:
        assert session.scalar(select(func.count()).select_from(Issue)) == 125

    # the file changed: its scan starts afresh, and its checksums are checked
    path.write_bytes(gzip.compress(_many_questions(130)))
    monkeypatch.setattr(Checkpointer, "commit_page", _stop_at_commit("stream", 2))
    assert runner.invoke(app, command).exit_code == 130
    assert len(checks) == 2
    monkeypatch.setattr(Checkpointer, "commit_page", commit_page)
    assert runner.invoke(app, command).exit_code == 0
    assert len(checks) == 2  # and that scan, resumed, is not checked again either


def test_a_file_damaged_after_its_scan_stopped_is_checked_and_refused(
    tmp_path, runner, monkeypatch
) -> None:
    """Only an unfinished scan of this very input spares the check: the same file damaged
    since (another input, by its content) is checked, refused, and nothing more stored."""
    path = tmp_path / "Posts.xml.gz"
    packed = bytearray(gzip.compress(_many_questions(), compresslevel=0))
    path.write_bytes(bytes(packed))
    db = tmp_path / "damaged.db"
    command = ["crawl", "so-dump", str(path), "--db", str(db), "--piece-size", "8KB"]
    commit_page = Checkpointer.commit_page
    monkeypatch.setattr(Checkpointer, "commit_page", _stop_at_commit("stream", 2))
    assert runner.invoke(app, command).exit_code == 130
    monkeypatch.setattr(Checkpointer, "commit_page", commit_page)
    store = Store(f"sqlite:///{db}")
    with store.session() as session:
        stored = session.scalar(select(func.count()).select_from(Issue))
    assert 0 < stored < 125
    packed[packed.rindex(b"How to train?")] = ord("W")  # decodes, but fails its CRC
    path.write_bytes(bytes(packed))
    result = runner.invoke(app, command)
    assert result.exit_code == 3
    assert "fails its checksum" in result.stderr
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Issue)) == stored
