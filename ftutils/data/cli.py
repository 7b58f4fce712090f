"""`ftutils validate FILE [--model M] [--method supervised|dpo|reinforcement] [--json]`.

Exit codes: 0 no errors (warnings allowed), 1 the file has errors, 2 the file cannot be opened.
"""
from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    from ftutils import openai_rules as rules

    p = subparsers.add_parser("validate", help="check a JSONL training file before uploading it",
                              description="Check a JSONL training file the way OpenAI does, and more.")
    p.add_argument("file", help="JSONL training file")
    p.add_argument("--model", default=None, help="base model, for token counts and limits (default gpt-4o-mini)")
    p.add_argument("--method", choices=["supervised", "dpo", "reinforcement"], default=None,
                   help="the fine-tuning method the file is for (default: detect chat or preference per line; "
                        "reinforcement files need this; OpenAI's reinforcement fine-tuning lost its model, "
                        f"{rules.REINFORCEMENT_BASE}, on {rules.shutdown_date(rules.REINFORCEMENT_BASE)} and its graders with the Evals API on "
                        f"{rules.EVALS_SHUTDOWN}, and the local backend does not train it)")
    p.add_argument("--json", action="store_true", help="print the findings as a JSON list")
    p.set_defaults(func=run)


def run(args) -> int:
    from ftutils.data.validate import validate_file

    try:
        report = validate_file(args.file, model=args.model, method=args.method)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"ftutils validate: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_json(), indent=1, ensure_ascii=False))
    else:
        print(report)
    return 0 if report.ok else 1
