"""The package version, in the bottom layer so any module may record it (``finetuner.__version__`` re-exports it)."""

__version__ = "0.1.0"
