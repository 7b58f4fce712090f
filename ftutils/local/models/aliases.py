"""OpenAI's model ids as aliases of local bases: which local base trains and answers for each.

OpenAI's fine-tunable chat models, snapshots and short names (`ftutils.openai_rules`), all map
to the default base; `FTUTILS_MODEL_ALIASES` (Settings.model_aliases) changes single ids, adds
new ones, or, under the key "*", the base of every OpenAI id it does not name. The completion
models (davinci-002, babbage-002) are left out: they take prompt/completion files, which the
local trainer does not read.
"""
from __future__ import annotations

from ftutils import openai_rules
from ftutils.local.models import catalog

OPENAI_MODELS = (*openai_rules.FINE_TUNABLE_CHAT_SNAPSHOTS, *openai_rules.FINE_TUNABLE_SHORT_NAMES)
ENV = "FTUTILS_MODEL_ALIASES"
CREATED = 1721260800  # gpt-4o-mini-2024-07-18's release; a fixed date keeps listings stable


def alias_table(overrides: dict[str, str] | None = None) -> dict[str, str]:
    """OpenAI model id (or an alias of the user's) -> the local base model behind it."""
    overrides = dict(overrides or {})
    default = overrides.pop("*", catalog.default_model())
    return {**{model_id: default for model_id in OPENAI_MODELS}, **overrides}


def local_base(model_id: str, overrides: dict[str, str] | None = None) -> str:
    """The local base model behind `model_id`: its alias target, else the id itself."""
    return alias_table(overrides).get(model_id, model_id)


def check_aliases(overrides: dict[str, str] | None, extra_models: dict[str, str] | None = None) -> None:
    """ValueError naming the first alias whose target is not a base model here."""
    known = [*catalog.BASE_MODELS, *(extra_models or {})]
    for alias, base in alias_table(overrides).items():
        if base not in known:
            raise ValueError(f"{ENV}: {alias!r} maps to {base!r}, which is not a base model here "
                             f"(known: {', '.join(known)})")


def describe_aliases(overrides: dict[str, str] | None = None) -> str:
    """One line for `ftutils serve`: which OpenAI ids train which local base."""
    by_base: dict[str, list[str]] = {}
    for alias, base in alias_table(overrides).items():
        by_base.setdefault(base, []).append(alias)
    return "; ".join(f"{', '.join(aliases)} -> {base}" for base, aliases in by_base.items())
