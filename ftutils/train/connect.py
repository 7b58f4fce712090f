"""One call to get a working `openai.OpenAI` client: OpenAI's API when you have a key, the
local backend (a real small model behind the same API) when you don't.

The key is read from the environment, a `.env` file or a password prompt, handed to the
client, and otherwise only ever shown masked (`sk-…abcd`): not in reprs, logs, notebook
outputs or files.
"""
from __future__ import annotations

import atexit
import getpass
import html
import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path


from ftutils import home, openai_rules
from ftutils.local.models import catalog
from ftutils.local.server_process import healthy, spawn, stop
from ftutils.train import availability
from ftutils.widgets.base import interactive

log = logging.getLogger(__name__)

BACKENDS = ("openai", "local")
DEFAULT_MODEL = {"local": catalog.default_model(), "openai": "auto"}
"""On OpenAI "auto": a model its live list says can still be fine-tuned (availability.pick_model)."""
# Models OpenAI lets you fine-tune with supervised learning (its fine-tuning guide). A listed
# `ft:` model of yours can be fine-tuned further too.
OPENAI_FINE_TUNABLE = openai_rules.FINE_TUNABLE_MODELS
START_TIMEOUT = 120  # seconds; the first start converts the base model's weights


def mask(key: str | None) -> str:
    """`sk-…abcd`: enough to tell keys apart, too little to use. Short keys show nothing."""
    if not key:
        return ""
    if len(key) < 16:
        return "…" * 4
    return f"{key[:3]}…{key[-4:]}"


@dataclass
class Connection:
    """A ready client and why it points where it does. The raw key is held by the client
    alone (`client` is an attribute, not a field, so reprs and `asdict` never carry it)."""

    backend: str
    """"openai" or "local"."""
    base_url: str
    """Where requests go, ending in /v1."""
    reason: str
    """One sentence on why this backend was chosen."""
    key_source: str
    """"argument", "env", ".env", "prompt", "env FTUTILS_API_KEY", "local api_key file" or "missing"."""
    masked_key: str
    """The key as `sk-…abcd`, or "" when none was found (and then `client` is None)."""
    started_server: bool = False
    """True when this process started the local server (and stops it at exit)."""
    data_dir: str | None = None
    """The local backend's data directory."""

    def __post_init__(self):
        # Set by connect(); a plain attribute, since asdict() deep-copies every field.
        self.client = None
        self._auto: dict[str, str] = {}

    @property
    def default_model(self) -> str:
        """The base model "auto" means for supervised fine-tuning here (see auto_model)."""
        return self.auto_model("supervised")

    def auto_model(self, method: str = "supervised") -> str:
        """Locally the catalog's default model; on OpenAI the first model of its live list that `method`
        can train and that has not reached its shutdown_date (asked once per connection).
        Raises availability.FineTuningUnavailable, saying why, when there is none."""
        if DEFAULT_MODEL[self.backend] != "auto":
            return DEFAULT_MODEL[self.backend]
        if method not in self._auto:
            if self.client is None:
                raise RuntimeError(f"no client: {self}")
            self._auto[method] = availability.pick_model(self.client, method, backend=self.backend)
        return self._auto[method]

    def __str__(self) -> str:
        key = f"key {self.masked_key} from {self.key_source}" if self.masked_key else "no key"
        return f"{self.backend} backend at {self.base_url} ({key}): {self.reason}"

    def _repr_html_(self) -> str:
        rows = [("backend", self.backend), ("base URL", self.base_url), ("why", self.reason),
                ("key", self.masked_key or "(none)"), ("key from", self.key_source)]
        if self.data_dir:
            rows.append(("data dir", self.data_dir))
        body = "".join(f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>{html.escape(str(v))}</td></tr>"
                       for k, v in rows)
        return f"<table>{body}</table>"


def _dotenv(env_file: str | os.PathLike | None) -> dict:
    """Values in the .env file (searched upward from the working directory for a bare name),
    read without touching os.environ."""
    if not env_file:
        return {}
    from dotenv import dotenv_values, find_dotenv

    path = Path(env_file)
    if len(path.parts) == 1 and not path.exists():
        found = find_dotenv(str(path), usecwd=True)
        path = Path(found) if found else path
    return {k: v for k, v in dotenv_values(path).items() if v} if path.is_file() else {}


def _choose(backend, dotenv: dict) -> tuple[str, str]:
    if backend not in (None, "", "auto"):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be 'openai', 'local' or 'auto', got {backend!r}")
        return backend, f"you asked for the {backend} backend"
    env = os.environ.get("FTUTILS_BACKEND", "").strip().lower()
    if env and env != "auto":
        if env not in BACKENDS:
            raise ValueError(f"FTUTILS_BACKEND must be 'openai', 'local' or 'auto', got {env!r}")
        return env, f"FTUTILS_BACKEND is set to {env}"
    if os.environ.get("OPENAI_API_KEY"):
        return "openai", "OPENAI_API_KEY is set in the environment"
    if dotenv.get("OPENAI_API_KEY"):
        return "openai", "OPENAI_API_KEY is set in the .env file"
    return "local", "no OpenAI key was found, so the local backend (a small model on this machine) is used"


def _prompt_key() -> str | None:
    """Ask for the key without echoing it. In Jupyter, getpass renders a password box (a
    widget cannot block the running cell until it is filled); elsewhere it needs a terminal."""
    if interactive() or sys.stdin is not None and sys.stdin.isatty():
        try:
            key = getpass.getpass("OpenAI API key (input hidden): ").strip()
        except Exception:  # a kernel without stdin (nbclient) refuses input requests
            return None
        return key or None
    return None


def _openai(api_key, base_url, dotenv, prompt, reason) -> Connection:
    import openai

    key, source = api_key, "argument"
    if not key and os.environ.get("OPENAI_API_KEY"):
        key, source = os.environ["OPENAI_API_KEY"], "env"
    if not key and dotenv.get("OPENAI_API_KEY"):
        key, source = dotenv["OPENAI_API_KEY"], ".env"
    if not key and prompt:
        key, source = _prompt_key(), "prompt"
    if not key:
        source = "missing"
    base_url = base_url or os.environ.get("OPENAI_BASE_URL") or dotenv.get("OPENAI_BASE_URL")
    url = (base_url or "https://api.openai.com/v1").rstrip("/")
    conn = Connection("openai", url, reason, source, mask(key))
    # Without a key there is no client (openai refuses to build one); check() says what to do.
    conn.client = openai.OpenAI(api_key=key, base_url=url) if key else None
    log.info("connected: %s", conn)
    return conn


# ---- the local backend ----------------------------------------------------------------

def _shown(path: Path) -> str:
    """A path for display: the home folder as ~, so notebook outputs name no user's machine."""
    home = Path.home()
    return "~/" + str(path.relative_to(home)) if path.is_relative_to(home) else str(path)


def running_server(directory: Path) -> str | None:
    """The URL in DIR/server.json when that server answers /health."""
    url = (home.read_server_info(directory) or {}).get("url")
    return url if url and healthy(url) else None


_started: list[subprocess.Popen] = []


def _stop_started() -> None:
    for proc in _started:
        stop(proc)
    _started.clear()


atexit.register(_stop_started)


def start_server(directory: Path, timeout: float = START_TIMEOUT) -> str:
    """Start `ftutils serve` in the background on a free loopback port; stopped at exit."""
    server = spawn(directory, timeout=timeout)
    _started.append(server.process)
    log.info("started local server pid %s at %s", server.process.pid, server.url)
    return server.url


def _local(api_key, base_url, reason) -> Connection:
    import openai

    directory = home.data_dir()
    started = False
    url = base_url
    if not url:
        url = running_server(directory)
        if url:
            reason += f"; reusing the server already running at {url}"
        else:
            url = start_server(directory)
            started = True
            reason += f"; started a local server at {url} (it stops when this Python process ends)"
    key, source = (api_key, "argument") if api_key else home.find_key(directory)
    conn = Connection("local", url.rstrip("/"), reason, source, mask(key), started_server=started,
                      data_dir=_shown(directory))
    conn.client = openai.OpenAI(api_key=key, base_url=url) if key else None
    log.info("connected: %s", conn)
    return conn


def connect(backend: str | None = None, *, api_key: str | None = None, base_url: str | None = None,
            env_file: str | os.PathLike | None = ".env", prompt: bool = True) -> Connection:
    """A ready client: `backend` ("openai" | "local" | "auto"/None), else FTUTILS_BACKEND,
    else OpenAI when OPENAI_API_KEY is in the environment or `env_file`, else local.

    OpenAI without a key and `prompt`: asks for it, hidden. Local: reuses the server named in
    DATA_DIR/server.json when it answers, else starts one (stopped at interpreter exit).
    """
    dotenv = _dotenv(env_file)
    chosen, reason = _choose(backend, dotenv)
    if chosen == "openai":
        return _openai(api_key, base_url, dotenv, prompt, reason)
    return _local(api_key, base_url, reason)


# ---- the connectivity check -----------------------------------------------------------

@dataclass
class CheckResult:
    ok: bool
    """True when the API answered and listed models."""
    message: str
    """One sentence: what works, or what is wrong and what to do."""
    models: list = field(default_factory=list)
    """Every model id the key can see."""
    fine_tunable: list = field(default_factory=list)
    """The ones you can fine-tune (on OpenAI: not past their shutdown_date, and none from 2027-01-06)."""
    problem: str | None = None
    """"missing key" | "wrong key" | "no connection" | "wrong base URL" | "error" | None."""
    shutdown_dates: dict = field(default_factory=dict)
    """Model id -> the `shutdown_date` the service lists (YYYY-MM-DD), for the models that have one."""
    notice: str | None = None
    """On OpenAI: who may still create fine-tuning jobs there, and until when."""

    def __str__(self) -> str:
        return ("OK: " if self.ok else "Problem: ") + self.message + (f"\n{self.notice}" if self.notice else "")

    def _repr_html_(self) -> str:
        colour = "#2e7d32" if self.ok else "#c62828"
        notice = f"<p><b>Note:</b> {html.escape(self.notice)}</p>" if self.notice else ""
        return (f"<p style='color:{colour}'><b>{'OK' if self.ok else 'Problem'}:</b> {html.escape(self.message)}</p>"
                + notice)


def fine_tunable(conn: Connection, models: list[str], shutdown_dates: dict | None = None, day=None) -> list[str]:
    """The listed models a job can be created on: locally every base and alias; on OpenAI the
    fine-tunable snapshots and your own fine-tunes whose shutdown_date (the listed one, else
    openai_rules') has not come, and none at all once OpenAI stops creating jobs."""
    if conn.backend == "local":
        return sorted(m for m in models if not openai_rules.is_fine_tuned(m))
    day = day or openai_rules.today()
    if day >= openai_rules.JOB_CREATION_ENDS:
        return []
    dates = shutdown_dates or {}

    def alive(m):
        date = openai_rules.parse_date(dates[m]) if m in dates else openai_rules.shutdown_date(m)
        return date is None or date > day

    own = [m for m in models if openai_rules.is_fine_tuned(m) and not openai_rules.is_checkpoint(m) and alive(m)]
    return sorted(m for m in models if m in OPENAI_FINE_TUNABLE and alive(m)) + sorted(own)


def check(conn: Connection) -> CheckResult:
    """Call the API once (list models) and explain the outcome in one sentence."""
    import openai

    where = conn.base_url
    if not conn.masked_key:
        hint = ("set OPENAI_API_KEY in the environment or in a .env file next to the notebooks, "
                "or run connect() in a notebook or terminal to be asked for it")
        if conn.backend == "local":
            hint = f"set FTUTILS_API_KEY or check {conn.data_dir}/api_key"
        return CheckResult(False, f"No API key was found: {hint}.", problem="missing key")
    try:
        listed = list(conn.client.with_options(max_retries=0, timeout=20).models.list())
        models = sorted(m.id for m in listed)
    except openai.AuthenticationError:
        return CheckResult(False, f"The key {conn.masked_key} was rejected (401) by {where}: copy it again "
                           "in full, and check it has not been revoked.", problem="wrong key")
    except openai.APIConnectionError:
        return CheckResult(False, f"Could not reach {where}: there is no network, or nothing is listening "
                           "there (connection refused).", problem="no connection")
    except openai.NotFoundError:
        return CheckResult(False, f"{where} answered 404 to /models: the base URL is wrong "
                           "(for OpenAI leave OPENAI_BASE_URL unset; it must end in /v1).", problem="wrong base URL")
    except openai.APIStatusError as exc:
        return CheckResult(False, f"{where} answered HTTP {exc.status_code} to /models: {exc.message}", problem="error")
    except Exception as exc:  # a 200 that is not the API's JSON: some other web server
        return CheckResult(False, f"{where} did not answer like the OpenAI API ({type(exc).__name__}): "
                           "the base URL is probably wrong.", problem="wrong base URL")
    dates = {m.id: date.isoformat() for m in listed for sent, date in [availability.listed_shutdown(m)] if date}
    tunable = fine_tunable(conn, models, dates)
    message = (f"{where} answered with {len(models)} models; {len(tunable)} can be fine-tuned"
               + (f" ({', '.join(tunable[:5])}{', …' if len(tunable) > 5 else ''})." if tunable else "."))
    notice = None
    if conn.backend == "openai":
        notice = f"New fine-tuning jobs on OpenAI: {availability.openai_jobs()}. {availability.GO_LOCAL}"
    return CheckResult(True, message, models, tunable, shutdown_dates=dates, notice=notice)
