"""download_dfdc.sh against a stand-in `kaggle` client placed first on PATH.

The script runs on the host (it needs unzip and the Kaggle client, which the Docker image does not have); in
the image it refuses with directions. The stand-in answers `kaggle competitions download COMPETITION -f FILE
-p DIR` the way the real client does: it writes DIR/FILE, or prints Kaggle's refusal and exits 1. It logs every
call so the tests can tell whether a rerun touched the network.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import stand_in_on_path

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "download_dfdc.sh"
RULES_URL = "https://www.kaggle.com/competitions/deepfake-detection-challenge/rules"

FAKE_KAGGLE = f"""#!{sys.executable}
import json, os, re, sys, zipfile
args = sys.argv[1:]
with open(os.environ["FAKE_KAGGLE_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
mode = os.environ.get("FAKE_KAGGLE_MODE", "ok")
if mode == "forbidden":
    print("403 - Forbidden - You must accept this competition's rules before you'll be able to download files.")
    sys.exit(1)
if mode == "not_found":
    print("404 - Not Found")
    sys.exit(1)
file_name = args[args.index("-f") + 1]
out_dir = args[args.index("-p") + 1]
part = int(re.search(r"(\\d+)\\.zip$", file_name).group(1))
folder = "" if mode == "flat" else f"dfdc_train_part_{{part}}/"
with zipfile.ZipFile(os.path.join(out_dir, file_name), "w") as archive:
    archive.writestr(folder + "aaaaaaaaaa.mp4", b"not really a video")
    if mode != "no_metadata":
        archive.writestr(folder + "metadata.json", json.dumps({{"aaaaaaaaaa.mp4": {{"label": "REAL"}}}}))
print(f"Downloading {{file_name}} to {{out_dir}}")
"""


@pytest.fixture
def kaggle_env(tmp_path) -> dict:
    """A host's environment with the stand-in kaggle first on PATH, a fake token, and a HOME without kaggle.json."""
    if shutil.which("unzip") is None:
        pytest.skip("download_dfdc.sh runs on the host, with unzip; this machine (e.g. the Docker image) has none")
    path = stand_in_on_path(tmp_path, "kaggle", FAKE_KAGGLE)
    home = tmp_path / "home"
    home.mkdir()
    host = {k: v for k, v in os.environ.items() if k != "DFDC_IN_IMAGE"}
    return {**host, "PATH": path, "HOME": str(home),
            "KAGGLE_USERNAME": "someone", "KAGGLE_KEY": "not-a-real-key",
            "FAKE_KAGGLE_LOG": str(tmp_path / "kaggle_calls.jsonl"), "DFDC_MIN_FREE_GB": "0"}


def download(env: dict, *args, **extra_env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], env={**env, **extra_env}, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)


def kaggle_calls(env: dict) -> list[list[str]]:
    log = Path(env["FAKE_KAGGLE_LOG"])
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_parts_are_downloaded_unpacked_and_zips_removed(kaggle_env, tmp_path):
    root = tmp_path / "dfdc"
    result = download(kaggle_env, root, "0-1", "3")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in root.iterdir()) == ["dfdc_train_part_0", "dfdc_train_part_1", "dfdc_train_part_3"]
    for part in (0, 1, 3):
        part_dir = root / f"dfdc_train_part_{part}"
        assert json.loads((part_dir / "metadata.json").read_text()) == {"aaaaaaaaaa.mp4": {"label": "REAL"}}
        assert (part_dir / "aaaaaaaaaa.mp4").is_file()
    assert not list(root.rglob("*.zip"))
    calls = kaggle_calls(kaggle_env)
    assert [call[call.index("-f") + 1] for call in calls] == [
        "dfdc_train_part_00.zip", "dfdc_train_part_01.zip", "dfdc_train_part_03.zip"]
    for call in calls:
        assert call[:3] == ["competitions", "download", "deepfake-detection-challenge"]
        assert Path(call[call.index("-p") + 1]).parent == root
    assert "3 unpacked" in result.stderr


def test_rerun_skips_unpacked_parts_without_calling_kaggle(kaggle_env, tmp_path):
    root = tmp_path / "dfdc"
    assert download(kaggle_env, root, "0,2").returncode == 0
    calls_before = kaggle_calls(kaggle_env)
    rerun = download(kaggle_env, root, "0", "2")
    assert rerun.returncode == 0, rerun.stderr
    assert kaggle_calls(kaggle_env) == calls_before
    assert "2 already there" in rerun.stderr
    without_client = download({**kaggle_env, "PATH": os.environ["PATH"]}, root, "0")
    assert without_client.returncode == 0, "nothing to download: the client is not needed"


def test_zip_without_top_folder_is_unpacked_into_the_part_folder(kaggle_env, tmp_path):
    root = tmp_path / "dfdc"
    result = download(kaggle_env, root, "7", FAKE_KAGGLE_MODE="flat")
    assert result.returncode == 0, result.stderr
    assert (root / "dfdc_train_part_7" / "metadata.json").is_file()
    assert (root / "dfdc_train_part_7" / "aaaaaaaaaa.mp4").is_file()


def test_keep_zip_keeps_the_download(kaggle_env, tmp_path):
    root = tmp_path / "dfdc"
    assert download(kaggle_env, root, "5", "--keep-zip").returncode == 0
    assert (root / ".dfdc_downloads" / "dfdc_train_part_05.zip").is_file()
    assert (root / "dfdc_train_part_5" / "metadata.json").is_file()


def test_refused_download_asks_to_accept_the_rules(kaggle_env, tmp_path):
    root = tmp_path / "dfdc"
    result = download(kaggle_env, root, "0-2", FAKE_KAGGLE_MODE="forbidden")
    assert result.returncode != 0
    assert RULES_URL in result.stderr
    assert len(kaggle_calls(kaggle_env)) == 1, "a refusal concerns every part: stop at the first"
    assert not list(root.glob("dfdc_train_part_*"))


def test_file_unknown_to_the_api_points_to_the_browser_download(kaggle_env, tmp_path):
    result = download(kaggle_env, tmp_path / "dfdc", "4", FAKE_KAGGLE_MODE="not_found")
    assert result.returncode != 0
    assert "--zips-dir" in result.stderr and "dfdc_train_part_04.zip" in result.stderr


def test_zip_without_metadata_fails_naming_the_part(kaggle_env, tmp_path):
    root = tmp_path / "dfdc"
    result = download(kaggle_env, root, "6", FAKE_KAGGLE_MODE="no_metadata")
    assert result.returncode != 0
    assert re.search(r"dfdc_train_part_6 has no metadata\.json", result.stderr), result.stderr
    assert not (root / "dfdc_train_part_6").exists(), "an incomplete part must not look finished"
    downloaded = root / ".dfdc_downloads" / "dfdc_train_part_06.zip"
    assert downloaded.is_file(), "a 10 GB download is kept for inspection"
    downloaded.unlink()
    retry = download(kaggle_env, root, "6")
    assert retry.returncode == 0, retry.stderr
    assert (root / "dfdc_train_part_6" / "metadata.json").is_file()


def test_zips_from_a_browser_download_folder(kaggle_env, tmp_path):
    zips = tmp_path / "browser_downloads"
    zips.mkdir()
    for name, folder in (("dfdc_train_part_00.zip", "dfdc_train_part_0/"), ("dfdc_train_part_1.zip", "")):
        with zipfile.ZipFile(zips / name, "w") as archive:
            archive.writestr(folder + "metadata.json", "{}")
    root = tmp_path / "dfdc"
    result = download(kaggle_env, root, "0-1", "--keep-zip", "--zips-dir", zips)
    assert result.returncode == 0, result.stderr
    assert (root / "dfdc_train_part_0" / "metadata.json").is_file()
    assert (root / "dfdc_train_part_1" / "metadata.json").is_file()
    assert kaggle_calls(kaggle_env) == []
    assert len(list(zips.iterdir())) == 2
    missing = download(kaggle_env, root, "2", "--zips-dir", zips)
    assert missing.returncode != 0 and "part 2: FAILED: no zip" in missing.stderr


def test_missing_client_and_missing_token_say_how_to_set_up(kaggle_env, tmp_path):
    no_token = {k: v for k, v in kaggle_env.items() if k not in ("KAGGLE_USERNAME", "KAGGLE_KEY")}
    result = download(no_token, tmp_path / "dfdc", "0")
    assert result.returncode != 0 and "kaggle.json" in result.stderr
    assert kaggle_calls(kaggle_env) == []

    no_client = {**kaggle_env, "PATH": str(Path(sys.executable).parent) + os.pathsep + "/usr/bin:/bin"}
    if subprocess.run(["bash", "-c", "command -v kaggle"], env=no_client, capture_output=True).returncode == 0:
        pytest.skip("a real kaggle client is installed system-wide")
    result = download(no_client, tmp_path / "dfdc", "0")
    assert result.returncode != 0 and "pip install kaggle" in result.stderr


def test_bad_arguments_and_low_disk_space(kaggle_env, tmp_path):
    for args in ([], [tmp_path, "0-50"], [tmp_path, "x"], [tmp_path, "3-1"], [tmp_path, "--what"]):
        result = download(kaggle_env, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert "usage:" in result.stderr
    result = download(kaggle_env, tmp_path / "dfdc", "0", DFDC_MIN_FREE_GB="100000000")
    assert result.returncode != 0 and "Not enough free space" in result.stderr
    assert kaggle_calls(kaggle_env) == []


def test_in_the_image_it_refuses_and_says_to_download_on_the_host(tmp_path):
    result = download({**os.environ, "DFDC_IN_IMAGE": "1"}, tmp_path / "dfdc", "0")
    assert result.returncode == 1
    assert "runs on the host, not in the Docker image" in result.stderr
    assert "./download_dfdc.sh DATA_ROOT" in result.stderr and "./run.sh DATA_ROOT" in result.stderr
    assert not (tmp_path / "dfdc").exists()
    help_text = download({**os.environ, "DFDC_IN_IMAGE": "1"}, "--help")
    assert help_text.returncode == 0 and "usage: ./download_dfdc.sh" in help_text.stdout
