"""Keeps the Dockerfile, build.sh and run.sh honest without a Docker engine.

The Dockerfile is parsed and checked against requirements.txt and the repository; build.sh and run.sh run
for real against a stand-in `docker` placed first on PATH that records its arguments.
"""
from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import stand_in_on_path

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO_ROOT / "Dockerfile"
DEFAULT_IMAGE = "dfdc-detector:latest"

# Scripts a user runs on the host (download_dfdc.sh: the Kaggle client and token live there), and in the image.
HOST_SCRIPTS = ["build.sh", "run.sh", "download_dfdc.sh"]
IMAGE_SCRIPTS = ["preprocess_data.sh", "train.sh", "predict_submission.sh", "demo.sh", "test.sh"]
FORBIDDEN_APT_PACKAGES = {"vim", "nano", "mc", "glances", "git", "build-essential", "cmake", "gcc", "g++"}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += stripped
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, arguments = pending.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def run_commands() -> list[list[str]]:
    """The words of every shell command of every RUN, split at &&, || and ; outside quotes."""
    commands = []
    for keyword, arguments in dockerfile_instructions():
        if keyword != "RUN":
            continue
        lexer = shlex.shlex(arguments, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        current = []
        for token in lexer:
            if token in ("&&", "||", ";"):
                commands.append(current)
                current = []
            else:
                current.append(token)
        commands.append(current)
    return [words for words in commands if words]


def pip_installs() -> list[list[str]]:
    """The arguments after `pip install` of every pip call in the Dockerfile."""
    installs = []
    for words in run_commands():
        for i in range(len(words) - 1):
            if words[i] in ("pip", "pip3") and words[i + 1] == "install":
                installs.append(words[i + 2:])
    return installs


def requirement_names() -> set[str]:
    names = set()
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        spec = line.split("#")[0].strip()
        if spec:
            names.add(re.split(r"[=<>!~\[ ]", spec)[0].lower().replace("_", "-"))
    return names


def dockerignore_excludes(relative: str) -> bool:
    """Whether .dockerignore keeps `relative` (or a folder above it) out of the build context."""
    path_parts = relative.split("/")
    excluded = False
    for line in (REPO_ROOT / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/").replace("**/", "")
        prefixes = ["/".join(path_parts[:n]) for n in range(1, len(path_parts) + 1)]
        if any(fnmatch.fnmatch(prefix, pattern) or fnmatch.fnmatch(prefix.split("/")[-1], pattern)
               for prefix in prefixes):
            excluded = not negated
    return excluded


def test_installs_exactly_requirements_txt():
    installs = pip_installs()
    from_file = [args for args in installs if "-r" in args and args[args.index("-r") + 1] == "requirements.txt"]
    assert len(from_file) == 1, f"expected one `pip install -r requirements.txt`, found {installs}"
    pinned = requirement_names()
    for args in installs:
        if args in from_file:
            continue
        packages = {re.split(r"[=<>!~\[]", a)[0].lower().replace("_", "-") for a in args if not a.startswith("-")}
        assert not packages & pinned, f"{args} reinstalls pinned packages outside requirements.txt"
    every_command = " ".join(" ".join(words) for words in run_commands()).lower()
    assert "apex" not in every_command
    assert not re.search(r"pip3? install[^&;]*\bdlib\b", every_command), "dlib comes from the dlib-bin wheel"
    assert "git clone" not in every_command


def test_dependencies_are_installed_before_the_code_is_copied():
    keywords = [(keyword, arguments) for keyword, arguments in dockerfile_instructions()]
    copy_requirements = next(i for i, (k, a) in enumerate(keywords) if k == "COPY" and a.startswith("requirements.txt"))
    pip_step = next(i for i, (k, a) in enumerate(keywords) if k == "RUN" and "-r requirements.txt" in a)
    copy_code = next(i for i, (k, a) in enumerate(keywords) if k == "COPY" and a.split()[0] == ".")
    assert copy_requirements < pip_step < copy_code
    after_code = [a for k, a in keywords[copy_code + 1:] if k in ("COPY", "ADD", "RUN")]
    assert len(after_code) == 1 and "pip install --no-deps -e ." in after_code[0], \
        f"after the code only its editable install (no dependencies) may run, found {after_code}"


def test_copy_sources_exist_and_reach_the_build_context():
    for keyword, arguments in dockerfile_instructions():
        if keyword not in ("COPY", "ADD"):
            continue
        words = [w for w in shlex.split(arguments) if not w.startswith("--")]
        assert len(words) >= 2, arguments
        for source in words[:-1]:
            assert (REPO_ROOT / source).exists(), f"{keyword} {source}: no such file in the repository"
            if source != ".":
                assert not dockerignore_excludes(source), f"{source} is excluded by .dockerignore"


def test_dockerignore_keeps_bulky_and_host_only_files_out():
    for path in (".git/config", ".venv/bin/python", "weights/final_999_DeepFakeClassifier.pth", "logs/run1.log",
                 "demo_output/x.csv", "training/__pycache__/a.pyc"):
        assert dockerignore_excludes(path), path
    for path in ("requirements.txt", "training/zoo/classifiers.py", "weights/download_weights.sh", "configs"):
        assert not dockerignore_excludes(path), path


def test_image_environment():
    instructions = dockerfile_instructions()
    base = next(a for k, a in instructions if k == "FROM")
    assert re.match(r"python:3\.11[.-]", base), f"the pins are tested on Python 3.11, not {base}"
    env = " ".join(a for k, a in instructions if k == "ENV")
    for setting in ("OMP_WAIT_POLICY=PASSIVE", "HF_HOME=/opt/cache/huggingface",
                    "DFDC_IN_IMAGE=1"):
        assert setting in env.split(), setting
    assert "HF_HUB_OFFLINE" not in env, "offline mode is the user's choice (-e HF_HUB_OFFLINE=1)"
    assert "PYTHONPATH" not in env, "the checkout is installed in editable mode instead"
    assert ("WORKDIR", "/workspace") in instructions
    assert any(k == "ARG" and a.startswith("BAKE_WEIGHTS") for k, a in instructions)
    for words in run_commands():
        if words[:2] == ["apt-get", "install"]:
            packages = {w for w in words[2:] if not w.startswith("-")}
            assert not packages & FORBIDDEN_APT_PACKAGES, packages


def test_baked_weights_are_the_noisy_student_b7_and_b5():
    bake = " ".join(word for words in run_commands() for word in words if "timm" in word)
    for name in ("tf_efficientnet_b7.ns_jft_in1k", "tf_efficientnet_b5.ns_jft_in1k"):
        assert name in bake
    import timm

    baked = {"tf_efficientnet_b7.ns_jft_in1k", "tf_efficientnet_b5.ns_jft_in1k"}
    assert baked <= set(timm.list_pretrained("tf_efficientnet_b*"))


@pytest.mark.parametrize("script", HOST_SCRIPTS + IMAGE_SCRIPTS)
def test_script_exists_and_is_executable(script):
    path = REPO_ROOT / script
    assert path.is_file(), f"{script} is missing"
    assert os.access(path, os.X_OK), f"{script} is not executable (chmod +x, and commit the mode)"
    assert path.read_text().startswith("#!"), f"{script} has no shebang line"
    syntax = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr


FAKE_DOCKER = f"""#!{sys.executable}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_DOCKER_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[:1] == ["info"]:
    print(os.environ.get("FAKE_DOCKER_INFO", '{{"nvidia":{{}},"runc":{{}}}}'))
    if os.environ.get("FAKE_DOCKER_ENGINE_DOWN"):
        sys.stderr.write("Cannot connect to the Docker daemon at unix:///var/run/docker.sock.\\n")
        sys.exit(1)
if args[:2] == ["image", "inspect"]:
    print(os.environ.get("FAKE_DOCKER_BAKED", ""))
"""

PROXIES = {"http_proxy": "http://proxy.example:3128", "HTTPS_PROXY": "http://proxy.example:3128",
           "no_proxy": "localhost,.example"}


@pytest.fixture
def docker_env(tmp_path) -> dict:
    """Environment with the stand-in docker first on PATH, three proxies set and the others unset."""
    path = stand_in_on_path(tmp_path, "docker", FAKE_DOCKER)
    # The host's view: none of the image's settings (the image sets HF_HOME and DFDC_IN_IMAGE), no proxies.
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy") and not k.startswith("DFDC_")}
    for name in ("NO_GPU", "HF_HOME"):
        env.pop(name, None)
    env.update(PROXIES, PATH=path, HOME=str(tmp_path / "home"),
               FAKE_DOCKER_LOG=str(tmp_path / "docker_calls.jsonl"))
    return env


def run_repo_script(env: dict, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO_ROOT / args[0]), *map(str, args[1:])], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)


def docker_calls(env: dict, command: str) -> list[list[str]]:
    log = Path(env["FAKE_DOCKER_LOG"])
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return [call for call in calls if call[:1] == [command]]


def option_values(argv: list[str], option: str) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == option]


@pytest.mark.slow
def test_build_passes_set_proxies_tag_and_extra_args(docker_env):
    result = run_repo_script(docker_env, "build.sh", "--build-arg", "BAKE_WEIGHTS=1")
    assert result.returncode == 0, result.stderr
    [argv] = docker_calls(docker_env, "build")
    assert option_values(argv, "-t") == [DEFAULT_IMAGE]
    assert option_values(argv, "-f") == [str(REPO_ROOT / "Dockerfile")]
    assert sorted(a for a in option_values(argv, "--build-arg") if "proxy" in a.lower()) == sorted(PROXIES)
    assert "BAKE_WEIGHTS=1" in option_values(argv, "--build-arg")
    assert argv[-1] == str(REPO_ROOT)
    assert "--network=host" not in argv

    custom = run_repo_script({**docker_env, "http_proxy": "http://127.0.0.1:3128"}, "build.sh", "lab/dfdc:v2")
    assert custom.returncode == 0, custom.stderr
    argv = docker_calls(docker_env, "build")[-1]
    assert option_values(argv, "-t") == ["lab/dfdc:v2"]
    assert "--network=host" in argv, "a proxy on localhost is only reachable from the host network"


@pytest.mark.slow
def test_build_help_exits_0_with_the_usage_and_builds_nothing(docker_env):
    result = run_repo_script(docker_env, "build.sh", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ./build.sh [TAG]")
    assert "BAKE_WEIGHTS=1" in result.stdout and "dfdc-detector:latest" in result.stdout
    assert not docker_calls(docker_env, "build") and not docker_calls(docker_env, "info")


def fake_checkout(tmp_path: Path) -> Path:
    """A checkout holding the environment scripts and a host .venv whose interpreter link is dangling, as a
    host .venv seen through run.sh's mount."""
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    for name in ("scripts/ensure_venv.sh", "scripts/pinned_python.sh", "requirements.txt"):
        (checkout / name).write_bytes((REPO_ROOT / name).read_bytes())
    (checkout / ".venv" / "bin").mkdir(parents=True)
    (checkout / ".venv" / "bin" / "python").symlink_to("/home/someone/.pyenv/versions/3.11.9/bin/python3.11")
    return checkout


@pytest.mark.slow
def test_in_the_image_test_and_demo_use_the_image_python_not_a_mounted_venv(tmp_path):
    checkout = fake_checkout(tmp_path)
    image_python = Path(sys.executable).parent  # stands in for the image's /usr/local/bin
    env = {"PATH": f"{image_python}{os.pathsep}/usr/bin:/bin", "HOME": str(tmp_path), "DFDC_IN_IMAGE": "1"}
    result = subprocess.run(["bash", "-c", 'source scripts/ensure_venv.sh && echo "$PYTHON" && command -v python3 '
                             '&& python3 -c "import torch, sys; print(sys.prefix)"'],
                            cwd=checkout, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    python, found, prefix = result.stdout.split()
    assert python == "python3" and Path(found).parent == image_python and prefix == sys.prefix
    assert "Setting up" not in result.stderr
    assert sorted(p.name for p in (checkout / ".venv").rglob("*")) == ["bin", "python"], "the .venv was touched"


def test_train_sh_uses_the_image_python_in_the_image_and_the_venv_on_the_host(tmp_path):
    in_image = subprocess.run(["bash", "train.sh", str(tmp_path), "1"], cwd=REPO_ROOT, capture_output=True, text=True,
                              env={**os.environ, "DRY_RUN": "1", "DFDC_IN_IMAGE": "1"}, timeout=60)
    assert in_image.returncode == 0, in_image.stderr
    assert in_image.stdout.startswith("python3 -u -m torch.distributed.run")
    on_host = subprocess.run(["bash", "train.sh", str(tmp_path), "1"], cwd=REPO_ROOT, capture_output=True, text=True,
                             env={k: v for k, v in {**os.environ, "DRY_RUN": "1"}.items() if k != "DFDC_IN_IMAGE"},
                             timeout=60)
    venv_python = REPO_ROOT / ".venv" / "bin" / "python"
    expected = str(venv_python) if os.access(venv_python, os.X_OK) else "python3"
    assert on_host.stdout.startswith(f"{expected} -u -m torch.distributed.run"), on_host.stdout


@pytest.mark.slow
def test_build_without_docker_or_engine_fails_clearly(docker_env, tmp_path):
    no_docker_bin = tmp_path / "bin_without_docker"
    no_docker_bin.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        for tool in Path(folder).glob("*") if Path(folder).is_dir() else []:
            target = no_docker_bin / tool.name
            if tool.name != "docker" and not target.exists() and os.access(tool, os.X_OK):
                target.symlink_to(tool)
    result = run_repo_script({**docker_env, "PATH": str(no_docker_bin)}, "build.sh")
    assert result.returncode != 0
    assert "docker not found" in result.stderr and "install" in result.stderr.lower()

    result = run_repo_script({**docker_env, "FAKE_DOCKER_ENGINE_DOWN": "1"}, "build.sh")
    assert result.returncode != 0
    assert "engine is not reachable" in result.stderr and "Cannot connect" in result.stderr
    assert not docker_calls(docker_env, "build")


@pytest.mark.slow
def test_run_mounts_data_and_checkout_with_gpu_ipc_user_and_proxies(docker_env, tmp_path):
    data = tmp_path / "dfdc data"
    data.mkdir()
    result = run_repo_script(docker_env, "run.sh", data, "./train.sh", "/dataset", "4")
    assert result.returncode == 0, result.stderr
    [argv] = docker_calls(docker_env, "run")
    image_at = argv.index(DEFAULT_IMAGE)
    options, command = argv[:image_at], argv[image_at + 1:]
    assert command == ["./train.sh", "/dataset", "4"]
    assert option_values(options, "--gpus") == ["all"]
    assert "--ipc=host" in options or option_values(options, "--shm-size")
    volumes = option_values(options, "-v")
    assert f"{data}:/dataset" in volumes
    assert f"{REPO_ROOT}:/workspace" in volumes
    hf_cache = Path(docker_env["HOME"]) / ".cache" / "huggingface"
    assert f"{hf_cache}:/opt/cache/huggingface" in volumes and hf_cache.is_dir(), "model cache kept on the host"
    assert option_values(options, "--user") == [f"{os.getuid()}:{os.getgid()}"]
    passed_env = option_values(options, "-e")
    assert "HOME=/tmp" in passed_env
    assert sorted(e for e in passed_env if "proxy" in e.lower()) == sorted(PROXIES)
    assert not any("=" in e for e in passed_env if "proxy" in e.lower()), "proxy values stay off the command line"
    assert "-t" not in options and "-it" not in options, "no TTY requested when stdin is not a terminal"


@pytest.mark.slow
def test_run_mounts_the_model_cache_named_by_hf_home_or_dfdc_hf_cache(docker_env, tmp_path):
    for env, host_cache in (({"HF_HOME": str(tmp_path / "hf home")}, tmp_path / "hf home"),
                            ({"HF_HOME": str(tmp_path / "hf home"), "DFDC_HF_CACHE": str(tmp_path / "cache")},
                             tmp_path / "cache")):
        result = run_repo_script({**docker_env, **env}, "run.sh", tmp_path)
        assert result.returncode == 0, result.stderr
        volumes = option_values(docker_calls(docker_env, "run")[-1], "-v")
        assert f"{host_cache}:/opt/cache/huggingface" in volumes and host_cache.is_dir(), volumes


@pytest.mark.slow
def test_run_without_gpu_runtime_or_with_baked_weights(docker_env, tmp_path):
    result = run_repo_script({**docker_env, "NO_GPU": "1", "FAKE_DOCKER_BAKED": "1"}, "run.sh", tmp_path)
    assert result.returncode == 0, result.stderr
    argv = docker_calls(docker_env, "run")[-1]
    assert "--gpus" not in argv
    assert argv[-2:] == [DEFAULT_IMAGE, "bash"], "no COMMAND: an interactive shell"
    assert not any(v.endswith(":/opt/cache/huggingface") for v in option_values(argv, "-v")), \
        "the host cache would hide the weights baked into the image"


@pytest.mark.slow
@pytest.mark.parametrize("args", [[], ["/no/such/folder"]])
def test_run_usage_when_data_dir_is_missing(docker_env, args):
    result = run_repo_script(docker_env, "run.sh", *args)
    assert result.returncode == 2
    assert "usage: ./run.sh DATA_DIR" in result.stderr
    assert not docker_calls(docker_env, "run")


@pytest.mark.slow
def test_run_with_engine_down_fails_clearly(docker_env, tmp_path):
    result = run_repo_script({**docker_env, "FAKE_DOCKER_ENGINE_DOWN": "1"}, "run.sh", tmp_path)
    assert result.returncode != 0
    assert "engine is not reachable" in result.stderr and "Cannot connect" in result.stderr
    assert not docker_calls(docker_env, "run")
