"""Search profiles, levels and the choice of seed: each stated once, for the CLI, the Python API,
the pytest plugin and the report."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["LEVELS", "PROFILES", "Profile", "choose_seed", "get_profile", "validate_level"]

#: The accuracy levels: ``stable`` budgets any max-shifted algorithm meets; ``accurate`` adds the
#: condition-scaled claims met by log1p-refined algorithms.
LEVELS = ("stable", "accurate")


@dataclass(frozen=True)
class Profile:
    """How hard to search. ``ci`` is deterministic (fixed seed, no example database)."""

    name: str
    max_examples: int
    max_size: int
    dense_size: int
    database: bool = True
    fixed_seed: bool = False
    description: str = ""
    vocab_size: int = 0  # language-model-sized rows for the reference claims (0: none)


PROFILES: dict[str, Profile] = {
    "quick": Profile("quick", 25, 16, 4, description="a smoke test: seconds"),
    "default": Profile("default", 60, 48, 6, description="the everyday run"),
    "ci": Profile("ci", 60, 48, 6, database=False, fixed_seed=True,
                  description="deterministic: fixed seed, no example database"),
    "thorough": Profile("thorough", 400, 512, 16, vocab_size=262144,
                        description="long rows, vocabulary-sized rows (32k to 256k logits) and "
                                    "many examples"),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"profile={name!r}: use one of {', '.join(PROFILES)}")
    return PROFILES[name]


def validate_level(level: str) -> str:
    if level not in LEVELS:
        raise ValueError(f"level={level!r}: use 'stable' or 'accurate'")
    return level


def choose_seed(profile: Profile, seed: int | None) -> int:
    """The given seed, 0 for a deterministic profile, else a fresh random one."""
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed={seed!r}: use a non-negative integer")
        return seed
    return 0 if profile.fixed_seed else random.SystemRandom().randrange(2**31)
