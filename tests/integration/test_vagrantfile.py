"""The Vagrantfile is valid (checked offline: no box can be downloaded here)."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def validate(folder: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, VAGRANT_HOME=str(tmp_path / "vagrant.d"), VAGRANT_CHECKPOINT_DISABLE="1")
    return subprocess.run(["vagrant", "validate"], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def vagrant():
    if shutil.which("vagrant") is None:
        pytest.skip("needs vagrant (scripts/setup test installs it as root)")


def test_vagrantfile_validates(vagrant, tmp_path):
    folder = tmp_path / "vm"
    folder.mkdir()
    shutil.copy(REPO / "Vagrantfile", folder)
    p = validate(folder, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr


def test_a_broken_vagrantfile_is_caught(vagrant, tmp_path):
    folder = tmp_path / "vm"
    folder.mkdir()
    (folder / "Vagrantfile").write_text((REPO / "Vagrantfile").read_text()
                                        .replace("config.vm.box =", "config.vm.boxx ="))
    assert validate(folder, tmp_path).returncode != 0


def test_vm_is_provisioned_by_the_test_command_setup():
    text = (REPO / "Vagrantfile").read_text()
    assert re.search(r'inline: "cd /vagrant && ./scripts/setup test"', text)
    assert re.search(r'inline: "cd /vagrant && ./scripts/test"', text)
    assert 'config.vm.box = "debian/bookworm64"' in text
