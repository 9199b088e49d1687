"""bench/gpu_check.sh on the CPU: the dry run goes through every section's code, and a failing section fails it."""
from __future__ import annotations

import pytest
import torch

from helpers import run_script

SECTION_MEASURES = {
    "train": {"setup", "images/s", "data-loader wait", "train loss", "wall time"},
    "predict": {"ensemble", "videos/s", "seconds per video", "scored videos"},
    "compile": {"videos/s off", "videos/s on", "compile + first video", "largest score change"},
    "mtcnn": {"frames/s, 1 per call", "frames/s, 32 per call", "box IoU min / median",
              "frames with another face count"},
}


def table(stdout: str) -> dict[tuple[str, str], tuple[str, str]]:
    """{(section, measure): (value, note)} from the printed table (header and rule left out)."""
    rows = {}
    for line in stdout.splitlines():
        if line.startswith("| ") and not line.startswith(("| section ", "| ---")):
            section, measure, value, note = (cell.strip() for cell in line.strip("|").split(" | "))
            rows[section, measure] = (value, note)
    return rows


@pytest.mark.slow
def test_dry_run_reports_every_section(tmp_path):
    result = run_script("bash", "bench/gpu_check.sh", "--dry-run", "--work-dir", tmp_path, timeout=900)
    rows = table(result.stdout)
    for section, measures in SECTION_MEASURES.items():
        assert {m for s, m in rows if s == section} == measures, rows
    assert rows["total", "wall time"][1] == "all sections passed"
    assert rows["machine", "device"][0] == "CPU (dry run)"

    assert "2 process(es) on cpu" in rows["train", "setup"][0]  # two gloo ranks: the DDP path
    assert float(rows["train", "images/s"][0]) > 0
    assert 0 <= float(rows["train", "data-loader wait"][0].rstrip("%")) <= 100
    assert float(rows["predict", "videos/s"][0]) > 0
    assert rows["predict", "scored videos"][0] == "2 of 2"
    assert {part.split()[0] for part in rows["predict", "seconds per video"][0].split(", ")} >= {
        "decode", "detect", "classify"}
    assert float(rows["compile", "largest score change"][0]) <= 1e-3
    iou_min, iou_median = (float(v) for v in rows["mtcnn", "box IoU min / median"][0].split(" / "))
    assert 0.5 <= iou_min <= iou_median <= 1
    # The trainer's own record of the run, which the table reads.
    assert len(list((tmp_path / "train_weights").glob("gpu_check_*_last"))) == 1


@pytest.mark.slow
def test_a_failing_section_is_in_the_table_and_fails_the_run(tmp_path):
    missing = tmp_path / "no_such_config.json"
    result = run_script("bash", "bench/gpu_check.sh", "--dry-run", "--sections", "train", "--train-config", missing,
                        check=False, timeout=300)
    assert result.returncode == 1
    rows = table(result.stdout)
    value, _ = rows["train", "FAILED"]
    assert "no_such_config.json" in value
    assert rows["total", "wall time"][1] == "FAILED: train"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_the_full_check_needs_a_gpu():
    result = run_script("bash", "bench/gpu_check.sh", check=False, timeout=120)
    assert result.returncode == 2 and "--dry-run" in result.stderr
