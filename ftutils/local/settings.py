"""Where the local backend keeps its state and how it guards it.

One dataclass, built from the command line and the environment by `Settings.load`; the
API process passes it to the worker process as JSON, so both agree on every path.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ftutils import home, openai_rules

DEFAULT_MAX_UPLOAD_BYTES = 512 * 1024 * 1024  # OpenAI's per-file limit


@dataclass
class Settings:
    data_dir: Path
    """Holds api_key, db.sqlite, files/, models/, jobs/ and server.json."""
    host: str = "127.0.0.1"
    """Loopback by default: the server trusts one key, not the network."""
    port: int = 8000
    api_key: str = ""
    """The bearer key every /v1 request must carry; filled in by `load`."""
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    """Uploads above this fail with 413 and leave nothing behind."""
    extra_models: dict[str, str] = field(default_factory=dict)
    """Extra base models: id -> local Hugging Face model directory."""
    model_aliases: dict[str, str] = field(default_factory=dict)
    """Changes to which local base trains and answers for OpenAI's model ids (alias -> base;
    "*" for all of them); see base_models.alias_table. From FTUTILS_MODEL_ALIASES (JSON)."""
    org: str = "local"
    """`organization_id` of jobs and the <org> part of fine-tuned model ids."""
    keep_checkpoints: int = 3
    """Checkpoints kept per job, as OpenAI keeps the last three epochs'. From
    FTUTILS_KEEP_CHECKPOINTS: a number, or "all" (a local difference from OpenAI: every
    epoch's checkpoint, so a walkthrough can score the underfit first epochs too)."""
    poll_seconds: float = 0.25
    """How often the idle worker looks for queued jobs."""
    torch_threads: int = 0
    """Threads the worker gives torch (FTUTILS_TORCH_THREADS); 0 = all cores but one, so the API
    stays quick. Measured on 2 cores during `ftutils run`: 03's job took 36 s an epoch on 2
    threads against 30 s on 1 (the API and the notebook's polling then compete with training)."""
    train_processes: int = 0
    """Processes that share each training batch (FTUTILS_TRAIN_PROCESSES; see
    ftutils.local.parallel); 0 = two on a machine with two or more cores, one for the tiny
    test model. On 2 vCPUs a batch-8 step of SmolLM2 took 1.44 s in one process and 1.33 s
    in two during a real job, and as little as 0.63x of one process when both cores were free."""
    run_worker: bool = True
    """False runs the API alone (tests of the HTTP layer that must never train)."""
    prepare_models: list[str] = field(default_factory=list)
    """Base models the idle worker converts and loads once at start (FTUTILS_PREPARE_MODELS,
    comma-separated), so the first job does not wait for it: SmolLM2's conversion from its
    GGUF file costs ~25 s on a fresh data dir. `ftutils run` asks for the model it trains."""

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
        if self.keep_checkpoints < 1:
            raise ValueError(f"keep_checkpoints must be at least 1, got {self.keep_checkpoints}")

    @classmethod
    def load(cls, data_dir: str | Path | None = None, **overrides) -> "Settings":
        """Settings from arguments, then FTUTILS_* variables, then defaults; makes the data dir."""
        env = os.environ
        if "max_upload_bytes" not in overrides and env.get("FTUTILS_MAX_UPLOAD_BYTES"):
            overrides["max_upload_bytes"] = int(env["FTUTILS_MAX_UPLOAD_BYTES"])
        if "keep_checkpoints" not in overrides and env.get("FTUTILS_KEEP_CHECKPOINTS"):
            overrides["keep_checkpoints"] = _keep_checkpoints(env["FTUTILS_KEEP_CHECKPOINTS"])
        if "extra_models" not in overrides and env.get("FTUTILS_EXTRA_MODELS"):
            overrides["extra_models"] = json.loads(env["FTUTILS_EXTRA_MODELS"])
        if "torch_threads" not in overrides and env.get("FTUTILS_TORCH_THREADS"):
            overrides["torch_threads"] = int(env["FTUTILS_TORCH_THREADS"])
        if "train_processes" not in overrides and env.get("FTUTILS_TRAIN_PROCESSES"):
            overrides["train_processes"] = int(env["FTUTILS_TRAIN_PROCESSES"])
        if "prepare_models" not in overrides and env.get("FTUTILS_PREPARE_MODELS"):
            overrides["prepare_models"] = [m.strip() for m in env["FTUTILS_PREPARE_MODELS"].split(",") if m.strip()]
        if "model_aliases" not in overrides and env.get("FTUTILS_MODEL_ALIASES"):
            overrides["model_aliases"] = json.loads(env["FTUTILS_MODEL_ALIASES"])
        settings = cls(data_dir=Path(data_dir) if data_dir else home.data_dir(), **overrides)
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

    def processes_for(self, base_model: str) -> int:
        """How many processes train a job on `base_model` (train_processes, or its auto choice)."""
        if self.train_processes:
            return self.train_processes
        from ftutils.local.base_models import TINY  # its matmuls are too small to be worth a second process

        return 2 if (os.cpu_count() or 1) >= 2 and base_model != TINY else 1

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


def _keep_checkpoints(value: str) -> int:
    """FTUTILS_KEEP_CHECKPOINTS: "all" keeps one per epoch of the longest job OpenAI allows."""
    if value.strip().lower() == "all":
        return openai_rules.N_EPOCHS_RANGE[1]
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"FTUTILS_KEEP_CHECKPOINTS must be a number or 'all', got {value!r}") from None


def _ours(folder: Path) -> bool:
    """Empty, or holding nothing but what a server keeps there."""
    return {p.name for p in folder.iterdir()} <= OWN_FILES


OWN_FILES = {"api_key", "db.sqlite", "db.sqlite-wal", "db.sqlite-shm", "files", "jobs", "models", "server.json",
             "server.tmp", "server.log", "worker.lock"}
