"""The architecture as import-linter contracts (pyproject.toml), checked
here so that CI runs them; and the package list that the wheel is built from."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import ROOT

LINT = Path(sys.executable).with_name("lint-imports")


def lint(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--no-cache", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_import_contracts_hold():
    r = lint()
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert r.stdout.count(" KEPT") == len(contracts) >= 6


def test_a_broken_contract_is_reported(tmp_path):
    # The check must be able to fail: the CLI does import click.
    cfg = tmp_path / "contracts.toml"
    cfg.write_text('[tool.importlinter]\nroot_packages = ["kdebug"]\ninclude_external_packages = true\n\n'
                   '[[tool.importlinter.contracts]]\nname = "false on purpose"\ntype = "forbidden"\n'
                   'source_modules = ["kdebug.cli"]\nforbidden_modules = ["click"]\n')
    r = lint("--config", str(cfg))
    assert r.returncode != 0 and "false on purpose BROKEN" in r.stdout, r.stdout[-2000:]


def test_every_package_directory_is_in_the_wheel_list():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_of = {"kdebug": "kdebug", **{folder: name for name, folder in setuptools["package-dir"].items()}}
    found = set()
    for folder, package in package_of.items():
        for d in [ROOT / folder, *(ROOT / folder).rglob("*")]:
            if d.is_dir() and "__pycache__" not in d.parts and any(f.is_file() for f in d.iterdir()):
                found.add(".".join([package, *d.relative_to(ROOT / folder).parts]))
    listed = set(setuptools["packages"])
    assert found == listed, (sorted(found - listed), sorted(listed - found))
