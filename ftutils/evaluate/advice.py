"""The shape of the advice `ftutils.evaluate.policy` gives: ranked recommendations, each with
its number, that number's interval and the next-run parameters it implies, and the kept model.
`Advice.next_run` is the union of the changes, so what 05 runs is exactly what was advised."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Recommendation:
    kind: str
    """One of RANK: keep | use | data | epochs | learning_rate | prompt."""
    message: str
    number: float | None = None
    """The number the recommendation rests on."""
    interval: list | None = None
    """That number's 95% interval."""
    basis: str = ""
    """What the number is, in a few words."""
    change: dict = field(default_factory=dict)
    """Parameters of the next run this implies (the notebooks' own names); {} for none."""
    evidence: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Advice:
    recommendations: list
    kept: dict | None = None
    """{"name", "model", "step", "epoch"}: the model the advice is about."""

    @property
    def next_run(self) -> dict:
        """{"params", "why"}: the union of the recommendations' changes, with their reasons."""
        params, why = {}, []
        for rec in self.recommendations:
            if rec.change:
                params.update(rec.change)
                why.append(f"{', '.join(f'{k}={v!r}' for k, v in rec.change.items())}: {rec.basis}")
        return {"params": params, "why": why}

    def to_dict(self) -> dict:
        return {"recommendations": [r.to_dict() for r in self.recommendations], "kept": self.kept,
                "next_run": self.next_run}

    def lines(self) -> list[str]:
        out = []
        for i, rec in enumerate(self.recommendations, 1):
            out.append(f"{i}. [{rec.kind}] {rec.message}")
        proposal = self.next_run
        out.append("")
        out.append(f"next run: {proposal['params'] or 'no change'}")
        if len(proposal["params"]) > 1:
            out.append("  (more than one change: comparing the next run with this one judges them together)")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_pretty_(self, p, cycle):
        p.text(str(self))
