"""The local backend's settings, declared once: each field with its environment variable,
default and help (`setting`).

`Settings.load` builds them from arguments, then FTUTILS_* variables, then defaults, for
`ftutils serve`; `Settings.from_env` does the same without touching the disk (`ftutils
export`); the API process passes them to the worker process as JSON, so all three agree on
every path and rule. The README's table of variables is `environment_table()` (a test keeps
the two the same).
"""
from __future__ import annotations

import json
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from ftutils import home, openai_rules
from ftutils.local.models import catalog

DEFAULT_MAX_UPLOAD_BYTES = 512 * 1024 * 1024  # OpenAI's per-file limit


def setting(default=MISSING, *, help: str, env: str | None = None, parse=None, default_factory=MISSING):
    """A Settings field: its default, what it means (`help`), and the variable that sets it
    (`env`, read through `parse(env, text)`)."""
    return field(default=default, default_factory=default_factory,
                 metadata={"help": help, "env": env, "parse": parse})


def _integer(env: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{env} must be an integer, got {text!r}") from None


def _json(env: str, text: str):
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{env} must be JSON: {exc}") from None


def _names(env: str, text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _text(env: str, text: str) -> str:
    return text.strip()


def _keep_checkpoints(env: str, text: str) -> int:
    """"all" keeps one per epoch of the longest job OpenAI allows."""
    if text.strip().lower() == "all":
        return openai_rules.N_EPOCHS_RANGE[1]
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{env} must be a number or 'all', got {text!r}") from None


@dataclass
class Settings:
    data_dir: Path = setting(env=home.DATA_DIR_ENV, help="the local backend's state (SQLite, files, models, "
                             "checkpoints, its key and server.json); default `~/.ftutils/local`")
    host: str = setting("127.0.0.1", help="loopback by default: the server trusts one key, not the network")
    port: int = setting(8000, help="0 picks a free one")
    api_key: str = setting("", env=home.KEY_ENV, help="the local server's key; default: generated into "
                           "`DATA_DIR/api_key` (mode 0600)")
    max_upload_bytes: int = setting(DEFAULT_MAX_UPLOAD_BYTES, env="FTUTILS_MAX_UPLOAD_BYTES", parse=_integer,
                                    help="the local server's upload limit (default 512 MiB, as OpenAI's); a larger "
                                         "upload fails with 413 and leaves nothing behind")
    extra_models: dict[str, str] = setting(default_factory=dict, env="FTUTILS_EXTRA_MODELS", parse=_json,
                                           help="extra local Hugging Face model folders, JSON `{\"id\": \"path\"}` "
                                                "(as `ftutils serve --model ID=DIR`)")
    model_aliases: dict[str, str] = setting(default_factory=dict, env="FTUTILS_MODEL_ALIASES", parse=_json,
                                            help="JSON `{\"openai-id\": \"local-base\"}` (or `{\"*\": \"local-base\"}`): "
                                                 "which local base an OpenAI model id trains; default: the default base of "
                                                 "the model table (SmolLM2)")
    org: str = setting("local", help="`organization_id` of jobs and the <org> part of fine-tuned model ids")
    keep_checkpoints: int = setting(3, env="FTUTILS_KEEP_CHECKPOINTS", parse=_keep_checkpoints,
                                    help="checkpoints the local server keeps per job: a number, or `all` (every "
                                         "epoch's; `ftutils run` asks for it). OpenAI keeps the last three, the "
                                         "local default too")
    poll_seconds: float = setting(0.25, help="how often the idle worker looks for queued jobs")
    torch_threads: int = setting(0, env="FTUTILS_TORCH_THREADS", parse=_integer,
                                 help="threads the worker gives torch; default all cores but one, so the API stays "
                                      "quick (on 2 cores during `ftutils run`, 03's job took 36 s an epoch on 2 "
                                      "threads against 30 s on 1)")
    train_processes: int = setting(0, env="FTUTILS_TRAIN_PROCESSES", parse=_integer,
                                   help="processes that share each training batch of a local job (torch DDP); "
                                        "default one per GPU where there are GPUs, else 2 on a machine with two "
                                        "cores or more, supervised and DPO jobs alike (1 for a base small enough "
                                        "to run on one thread, such as the test model): on the 2-core box a "
                                        "SmolLM2 job step took 1.33 s against 1.44 s in one process (up to 0.63x "
                                        "when both cores are free)")
    ray_address: str = setting("", env="FTUTILS_RAY_ADDRESS", parse=_text,
                               help="train each job as a Ray Train run on the Ray cluster at this address (`auto`: "
                                    "the one started on this machine with `ray start --head`; as `ftutils serve "
                                    "--ray`; needs `pip install ftutils[cluster]`); default: the embedded worker, "
                                    "which pays none of Ray's start-up (35-40 s a job on the 2-core box)")
    train_workers: int = setting(2, env="FTUTILS_TRAIN_WORKERS", parse=_integer,
                                 help="Ray workers per job, each with one CPU (or one GPU where the cluster has "
                                      "GPUs) and its share of every batch (with `FTUTILS_RAY_ADDRESS`)")
    run_worker: bool = setting(True, help="False runs the API alone (tests of the HTTP layer that must never train)")
    prepare_models: list[str] = setting(default_factory=list, env="FTUTILS_PREPARE_MODELS", parse=_names,
                                        help="base models (comma-separated) the idle worker converts and loads once "
                                             "at start, so the first job does not wait (SmolLM2's conversion costs "
                                             "~25 s on a fresh data dir); `ftutils run` asks for the one it trains")

    def __post_init__(self):
        self.data_dir = Path(self.data_dir).expanduser().resolve()
        if not 0 < self.port < 65536 and self.port != 0:
            raise ValueError(f"port must be 1..65535, got {self.port}")
        if self.max_upload_bytes <= 0:
            raise ValueError(f"max_upload_bytes must be positive, got {self.max_upload_bytes}")
        if not isinstance(self.model_aliases, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in self.model_aliases.items()):
            raise ValueError(f"model_aliases (FTUTILS_MODEL_ALIASES) must be a JSON object of model id -> base model "
                             f"id, got {self.model_aliases!r}")
        if self.train_processes < 0:
            raise ValueError(f"train_processes (FTUTILS_TRAIN_PROCESSES) must be 0 (auto) or more, got {self.train_processes}")
        if self.train_workers < 1:
            raise ValueError(f"train_workers (FTUTILS_TRAIN_WORKERS) must be 1 or more, got {self.train_workers}")
        if self.keep_checkpoints < 1:
            raise ValueError(f"keep_checkpoints must be at least 1, got {self.keep_checkpoints}")

    @classmethod
    def from_env(cls, data_dir: str | Path | None = None, **overrides) -> "Settings":
        """Settings from arguments, then FTUTILS_* variables, then defaults; touches no file."""
        for f in fields(cls):
            parse, env = f.metadata["parse"], f.metadata["env"]
            if parse and f.name not in overrides and os.environ.get(env):
                overrides[f.name] = parse(env, os.environ[env])
        return cls(data_dir=Path(data_dir) if data_dir else home.data_dir(), **overrides)

    @classmethod
    def load(cls, data_dir: str | Path | None = None, **overrides) -> "Settings":
        """`from_env`, then the data dir made (private) and the key found or made."""
        settings = cls.from_env(data_dir, **overrides)
        # Private: the key, uploaded training data and models live here. A dir an older version
        # made 0755 is tightened; a folder of the user's with other things in it is left as it
        # is (it may be their project folder), what we put in it is private all the same.
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if _ours(settings.data_dir):
            settings.data_dir.chmod(0o700)
        for sub in ("files", "jobs", "models"):
            (settings.data_dir / sub).mkdir(exist_ok=True, mode=0o700)
        if not settings.api_key:
            settings.api_key = home.ensure_key(settings.data_dir)
        return settings

    def processes_for(self, base_model: str, method: str = "supervised") -> int:
        """How many processes train a job of `method` on `base_model` (train_processes, or its auto
        choice, the same for every method: the loop and its DDP do not depend on it)."""
        if self.train_processes:
            return self.train_processes
        entry = catalog.base_model(base_model)
        if entry is not None and entry.one_thread:
            return 1
        import torch  # only the worker asks, and it has torch loaded already

        if torch.cuda.is_available():
            return torch.cuda.device_count()
        return 2 if (os.cpu_count() or 1) >= 2 else 1

    def worker_threads(self) -> int:
        """Threads the worker gives torch (torch_threads, or all cores but one)."""
        return self.torch_threads or max(1, (os.cpu_count() or 2) - 1)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "db.sqlite"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    def to_json(self) -> str:
        """For the worker process; it never needs the key, so the key stays out of argv."""
        values = {**asdict(self), "data_dir": str(self.data_dir), "api_key": ""}
        return json.dumps(values)

    @classmethod
    def from_json(cls, text: str) -> "Settings":
        return cls(**json.loads(text))

    def __repr__(self) -> str:  # the key must never reach a log line
        return f"Settings(data_dir={str(self.data_dir)!r}, host={self.host!r}, port={self.port})"


def environment_table() -> str:
    """The README's table of the variables the local backend reads, one row per setting."""
    rows = ["| variable | meaning |", "|---|---|"]
    rows += [f"| `{f.metadata['env']}` | {f.metadata['help']} |" for f in fields(Settings) if f.metadata["env"]]
    return "\n".join(rows) + "\n"


def _ours(folder: Path) -> bool:
    """Empty, or holding nothing but what a server keeps there."""
    return {p.name for p in folder.iterdir()} <= OWN_FILES


OWN_FILES = {"api_key", "db.sqlite", "db.sqlite-wal", "db.sqlite-shm", "files", "jobs", "models", "server.json",
             "server.tmp", "server.log", "worker.lock"}

