"""``python -m finetuner``: the `finetuner` command."""

from finetuner.cli import main

main()
