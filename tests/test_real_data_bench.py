"""bench/real_data.py's --override and --name: refused before any work when they cannot be honoured."""
from __future__ import annotations

import pytest

from bench import real_data


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "ffpp"
    folder.mkdir()
    (folder / "PROVENANCE.csv").write_text("path,label,source_path\n")
    return folder


def main(source, work, *extra):
    return real_data.main(["--source", str(source), "--work-dir", str(work), *extra])


def test_an_override_needs_a_name(source, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(source, tmp_path / "work", "--override", "sbi.blend_ratios=[1]")
    assert exit_info.value.code == 2 and "--override needs --name" in capsys.readouterr().err


def test_an_override_a_run_cannot_take_is_refused_before_any_work(source, tmp_path):
    with pytest.raises(SystemExit, match=r"run winner: .*sbi.blend_ratios set how self-blended fakes are made"):
        main(source, tmp_path / "work", "--runs", "sbi", "winner", "--override", "sbi.blend_ratios=[1]",
             "--name", "full")
    with pytest.raises(SystemExit, match="run sbi: .*unknown config key 'sbi.ratio'"):
        main(source, tmp_path / "work", "--runs", "sbi", "--override", "sbi.ratio=1", "--name", "full")
    assert not (tmp_path / "work").exists()


def test_a_name_keeps_the_overrides_it_was_made_with(source, tmp_path):
    work = tmp_path / "work"
    real_data.check_overrides(work / "full", real_data.parse_args(
        ["--work-dir", str(work), "--runs", "sbi", "--override", "sbi.blend_ratios=[1]", "--name", "full"]))
    assert (work / "full" / "overrides.json").is_file()
    with pytest.raises(SystemExit, match=r"holds runs made with --override \['sbi.blend_ratios=\[1\]'\]"):
        main(source, work, "--runs", "sbi", "--override", "sbi.deform=false", "--name", "full")
