"""Every model id the local backend knows, and what answers for it.

`Registry.resolve(model_id)` turns any id the API accepts (a base, an OpenAI alias, a
fine-tuned model, a checkpoint) into (local base model id, adapter folder or None), or raises
`ModelNotFound`; chat completions, `/v1/models` and `ftutils export` all ask it, so listing,
serving and exporting can never disagree. Fine-tuned models and checkpoints are rows of the
store: the registry reads them through the `FineTunes` it is given (`ftutils.local.store`).
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Protocol

from ftutils import openai_rules
from ftutils.local.models import aliases, catalog


class ModelNotFound(LookupError):
    """No model of that id here (the API answers OpenAI's 404 model_not_found)."""

    def __init__(self, model_id: str):
        super().__init__(f"The model `{model_id}` does not exist or you do not have access to it.")
        self.model_id = model_id


class ModelInfo(NamedTuple):
    """A model as `/v1/models` lists it: its id, `created` (Unix time: a base's fixed release
    date, when a fine-tune or checkpoint was made), `owned_by` (a base's maker, "alias of
    <base>", or the org), for bases and their aliases `context_length` (most tokens a prompt
    and its completion may hold) and, for an alias that is an OpenAI id, the `shutdown_date`
    OpenAI gives it (YYYY-MM-DD, from `openai_rules`; None for everything of the server's own,
    whose models never shut down)."""

    id: str
    created: int
    owned_by: str
    context_length: int | None = None
    shutdown_date: str | None = None


class FineTunes(Protocol):
    """The fine-tuned models and checkpoints a registry can serve."""

    def adapter(self, model_id: str) -> tuple[str, Path] | None:
        """(the base it was trained on, its adapter folder), or None if there is no such model."""

    def listed(self) -> list[tuple[str, int, str]]:
        """(id, created, owned_by) of each, fine-tuned models first, then checkpoints."""


class Registry:
    """The base models (built-in and `extra_models`: id -> Hugging Face folder), the OpenAI
    ids aliased to them (`aliases`: Settings.model_aliases), and the fine-tunes of `fine_tunes`."""

    def __init__(self, extra_models: dict[str, str] | None = None, model_aliases: dict[str, str] | None = None,
                 fine_tunes: FineTunes | None = None):
        self.extra_models, self.model_aliases, self.fine_tunes = extra_models or {}, model_aliases or {}, fine_tunes

    def bases(self) -> list[ModelInfo]:
        """The built-in base models, then each extra one."""
        rows = [*catalog.local_models(), *(catalog.folder_model(i, f) for i, f in self.extra_models.items())]
        return [ModelInfo(m.id, m.created, m.owned_by, m.context_length) for m in rows]

    def fine_tunable(self) -> list[ModelInfo]:
        """The bases, then the OpenAI ids of the alias table, owned by "alias of <base>" so a
        listing says what answers, each with OpenAI's shutdown date for it: the alias goes on
        training here after that day, but a client sees what the id means on OpenAI."""
        infos = self.bases()
        by_id = {info.id: info for info in infos}
        for alias, base in aliases.alias_table(self.model_aliases).items():
            if base in by_id and alias not in by_id:
                date = openai_rules.shutdown_date(alias)
                infos.append(ModelInfo(alias, aliases.CREATED, f"alias of {base}", by_id[base].context_length,
                                       date.isoformat() if date else None))
        return infos

    def listed(self) -> list[ModelInfo]:
        """Every model there is: what can be fine-tuned, then the fine-tunes and checkpoints."""
        tuned = self.fine_tunes.listed() if self.fine_tunes is not None else []
        return self.fine_tunable() + [ModelInfo(*row) for row in tuned]

    def base(self, model_id: str) -> str:
        """The local base behind a base or alias id (an unknown id is returned as it is)."""
        return aliases.local_base(model_id, self.model_aliases)

    def is_base(self, model_id: str) -> bool:
        return catalog.base_model(model_id, self.extra_models) is not None

    def can_fine_tune(self, model_id: str) -> bool:
        """A base model, or an alias of one."""
        return self.is_base(self.base(model_id))

    def context_length(self, base: str) -> int | None:
        entry = catalog.base_model(base, self.extra_models)
        return entry.context_length if entry else None

    def resolve(self, model_id: str) -> tuple[str, Path | None]:
        """(local base model id, adapter folder or None) for a base, alias, fine-tuned or
        checkpoint model id; ModelNotFound for anything else."""
        if any(m.id == model_id for m in self.fine_tunable()):
            return self.base(model_id), None
        if openai_rules.is_fine_tuned(model_id) and self.fine_tunes is not None:
            found = self.fine_tunes.adapter(model_id)
            if found is not None:
                return self.base(found[0]), found[1]
        raise ModelNotFound(model_id)
