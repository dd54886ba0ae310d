"""Dependency pins stay in one place: every direct pin in setup.cfg equals the lock in constraints.txt."""

from __future__ import annotations

import configparser
import re

from testkit import ROOT


def pins(lines):
    found = {}
    for line in lines:
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;#]+)", line)  # ray[data]==2.60.0
        if match:
            found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found


def test_setup_cfg_pins_match_the_lock():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    direct = pins(config["options"]["install_requires"].splitlines())
    for extra in config["options.extras_require"].values():  # test, batch, data: every extra's pins too
        direct |= pins(extra.splitlines())
    lock = pins((ROOT / "constraints.txt").read_text().splitlines())
    assert direct, "setup.cfg pins nothing"
    mismatched = {name: (version, lock.get(name)) for name, version in direct.items() if lock.get(name) != version}
    assert not mismatched, f"setup.cfg vs constraints.txt: {mismatched}"
    assert direct["torch"] == direct["torchaudio"], "torch and torchaudio must be a matching pair"
    assert "ray" in direct, "the batch extra's pin was not read"


def test_setup_env_installs_the_extras_the_tests_need():
    """README command 2 (scripts/test.sh -> setup_env.sh) installs every extra the tests use: test, batch (Ray:
    the tests of `sensevoice batch` run, not skip, on a fresh machine) and data (the open-vocabulary text sources)."""
    script = (ROOT / "scripts" / "setup_env.sh").read_text()
    assert '-c constraints.txt -e ".[test,batch,data]"' in script


def test_no_requirements_txt_at_the_top_level():
    # FunASR pip-installs a model directory's requirements.txt when trust_remote_code=True.
    assert not (ROOT / "requirements.txt").exists()


def test_installed_versions_are_the_pinned_ones():
    from importlib.metadata import version

    lock = pins((ROOT / "constraints.txt").read_text().splitlines())
    for name in ("torch", "torchaudio", "funasr", "modelscope", "numpy", "ray"):
        assert version(name).split("+")[0] == lock[name], name
    import torchaudio  # the pinned pair imports together

    assert torchaudio.__version__.split("+")[0] == lock["torchaudio"]
