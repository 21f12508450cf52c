"""The custom node installer, with local git repositories as the remote and a recording stand-in for pip."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from handlers.image import COMMIT_MARKER, CustomNodePin, NodeInstallError, install_nodes


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


@pytest.fixture
def pack(tmp_path: Path) -> tuple[Path, str, str]:
    """A node pack repository with two commits: the first has requirements.txt, the second changes the node."""
    repo = tmp_path / "remote" / "MyPack"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {'V1': object}\n")
    (repo / "requirements.txt").write_text("tiny-dependency==1.0\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "one")
    first = git(repo, "rev-parse", "HEAD")
    (repo / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {'V2': object}\n")
    git(repo, "commit", "-qam", "two")
    second = git(repo, "rev-parse", "HEAD")
    return repo, first, second


@pytest.fixture
def pip(tmp_path: Path) -> tuple[list[str], Path]:
    """A pip stand-in that records its arguments (and fails when asked to install 'broken')."""
    record = tmp_path / "pip-calls.jsonl"
    script = tmp_path / "fake_pip.py"
    script.write_text(
        "import json, sys\n"
        f"open({str(record)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "sys.exit(1 if 'broken' in sys.argv else 0)\n"
    )
    return [sys.executable, str(script)], record


def calls(record: Path) -> list[list[str]]:
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []


def test_installs_the_locked_commit_and_its_requirements(
    pack: tuple[Path, str, str], pip: tuple[list[str], Path], tmp_path: Path
) -> None:
    repo, first, _ = pack
    node = CustomNodePin(name="MyPack", repo=str(repo), commit=first, requirements=("extra==2.0",))
    dest = tmp_path / "custom_nodes"
    constraint = tmp_path / "c.txt"
    constraint.write_text("torch==2.14.1\n")
    assert install_nodes([node], dest, pip=pip[0], constraint=constraint) == ["MyPack"]
    installed = dest / "MyPack"
    assert "V1" in (installed / "__init__.py").read_text()  # the locked commit, not the branch head
    assert not (installed / ".git").exists()
    assert (installed / COMMIT_MARKER).read_text().strip() == first
    [call] = calls(pip[1])
    assert call == ["install", "-c", str(constraint), "-r", str(installed / "requirements.txt"), "extra==2.0"]


def test_a_second_run_skips_packs_at_their_commit_and_moves_others(
    pack: tuple[Path, str, str], pip: tuple[list[str], Path], tmp_path: Path
) -> None:
    repo, first, second = pack
    dest = tmp_path / "custom_nodes"
    install_nodes([CustomNodePin(name="MyPack", repo=str(repo), commit=first)], dest, pip=pip[0])
    assert install_nodes([CustomNodePin(name="MyPack", repo=str(repo), commit=first)], dest, pip=pip[0]) == []
    assert install_nodes([CustomNodePin(name="MyPack", repo=str(repo), commit=second)], dest, pip=pip[0]) == ["MyPack"]
    assert "V2" in (dest / "MyPack" / "__init__.py").read_text()


def test_a_missing_commit_fails_loudly(
    pack: tuple[Path, str, str], pip: tuple[list[str], Path], tmp_path: Path
) -> None:
    repo, _, _ = pack
    missing = "0123456789abcdef0123456789abcdef01234567"
    with pytest.raises(NodeInstallError, match=f"commit {missing} is not in"):
        install_nodes([CustomNodePin(name="MyPack", repo=str(repo), commit=missing)], tmp_path / "cn", pip=pip[0])
    assert not (tmp_path / "cn" / "MyPack").exists()
    assert calls(pip[1]) == []


def test_an_unreachable_repository_fails_loudly(pip: tuple[list[str], Path], tmp_path: Path) -> None:
    node = CustomNodePin(name="Nope", repo=str(tmp_path / "no-such-repo"), commit="1" * 40)
    with pytest.raises(NodeInstallError, match="cannot fetch"):
        install_nodes([node], tmp_path / "cn", pip=pip[0])


def test_failed_requirements_leave_no_commit_marker(
    pack: tuple[Path, str, str], pip: tuple[list[str], Path], tmp_path: Path
) -> None:
    repo, first, _ = pack
    node = CustomNodePin(name="MyPack", repo=str(repo), commit=first, requirements=("broken",))
    with pytest.raises(NodeInstallError, match="requirements failed"):
        install_nodes([node], tmp_path / "cn", pip=pip[0])
    assert not (tmp_path / "cn" / "MyPack" / COMMIT_MARKER).exists()  # the next run tries again


def test_submodules_come_along_at_the_packs_pinned_commit(
    pack: tuple[Path, str, str], pip: tuple[list[str], Path], tmp_path: Path
) -> None:
    vendored, first, _ = pack
    outer = tmp_path / "remote" / "Outer"
    outer.mkdir(parents=True)
    git(outer, "init", "-q", "-b", "main")
    (outer / "__init__.py").write_text("")
    git(outer, "add", ".")
    git(outer, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(vendored), "vendor/MyPack")
    git(outer / "vendor" / "MyPack", "checkout", "-q", first)
    git(outer, "add", ".")
    git(outer, "commit", "-qm", "with a submodule at the first commit")
    commit = git(outer, "rev-parse", "HEAD")
    install_nodes([CustomNodePin(name="Outer", repo=str(outer), commit=commit)], tmp_path / "cn", pip=pip[0])
    installed = tmp_path / "cn" / "Outer"
    assert "V1" in (installed / "vendor" / "MyPack" / "__init__.py").read_text()
    assert not list(installed.rglob(".git"))
