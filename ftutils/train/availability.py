"""Can this service fine-tune this model today? Asked of the service itself before a job is
created, and explained when the answer is no.

OpenAI is winding down its self-serve fine-tuning (`openai_rules.WIND_DOWN`). A model's
`shutdown_date` comes from the service the client talks to (`GET /v1/models`), so the same
checks run against OpenAI, the local backend or any other OpenAI-compatible service; the
dates in `openai_rules` fill in only when a service does not send the field. On OpenAI a
model past its date is refused here, with the reason, before anything is uploaded; a refused
`jobs.create` becomes one message: OpenAI's own words, the wind-down dates, and how to go on
locally. Everywhere else a date is a warning (`FineTuningWarning`): the local backend keeps
training OpenAI's ids as aliases after OpenAI has shut them down.

Client side only: nothing here imports `ftutils.local` (`ftutils migrate` uses it too).
"""
from __future__ import annotations

import datetime as dt
import html
import warnings
from dataclasses import dataclass

from ftutils import openai_rules as rules

OPENAI_HOST = "api.openai.com"
GO_LOCAL = ("To go on, use the local backend, which runs every notebook on this machine through the same API: "
            "set FTUTILS_BACKEND=local (or call connect(\"local\")). To bring the jobs you ran on OpenAI home, "
            "files, settings and all: ftutils migrate.")
REFUSALS = (400, 403, 404)  # what OpenAI answers a jobs.create it will not run


class FineTuningWarning(UserWarning):
    """A model that shuts down soon, or has shut down on OpenAI but still trains here."""


class FineTuningUnavailable(RuntimeError):
    """This service will not (or would not) create the fine-tuning job; the message says
    why, with the dates, and what to do instead. In a notebook it shows as that message
    alone, not a traceback."""

    def __init__(self, message: str, *, status_code: int | None = None, code: str | None = None,
                 service_message: str | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.service_message = service_message
        """The service's own words, when it refused."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows what this returns instead of the traceback (its custom-exception hook).
        return [f"{type(self).__name__}: {line}" if i == 0 else line for i, line in enumerate(str(self).splitlines())]


def is_openai(client, backend: str | None = None) -> bool:
    """Whether the client talks to OpenAI: the caller says so (`backend="openai"`, e.g.
    `Connection.backend`), else its base URL is OpenAI's own."""
    if backend is not None:
        return backend == "openai"
    return getattr(client.base_url, "host", None) == OPENAI_HOST


def _service(client, openai: bool) -> str:
    return "OpenAI" if openai else str(client.base_url).rstrip("/")


def _when(date: dt.date, day: dt.date) -> str:
    days = (date - day).days
    if days < 0:
        return f"{-days} day{'s' if days != -1 else ''} ago"
    return "today" if days == 0 else f"in {days} day{'s' if days != 1 else ''}"


def wind_down_lines(day: dt.date | None = None) -> list[str]:
    """OpenAI's fine-tuning wind-down, one line a milestone, each said against `day`."""
    day = day or rules.today()
    return [f"{m.date.isoformat()} ({_when(m.date, day)}): {m.what}" for m in rules.WIND_DOWN]


def wind_down_text(day: dt.date | None = None) -> str:
    return (f"OpenAI is winding down its self-serve fine-tuning (its deprecations page, notice of "
            f"{rules.WIND_DOWN_NOTICE.isoformat()}, {rules.DEPRECATIONS_PAGE}):\n"
            + "\n".join(f"  - {line}" for line in wind_down_lines(day)))


# ---- shutdown_date, as a service lists it ------------------------------------------------

def listed_shutdown(model) -> tuple[bool, dt.date | None]:
    """(whether the service sent `shutdown_date` at all, the date or None) of an openai `Model`."""
    sent = set(getattr(model, "model_fields_set", ())) | set(getattr(model, "model_extra", None) or {})
    return "shutdown_date" in sent, rules.parse_date(getattr(model, "shutdown_date", None))


@dataclass(frozen=True)
class ModelCheck:
    """What the service said about a model just before a job on it is created."""

    model: str
    service: str
    """"OpenAI" or the base URL."""
    listed: bool
    """False when the service answered 404 for the model."""
    shutdown_date: dt.date | None
    date_source: str
    """"service" (its `shutdown_date`), "ftutils" (openai_rules, the service sent none) or "none"."""
    warning: str | None = None


def check_model(client, model: str, *, backend: str | None = None, day: dt.date | None = None,
                warn: bool = True) -> ModelCheck:
    """Read `model`'s `shutdown_date` from the service (models.retrieve) before a job on it.

    On OpenAI: raises FineTuningUnavailable from JOB_CREATION_ENDS on, and for a model past
    its date (or gone, when the date is known). Elsewhere, and for dates still to come, a
    FineTuningWarning says what the date means (`warn=False`: only in the result)."""
    import openai as openai_sdk

    day = day or rules.today()
    on_openai = is_openai(client, backend)
    service = _service(client, on_openai)
    if on_openai and day >= rules.JOB_CREATION_ENDS:
        raise FineTuningUnavailable(f"OpenAI creates no new fine-tuning jobs since {rules.JOB_CREATION_ENDS.isoformat()}, "
                                    f"for any organisation.\n\n{wind_down_text(day)}\n\n{GO_LOCAL}")
    try:
        found = client.models.retrieve(model)
    except openai_sdk.NotFoundError:
        date = rules.shutdown_date(model) if on_openai else None
        if date is not None and date <= day:
            raise FineTuningUnavailable(_shut_down(model, date, "ftutils", service, day)) from None
        # Not ours to judge: jobs.create answers with the service's own error.
        return ModelCheck(model, service, False, date, "ftutils" if date else "none")
    sent, date = listed_shutdown(found)
    source = "service" if sent else "none"
    if not sent and on_openai and rules.shutdown_date(model):
        date, source = rules.shutdown_date(model), "ftutils"
    warning = None
    if date is not None and date <= day:
        if on_openai:
            raise FineTuningUnavailable(_shut_down(model, date, source, service, day))
        warning = (f"{model}: {service} lists it with shutdown_date {date.isoformat()} ({_when(date, day)}): OpenAI no "
                   f"longer serves it, but this service does, so the job goes ahead here.")
    elif date is not None and on_openai:
        warning = (f"{model} shuts down on {date.isoformat()} ({_when(date, day)}, {_said_by(source, service)}), and "
                   f"every model fine-tuned on it goes with it. OpenAI creates fine-tuning jobs only until "
                   f"{rules.JOB_CREATION_ENDS.isoformat()}, and only for organisations that may still; ftutils migrate "
                   "brings finished jobs to the local backend.")
    elif date is not None:
        warning = (f"{model}: {service} lists it with shutdown_date {date.isoformat()} ({_when(date, day)})"
                   + (": the day OpenAI shuts it down, with every model fine-tuned on it. This service goes on "
                      "training it." if _is_openai_id(rules.base_of(model)) else "."))
    elif on_openai:
        warning = (f"OpenAI creates fine-tuning jobs only until {rules.JOB_CREATION_ENDS.isoformat()}, and only for "
                   f"organisations that may still ({rules.DEPRECATIONS_PAGE}).")
    if warning and warn:
        warnings.warn(warning, FineTuningWarning, stacklevel=3)
    return ModelCheck(model, service, True, date, source, warning)


def _said_by(source: str, service: str) -> str:
    return f"shutdown_date from {service}" if source == "service" else f"OpenAI's deprecations page"


def _shut_down(model: str, date: dt.date, source: str, service: str, day: dt.date) -> str:
    return (f"{model} shut down on OpenAI on {date.isoformat()} ({_when(date, day)}; {_said_by(source, service)}): "
            f"no job can be created on it, and every model fine-tuned on it has gone with it.\n\n"
            f"{wind_down_text(day)}\n\n{GO_LOCAL}")


# ---- a refused jobs.create ------------------------------------------------------------

def refusal(exc, client, *, backend: str | None = None, day: dt.date | None = None) -> FineTuningUnavailable | None:
    """The one clear message for OpenAI refusing `jobs.create` (403, 404, or a 400 about the
    model or the account rather than a field of the request); None for any other error."""
    import openai as openai_sdk

    if not isinstance(exc, openai_sdk.APIStatusError) or exc.status_code not in REFUSALS:
        return None
    if not is_openai(client, backend):
        return None
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body) if isinstance(body.get("error", body), dict) else {}
    param, code = error.get("param"), error.get("code")
    if exc.status_code == 400 and param not in (None, "model"):
        return None  # a field of the request was wrong: OpenAI's own error says which
    words = error.get("message") or exc.message
    said = f"HTTP {exc.status_code}" + (f", code {code!r}" if code else "")
    return FineTuningUnavailable(f"OpenAI refused to create the fine-tuning job ({said}): \"{words}\"\n\n"
                                 f"{wind_down_text(day)}\n\n{GO_LOCAL}",
                                 status_code=exc.status_code, code=code, service_message=words)


def create_job(client, *, backend: str | None = None, day: dt.date | None = None, **request):
    """`client.fine_tuning.jobs.create(**request)`, a refusal on OpenAI raised as FineTuningUnavailable."""
    import openai as openai_sdk

    try:
        return client.fine_tuning.jobs.create(**request)
    except openai_sdk.APIStatusError as exc:
        clear = refusal(exc, client, backend=backend, day=day)
        if clear is None:
            raise
        raise clear from exc


# ---- "auto": a model that can still be fine-tuned -------------------------------------

def _is_openai_id(model_id: str) -> bool:
    return (model_id in rules.FINE_TUNABLE_MODELS or model_id in rules.SHORT_NAMES
            or model_id in rules.SHUTDOWN_DATES)


def pick_model(client, method: str = "supervised", *, backend: str | None = None,
               day: dt.date | None = None) -> str:
    """The model "auto" means, from the service's live model list.

    On OpenAI: the first of `openai_rules.AUTO_PREFERENCE[method]` the list carries whose
    `shutdown_date` is still to come; FineTuningUnavailable saying so when there is none.
    Elsewhere: the service's own first base model (on the local backend,
    its catalog's default model), else the same choice among OpenAI's ids."""
    if method not in rules.AUTO_PREFERENCE:
        raise ValueError(f"method must be one of {sorted(rules.AUTO_PREFERENCE)}, got {method!r}")
    day = day or rules.today()
    on_openai = is_openai(client, backend)
    if on_openai and day >= rules.JOB_CREATION_ENDS:
        raise FineTuningUnavailable(f"No model can be fine-tuned on OpenAI: it creates no new fine-tuning jobs since "
                                    f"{rules.JOB_CREATION_ENDS.isoformat()}.\n\n{wind_down_text(day)}\n\n{GO_LOCAL}")
    listed = {}
    for m in client.models.list():
        sent, date = listed_shutdown(m)
        listed[m.id] = date if sent or not on_openai else rules.shutdown_date(m.id)
    if not on_openai:
        own = [m for m in listed if not rules.is_fine_tuned(m) and not _is_openai_id(m)]
        if own:
            return own[0]
    for model_id in rules.AUTO_PREFERENCE[method]:
        if model_id in listed and (listed[model_id] is None or listed[model_id] > day):
            return model_id
    gone = ", ".join(f"{m} ({listed[m].isoformat() if listed.get(m) else 'not listed'})"
                     for m in rules.AUTO_PREFERENCE[method] if m in listed or on_openai)
    raise FineTuningUnavailable(f"No model can be fine-tuned with {method} on {_service(client, on_openai)} today "
                                f"({day.isoformat()}): none of {gone or ', '.join(rules.AUTO_PREFERENCE[method])} is "
                                f"listed with a shutdown date still to come.\n\n{wind_down_text(day)}\n\n{GO_LOCAL}")


# ---- what works where, for 01_access and the README ------------------------------------

@dataclass
class WhereItWorks:
    """What a learner can do where, on `day`: shown as a table in a notebook, text elsewhere."""

    day: dt.date
    rows: list
    """(where, what works) pairs."""

    def __str__(self) -> str:
        return (f"What works where today ({self.day.isoformat()}):\n"
                + "\n".join(f"- {where}: {what}" for where, what in self.rows)
                + "\n" + wind_down_text(self.day))

    def _repr_html_(self) -> str:
        cells = "".join(f"<tr><th style='text-align:left'>{html.escape(w)}</th><td style='text-align:left'>"
                        f"{html.escape(t)}</td></tr>" for w, t in self.rows)
        dates = "".join(f"<li>{html.escape(line)}</li>" for line in wind_down_lines(self.day))
        return (f"<p><b>What works where today ({self.day.isoformat()})</b></p><table>{cells}</table>"
                f"<p>OpenAI's fine-tuning wind-down (<a href='{rules.DEPRECATIONS_PAGE}'>its deprecations page</a>, "
                f"notice of {rules.WIND_DOWN_NOTICE.isoformat()}):</p><ul>{dates}</ul>")


def openai_jobs(day: dt.date | None = None) -> str:
    """Who may create a fine-tuning job on OpenAI on `day`, in a few words."""
    day = day or rules.today()
    ends = rules.JOB_CREATION_ENDS.isoformat()
    if day >= rules.JOB_CREATION_ENDS:
        return f"none for anyone since {ends}"
    if day >= rules.INACTIVE_CUTOFF:
        return (f"only for an organisation that has fine-tuned before and ran a fine-tuned model in the past "
                f"{rules.INACTIVE_DAYS} days, and only until {ends}; a new key gets a refusal")
    if day >= rules.NEVER_FINE_TUNED_CUTOFF:
        return f"only for an organisation that has fine-tuned before, and only until {ends}"
    return f"until {ends}"


def where_it_works(day: dt.date | None = None) -> WhereItWorks:
    day = day or rules.today()
    gone = rules.LAST_BASES_SHUTDOWN.isoformat()
    local = ("every notebook, 01 to 06: upload, train (supervised and DPO), checkpoints, chat with base and "
             "fine-tuned models, evaluation. Free, offline, on this machine; OpenAI's model ids are accepted as "
             "aliases of SmolLM2, so OpenAI's own code runs unchanged.")
    openai = openai_jobs(day)
    if day >= rules.LAST_BASES_SHUTDOWN:
        tuned = f"gone: the last fine-tunable bases and every fine-tune on them shut down on {gone}"
    else:
        tuned = (f"answer until their base shuts down: {gone} for {', '.join(rules.LAST_BASES)} (ftutils migrate "
                 f"retrains them on the local backend; 04 compares old and new on the same items)")
    evals = ("shut down on " if day >= rules.EVALS_SHUTDOWN else "shuts down on ") + rules.EVALS_SHUTDOWN.isoformat()
    rows = [("local backend", local), ("OpenAI, new jobs", openai), ("OpenAI, your fine-tuned models", tuned),
            ("OpenAI's Evals API and graders", f"{evals}; 04_evaluate is the suite's own evaluation, on either backend")]
    return WhereItWorks(day, rows)
