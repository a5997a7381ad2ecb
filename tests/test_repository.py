"""A fresh clone on another machine must work: nothing tracked points into this machine or holds its state."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MACHINE_STATE = {".venv", "venv", "__pycache__", ".pytest_cache", "finetuner-output", "node_modules"}


def tracked() -> list[str]:
    return subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split(
        "\0"
    )[:-1]


def test_no_tracked_link_points_outside_the_repository():
    outside = []
    for name in tracked():
        path = ROOT / name
        if path.is_symlink():
            target = (path.parent / path.readlink()).resolve()
            if not target.is_relative_to(ROOT):
                outside.append(f"{name} -> {path.readlink()}")
    assert not outside, f"tracked links into this machine (git rm --cached them): {outside}"


def test_no_environment_cache_or_output_is_tracked():
    found = [name for name in tracked() if MACHINE_STATE & set(Path(name).parts)]
    assert not found, f"machine state is tracked (git rm --cached it and ignore it): {found[:5]}"


def test_ci_runs_the_readme_commands_as_written():
    """.ci/run reads the README's first bash block instead of restating it; that block has the two commands."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_commands", ROOT / ".ci" / "readme_commands.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    commands = module.first_bash_block((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(commands) == 2
    assert commands[0].startswith("python3 -m venv .venv") and commands[0].endswith("finetuner fit")
    assert commands[1].endswith("-m pytest")
    assert "readme_commands.py README.md" in (ROOT / ".ci" / "run").read_text()
