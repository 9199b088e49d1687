"""pyproject.toml against the tree and the pin files: every package installed, the same dependencies as the pins."""
from __future__ import annotations

import re
import tomllib

from helpers import REPO_ROOT

PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
DEV_TOOLS = {"pytest", "ruff", "hypothesis"}


def pinned(name: str) -> dict[str, str]:
    """Package name -> exact version of a pin file."""
    pins = {}
    for line in (REPO_ROOT / name).read_text().splitlines():
        spec = line.split("#")[0].strip()
        if spec:
            package, version = spec.split("==")
            pins[package.strip().lower().replace("_", "-")] = version.strip()
    return pins


def requirement_name(spec: str) -> str:
    return re.split(r"[=<>!~\[ ;]", spec)[0].lower().replace("_", "-")


def test_every_package_of_the_tree_is_installed():
    found = {str(init.parent.relative_to(REPO_ROOT)).replace("/", ".") for init in REPO_ROOT.rglob("__init__.py")
             if not any(part.startswith(".") or part in ("tests", "bench", "build") for part in
                        init.relative_to(REPO_ROOT).parts)}
    assert found == set(PROJECT["tool"]["setuptools"]["packages"])
    for module in PROJECT["tool"]["setuptools"]["py-modules"]:
        assert (REPO_ROOT / f"{module}.py").is_file(), module


def test_runtime_dependencies_are_the_pinned_packages_and_dev_tools_are_apart():
    runtime, dev = pinned("requirements.txt"), pinned("requirements-dev.txt")
    assert {requirement_name(spec) for spec in PROJECT["project"]["dependencies"]} == set(runtime)
    assert set(dev) == DEV_TOOLS and not DEV_TOOLS & set(runtime)
    assert {requirement_name(spec) for spec in PROJECT["project"]["optional-dependencies"]["dev"]} == DEV_TOOLS
