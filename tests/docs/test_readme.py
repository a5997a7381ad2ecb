"""Every code block of README.md runs, in order, as written: Python blocks in one namespace (as a reader pastes
them into one session), bash blocks in a shell whose PATH and ``.venv`` are this environment's. They run in a
temporary folder that holds what the README tells a reader to make first: ``data/`` from the shipped Fashion-MNIST
subset (a few images a class, so each block takes seconds). A block that cannot run here says why in the README
itself (``<!-- skip: next "reason" -->``)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sybil import Sybil
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser

README = Path(__file__).resolve().parents[2] / "README.md"


def run_bash(example) -> None:
    """Run a bash block with ``set -e``: every line must succeed."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", example.parsed],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode:
        raise AssertionError(f"README.md line {example.line}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")


DOCUMENT = Sybil([SkipParser(), PythonCodeBlockParser(), CodeBlockParser("bash", run_bash)]).parse(README)
EXAMPLES = list(DOCUMENT)


@pytest.fixture(scope="module")
def reader_folder(tmp_path_factory):
    """A reader's working folder: ``data/`` as the README says to make it, and ``.venv`` standing for this
    environment (the README's commands call ``.venv/bin/...``)."""
    from finetuner.data import export_fashion_mnist

    folder = tmp_path_factory.mktemp("reader")
    previous = Path.cwd()
    os.chdir(folder)
    (folder / ".venv").symlink_to(Path(sys.executable).parents[1], target_is_directory=True)
    for split, per_class in (("train", 20), ("test", 5)):
        export_fashion_mnist(folder / "data" / split, split, per_class=per_class)
    yield folder
    os.chdir(previous)


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"line{e.line}" for e in EXAMPLES])
def test_readme_block(example, reader_folder):
    example.evaluate()
