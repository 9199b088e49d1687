"""Every entry point's --help: exit 0, the full usage on stdout, and a default (or "required") for every option."""
from __future__ import annotations

import re
import sys

import pytest

from helpers import REPO_ROOT, run_script

# Every Python file that runs as a program (found, so that a new entry point is checked without a list to update).
PYTHON_ENTRY_POINTS = sorted(
    path.relative_to(REPO_ROOT).with_suffix("").as_posix().replace("/", ".")
    for path in REPO_ROOT.rglob("*.py")
    if not any(part.startswith(".") or part in ("tests", "site-packages") for part in path.relative_to(REPO_ROOT).parts)
    and 'if __name__ == "__main__"' in path.read_text())
SHELL_SCRIPTS = ["preprocess_data.sh", "train.sh", "build.sh", "run.sh", "download_dfdc.sh", "demo.sh",
                 "predict_submission.sh", "weights/download_weights.sh"]
OPTION_TAKING_A_VALUE = re.compile(r"^\s{2}(-\w [A-Z_]+, )?--[\w-]+ [A-Z_{]")


def option_entries(help_text: str) -> list[str]:
    """The text of each option in the help, from its `  --name VALUE` line to the next option."""
    entries: list[str] = []
    in_option = False
    for line in help_text.splitlines():
        if re.match(r"^\s{2}-", line):
            entries.append(line)
            in_option = True
        elif in_option and line.startswith(" " * 3):
            entries[-1] += " " + line.strip()
        else:  # a section heading or a blank line ends the option
            in_option = False
    return entries


def test_the_entry_points_are_found():
    assert {"predict_folder", "evaluate", "plot_loss", "training.pipelines.train_classifier",
            "preprocessing.generate_folds", "demo.make_demo_dataset", "bench.predict"} <= set(PYTHON_ENTRY_POINTS)


def _help_case(module: str):
    """The benchmarks' --help runs in the slow tier: each start imports torch, and the stages' own entry points
    keep the check in the fast tier."""
    return pytest.param(module, marks=pytest.mark.slow) if module.startswith("bench.") else module


@pytest.mark.parametrize("module", [_help_case(module) for module in PYTHON_ENTRY_POINTS])
def test_python_help_shows_every_default(module):
    result = run_script(sys.executable, "-m", module, "--help", timeout=300)
    assert result.stdout.startswith("usage:"), result.stdout[:200]
    entries = [entry for entry in option_entries(result.stdout) if OPTION_TAKING_A_VALUE.match(entry)]
    without = [entry.split()[0] for entry in entries if "(default:" not in entry and "(required)" not in entry]
    assert not without, f"{module} --help shows no default for {without}"
    assert entries, f"{module} --help lists no option with a value: {result.stdout}"


@pytest.mark.parametrize("script", SHELL_SCRIPTS)
def test_shell_help_exits_0_with_the_usage_on_stdout(script):
    result = run_script("bash", script, "--help", timeout=60)
    assert result.stdout.startswith("usage:"), result.stdout[:300]
    assert "error" not in result.stdout.lower().split("usage")[0] + result.stderr.lower()
