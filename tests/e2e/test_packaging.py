"""`pip install .` (not editable) gives a package that runs on its own: console scripts with
--help, the page and the server configuration carried as package data, a whole stack run
from the installed copy with nothing of the repository on its path."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.processes import ROOT, NatsServer, Process, base_url, nats_env

NOT_SOURCE = (".git", "build", "*.egg-info", ".venv", "node_modules", "__pycache__", ".*_cache")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package built and installed (no dependencies: they are this venv's) into a folder."""
    target = tmp_path_factory.mktemp("site")
    # Built from a copy: setuptools writes build/ and *.egg-info beside the source it builds.
    source = tmp_path_factory.mktemp("source") / "src"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--disable-pip-version-check", "--target", str(target), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return target


def test_the_console_scripts_answer_help(installed: Path, tmp_path: Path) -> None:
    env = {**nats_env("nats://127.0.0.1:1"), "PYTHONPATH": str(installed)}
    for script in ("notify-api", "notify-reactor"):
        done = subprocess.run(
            [str(installed / "bin" / script), "--help"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"usage: {script} ")


def test_the_installed_copy_carries_the_page_and_the_server_config(installed: Path) -> None:
    assert (installed / "api" / "web" / "index.html").is_file()
    assert (installed / "api" / "web" / "app.js").is_file()
    assert (installed / "contracts" / "nats.conf").read_text().startswith("# NATS server")
    assert (installed / "domains" / "videos" / "web" / "page.js").is_file()


async def test_a_stack_runs_from_the_installed_package(
    installed: Path, nats_server: NatsServer, tmp_path: Path
) -> None:
    env = {**nats_env(nats_server.url), "PYTHONPATH": str(installed), "API_PORT": "0"}
    where = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "import api.settings as s; print(s.WEB_DIR)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert where.stdout.strip().startswith(str(installed))  # not the repository's copy
    reactor = Process(
        "reactor", [str(installed / "bin" / "notify-reactor")], env=env, ready=r"reactor ready"
    ).start()
    api = Process(
        "api",
        [str(installed / "bin" / "notify-api")],
        env=env,
        ready=r"Uvicorn running on (http://[\d.]+:\d+)",
    ).start()
    try:
        async with httpx.AsyncClient(base_url=base_url(api)) as client:
            page = await client.get("/")
            assert page.status_code == 200
            assert '<script type="module" src="/static/app.js">' in page.text
            created = await client.post(
                "/api/locations",
                json={"name": f"Installed {tmp_path.name[-8:]}", "category": "Town"},
                headers={"Prefer": "wait=10"},
            )
            assert created.status_code == 201, created.text
    finally:
        api.stop()
        reactor.stop()
