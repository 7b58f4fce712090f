"""`ftutils train FILE` and `ftutils watch JOB_ID`: the 03_train notebook's steps from a
terminal. Both exit 0 when the job succeeded and 1 otherwise."""
from __future__ import annotations

import os
import sys


def _number(text: str):
    """"auto" stays a string; integers stay integers (n_epochs and batch_size must be)."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        return float(text)


def register(subparsers) -> None:
    train = subparsers.add_parser("train", help="upload a training file, start a fine-tuning job and follow it")
    train.add_argument("file", help="training file (JSONL, chat format)")
    train.add_argument("--validation", help="validation file (JSONL)")
    train.add_argument("--model", help="base model (default: the backend's default)")
    train.add_argument("--epochs", type=_number, default="auto", help="n_epochs, 1..50 or auto")
    train.add_argument("--batch-size", type=_number, default="auto", help="1..256 or auto")
    train.add_argument("--lr-multiplier", type=_number, default="auto", help="learning rate multiplier or auto")
    train.add_argument("--suffix", help="up to 64 letters, digits, - or _, added to the model name")
    train.add_argument("--seed", type=int)
    train.add_argument("--backend", choices=["openai", "local", "auto"], default=None)
    train.add_argument("--no-watch", action="store_true", help="print the job id and return at once")
    train.set_defaults(func=run_train)

    watch = subparsers.add_parser("watch", help="follow a fine-tuning job to its end and diagnose it")
    watch.add_argument("job_id")
    watch.add_argument("--backend", choices=["openai", "local", "auto"], default=None)
    watch.set_defaults(func=run_watch)


def _connect(backend):
    from ftutils.train.connect import check, connect

    # A terminal can be asked for a key; CI and pipes cannot, and then check() says why.
    conn = connect(backend, prompt=sys.stdin is not None and sys.stdin.isatty())
    result = check(conn)
    print(f"{conn}")
    if not result.ok:
        print(result, file=sys.stderr)
        return None
    return conn


def run_train(args) -> int:
    from ftutils.train.availability import FineTuningUnavailable

    conn = _connect(args.backend)
    if conn is None:
        return 1
    try:
        return _train(conn, args)
    except FineTuningUnavailable as exc:  # the reason and the way on, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _train(conn, args) -> int:
    from ftutils import openai_rules
    from ftutils.train import availability, jobs

    # Check before uploading: a bad value, or a model the service will not train, should not cost an upload.
    try:
        openai_rules.check(args.epochs, args.batch_size, args.lr_multiplier)
        openai_rules.check_suffix(args.suffix)
    except openai_rules.HyperparameterError as exc:
        print(f"error: {exc.param}: {exc}", file=sys.stderr)
        return 2
    model = args.model or conn.default_model
    checked = availability.check_model(conn.client, model, backend=conn.backend, warn=False)
    if checked.warning:
        print(f"warning: {checked.warning}", file=sys.stderr)
    train = jobs.upload(conn.client, args.file)
    print(f"uploaded {args.file} as {train.id}")
    valid = None
    if args.validation:
        valid = jobs.upload(conn.client, args.validation)
        print(f"uploaded {args.validation} as {valid.id}")
    job = jobs.launch(conn.client, train.id, valid.id if valid else None, model=model, n_epochs=args.epochs,
                      batch_size=args.batch_size, learning_rate_multiplier=args.lr_multiplier,
                      suffix=args.suffix, seed=args.seed, backend=conn.backend, check_model=False)
    print(f"started {job.id} on {model}")
    if args.no_watch:
        print(f"follow it with: ftutils watch {job.id}")
        return 0
    return _follow(conn.client, job.id)


def run_watch(args) -> int:
    conn = _connect(args.backend)
    if conn is None:
        return 1
    return _follow(conn.client, args.job_id)


def _follow(client, job_id: str) -> int:
    from ftutils.widgets.monitor import JobMonitor

    os.environ.setdefault("FTUTILS_INTERACTIVE", "0")
    monitor = JobMonitor(client, job_id, interactive=False)
    job = monitor.wait(show=False)
    metrics_df = monitor.metrics()
    if len(metrics_df):
        print(monitor.diagnosis())
    cps = monitor.checkpoints()
    if len(cps):
        print("checkpoints:")
        for row in cps.itertuples():
            loss = "" if row.valid_loss is None or row.valid_loss != row.valid_loss else f"  valid loss {row.valid_loss:.3f}"
            print(f"  step {row.step}: {row.model}{loss}")
    return 0 if job.status == "succeeded" else 1
