"""The `arsearch` command line: one entry point, one sub-command per job."""

import argparse
import json
import sys

from indexer.analysis import analyze


def _cmd_analyze(args) -> int:
    text = sys.stdin.read() if args.text == "-" else args.text
    tokens = analyze(text)
    if args.json:
        rows = [
            {"text": t.text, "start": t.start, "end": t.end, "exact": t.exact, "stem": t.stem}
            for t in tokens
        ]
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
        return 0
    if not tokens:
        print("(no tokens)")
    for t in tokens:
        stem = t.stem if t.stem is not None else "(stopword)"
        print(f"{t.position:>4}  {t.start:>5}-{t.end:<5}  {t.text}\texact={t.exact}\tstem={stem}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="arsearch", description="Full-text search for Arabic collections."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("analyze", help="show how a text is tokenized, normalized and stemmed")
    p.add_argument("text", metavar="TEXT", help="text to analyse, or - to read standard input")
    p.add_argument("--json", action="store_true", help="print a JSON array of tokens")
    p.set_defaults(func=_cmd_analyze)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # e.g. piped into `head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
