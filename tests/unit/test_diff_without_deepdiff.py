"""dsrctl.diff compares the flattened maps itself: it must report what deepdiff reported."""

from __future__ import annotations

import random
from typing import Any


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    choices: list[Any] = [
        0,
        1,
        2,
        True,
        False,
        None,
        1.0,
        "1",
        "lo",
        "lo:1",
        "",
        b"x",
        "enabled",
    ]
    if depth < 2:
        kind = rng.randrange(6)
        if kind == 0:
            keys = rng.sample(["label", "deprecated", "nodad", "mode", "sha256"], rng.randrange(4))
            return {key: _random_value(rng, depth + 1) for key in keys}
        if kind == 1:
            return [_random_value(rng, depth + 1) for _ in range(rng.randrange(3))]
        if kind == 2:
            return tuple(_random_value(rng, depth + 1) for _ in range(rng.randrange(3)))
    return rng.choice(choices)


def test_changed_resources_reports_what_deepdiff_reported() -> None:
    from deepdiff import DeepDiff

    from dsrctl.diff import changed_resources

    def with_deepdiff(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
        if before == after:
            return []
        diff = DeepDiff(before, after, view="tree", verbose_level=2, threshold_to_diff_deeper=0)
        return sorted(
            {str(level.path(output_format="list")[0]) for r in diff.values() for level in r}
        )

    rng = random.Random(9)
    for _ in range(3000):
        keys = [f"address:lo:198.18.0.{n}/32" for n in range(6)]
        before = {k: _random_value(rng) for k in rng.sample(keys, rng.randrange(7))}
        after = {k: _random_value(rng) for k in rng.sample(keys, rng.randrange(7))}
        for key in list(after):
            if key in before and rng.random() < 0.5:
                after[key] = before[key]  # many keys equal, as on a real host
        assert changed_resources(before, after) == with_deepdiff(before, after), (before, after)
