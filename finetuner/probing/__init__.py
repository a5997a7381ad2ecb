"""Auto-tailor: find the best layer, head and training settings for your data in about one forward pass.

`probe` runs the frozen backbone once with hooks on several candidate layers, caches each layer's pooled features,
trains a few heads on them (together, in one loop: `train_heads`, `train_together`) and returns a `Leaderboard`;
`sweep` tunes one head's training settings with Optuna on the cached features.

Example:
    >>> board = finetuner.probe("efficientnet_lite0", "fashion-mnist")  # doctest: +SKIP
    >>> print(board)  # doctest: +SKIP
    >>> result = finetuner.sweep("efficientnet_lite0", "fashion-mnist", layer=board.best.layer_name)  # doctest: +SKIP
    >>> finetuner.fit("efficientnet_lite0", "fashion-mnist", **result.fit_options())  # doctest: +SKIP
"""

from finetuner.probing.layers import Candidate, layer_candidates
from finetuner.probing.leaderboard import Leaderboard, LeaderboardRow, plot_leaderboard
from finetuner.probing.probe import DEFAULT_HEADS, probe
from finetuner.probing.recipe import HeadSpec, Recipe, train_head, train_heads, train_together
from finetuner.probing.sweep import DEFAULT_SPACE, SweepResult, SweepTrial, sweep

__all__ = [
    "DEFAULT_HEADS",
    "DEFAULT_SPACE",
    "Candidate",
    "HeadSpec",
    "Leaderboard",
    "LeaderboardRow",
    "Recipe",
    "SweepResult",
    "SweepTrial",
    "layer_candidates",
    "plot_leaderboard",
    "probe",
    "sweep",
    "train_head",
    "train_heads",
    "train_together",
]
