"""What the validator (and the advice and hygiene checks) hand back: findings, and a report
that shows them as a table in a notebook and as text in a terminal."""
from __future__ import annotations

import html
from collections import Counter
from dataclasses import asdict, dataclass, field

SEVERITIES = ("error", "warning")


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    """Stable snake_case identifier, e.g. `unknown_role`; tests and the server key on it."""
    severity: str
    """"error" (OpenAI would reject the file, or training would be wrong) or "warning"."""
    line: int | None
    """1-based line in the file (position in the list for in-memory examples); None for the whole file."""
    field: str
    """Path inside the line, e.g. `messages[2].content`; "" for the whole line or file."""
    message: str
    """Plain-language explanation."""
    fix: str | None = None
    """What to do about it, when there is a clear answer."""

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")

    def describe(self, source: str | None = None) -> str:
        """One line: `<source>: line N, field F: message` (the form the server puts in job errors)."""
        where = ", ".join(p for p in (f"line {self.line}" if self.line else "",
                                      f"field {self.field}" if self.field else "") if p)
        head = ": ".join(p for p in (source, where) if p)
        return f"{head}: {self.message}" if head else self.message

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ValidationReport:
    findings: list[Finding] = field(default_factory=list)
    """Findings in file order; at most MAX_PER_CODE per code are kept (see `counts` for totals)."""
    n_examples: int = 0
    """Lines (or list items) that decoded to a JSON object."""
    format: str = "unknown"
    """"chat", "preference", "reinforcement", "mixed" or "unknown"."""
    source: str | None = None
    """The file validated, if any."""
    model: str | None = None
    counts: Counter = field(default_factory=Counter)
    """Occurrences per code, including findings not kept."""
    tokens: dict = field(default_factory=dict)
    """total, max, mean, trained (weighted assistant tokens), billed_per_epoch (capped at the limit),
    n_over_limit, limit, encoding."""

    MAX_PER_CODE = 50  # a 100k-line file with one systematic problem should not hold 100k findings

    def add(self, finding: Finding) -> None:
        self.counts[finding.code] += 1
        if self.counts[finding.code] <= self.MAX_PER_CODE:
            self.findings.append(finding)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when nothing would make OpenAI reject the file (warnings allowed)."""
        return not self.errors

    @property
    def n_errors(self) -> int:
        return sum(n for code, n in self.counts.items() if self._severity(code) == "error")

    @property
    def n_warnings(self) -> int:
        return sum(n for code, n in self.counts.items() if self._severity(code) == "warning")

    def _severity(self, code: str) -> str:
        return next((f.severity for f in self.findings if f.code == code), "warning")

    def first_error(self) -> Finding | None:
        return next(iter(self.errors), None)

    def to_json(self) -> list[dict]:
        """The kept findings as plain dicts (code, severity, line, field, message, fix)."""
        return [f.to_dict() for f in self.findings]

    def summary(self):
        """One row per code: severity, how often, the first lines, and an example message."""
        import pandas as pd

        rows = {}
        for f in self.findings:
            row = rows.setdefault(f.code, {"code": f.code, "severity": f.severity, "count": self.counts[f.code],
                                           "lines": [], "field": f.field, "message": f.message, "fix": f.fix or ""})
            if f.line is not None and len(row["lines"]) < 5:
                row["lines"].append(f.line)
        df = pd.DataFrame(list(rows.values()), columns=["code", "severity", "count", "lines", "field", "message", "fix"])
        df["lines"] = [", ".join(map(str, ls)) + (" …" if n > len(ls) else "") for ls, n in zip(df["lines"], df["count"])]
        order = {"error": 0, "warning": 1}
        return df.sort_values("severity", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)

    def headline(self) -> str:
        name = self.source or "examples"
        verdict = "OK" if self.ok else "NOT OK"
        return (f"{name}: {verdict}: {self.n_examples:,} examples ({self.format}), "
                f"{self.n_errors:,} error(s), {self.n_warnings:,} warning(s)")

    def _token_line(self) -> str | None:
        t = self.tokens
        if not t.get("n"):
            return None
        return (f"tokens ({t['encoding']}): {t['total']:,} total, mean {t['mean']:.0f}, max {t['max']:,}; "
                f"{t['n_over_limit']:,} example(s) over the {t['limit']:,}-token limit; "
                f"{t['billed_per_epoch']:,} billed per epoch")

    def __str__(self) -> str:
        lines = [self.headline()]
        if (token_line := self._token_line()):
            lines.append(token_line)
        for f in sorted(self.findings, key=lambda f: (f.severity != "error", f.line or 0))[:100]:
            where = f"line {f.line}" if f.line else "file"
            lines.append(f"  {f.severity.upper():7} {where:>10}  {f.field or '-':28} {f.code}: {f.message}")
            if f.fix:
                lines.append(f"  {'':7} {'':>10}  {'':28} fix: {f.fix}")
        hidden = sum(self.counts.values()) - min(100, len(self.findings))
        if hidden > 0:
            lines.append(f"  … and {hidden:,} more (see .summary() for counts per code)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<ValidationReport {self.headline()}>"

    def _repr_html_(self) -> str:
        esc = html.escape
        parts = [f"<p><b>{esc(self.headline())}</b></p>"]
        if (token_line := self._token_line()):
            parts.append(f"<p>{esc(token_line)}</p>")
        if self.findings:
            colour = {"error": "#c0392b", "warning": "#b9770e"}
            rows = "".join(
                f"<tr><td style='color:{colour[r['severity']]}'>{esc(r['severity'])}</td><td><code>{esc(r['code'])}</code></td>"
                f"<td>{r['count']:,}</td><td>{esc(r['lines'])}</td><td><code>{esc(r['field'] or '')}</code></td>"
                f"<td>{esc(r['message'])}</td><td>{esc(r['fix'] or '')}</td></tr>"
                for r in self.summary().to_dict("records"))
            parts.append("<table><thead><tr><th>severity</th><th>code</th><th>count</th><th>lines</th>"
                         f"<th>field (first)</th><th>message (first)</th><th>fix</th></tr></thead><tbody>{rows}</tbody></table>")
        return "".join(parts)
