"""The built wheel works outside the checkout: a fresh virtual environment, another working folder, the
package's own prompts and weights, ``atelier ingest`` and ``atelier search`` answering with real products.

The environment gets Atelier only from the wheel (``--no-deps``); its third-party dependencies come from the
project's environment through a ``.pth`` line, so the check takes seconds instead of a second full install.
The checkout is nowhere on its ``sys.path``: a missing ``prompts/`` file or weight would fail here.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HM = Path(os.environ.get("ATELIER_DATASETS", REPO.parent / "shared" / "datasets")) / "hm"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(REPO)], check=True, capture_output=True, cwd=out)
    (path,) = out.glob("atelier-*.whl")
    return path


def test_wheel_holds_one_namespace_with_prompts_and_weights(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"atelier"}
    for required in ("atelier/prompts/taxonomy.yaml", "atelier/prompts/intents.yaml", "atelier/prompts/replies.yaml",
                     "atelier/tools/encoders/weights/compact.pt", "atelier/tools/probes/probes.npz",
                     "atelier/ui/static/widget.js", "atelier/assistant/py.typed"):
        assert required in names, required
    assert not any(n.startswith("atelier/tests") or "/training/" in n and n.endswith(".pt") for n in names)


def test_installed_wheel_ingests_and_searches_from_another_folder(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    purelib = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; "
                                   "print(sysconfig.get_paths()['purelib'])"], check=True, capture_output=True,
                                  text=True).stdout.strip())
    (purelib / "_project_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATELIER_") and k != "PYTHONPATH"}
    env.update(ATELIER_HOME=str(work / "home"), ATELIER_CACHE=str(REPO / ".atelier" / "cache"))
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import atelier.tools.settings as s; "
                            "print(s.PROMPTS_DIR)"], check=True, capture_output=True, text=True, cwd=work, env=env)
    assert str(REPO) not in where.stdout and "site-packages" in where.stdout

    atelier = str(venv / "bin" / "atelier")
    subprocess.run([atelier, "ingest", str(HM), "--format", "hm", "--limit", "60", "--no-predict"], check=True,
                   capture_output=True, cwd=work, env=env, timeout=600)
    found = subprocess.run([atelier, "search", "black socks", "-k", "5", "--json"], check=True, capture_output=True,
                           text=True, cwd=work, env=env, timeout=300)
    results = json.loads(found.stdout)["results"]
    assert results and all(r["id"].isdigit() and len(r["id"]) == 10 for r in results)
    assert results[0]["category"] == "socks" and results[0]["colour"] == "black"
