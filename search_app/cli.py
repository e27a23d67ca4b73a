"""The `arsearch` command line: one entry point, one sub-command per job.

The indexing commands come from `indexer.cli`; this module adds the two
that need the search service (serve, search), so imports run one way:
search_app -> indexer.
"""

import argparse
import os
import sys
from pathlib import Path

from indexer.cli import add_commands, err, index_or_sample, print_json


def _cmd_serve(args) -> int:
    if args.workers < 1 or (args.threads or 1) < 1 or not 0 < args.port < 65536:
        err("--workers and --threads must be 1 or more, and --port between 1 and 65535")
        return 2
    from indexer import store

    try:
        index = index_or_sample(args)
        store.check_index_directory(index, must_exist=True)
        # A missing, outdated or damaged index (a file truncated or missing:
        # sizes are compared with the last commit's record) fails here, in
        # one line naming the file, not in every worker as a traceback.
        store.open_index(index)
    except store.IndexError_ as exc:
        err(str(exc))
        return 1
    os.environ["ARSEARCH_INDEX"] = str(Path(index).resolve())
    if args.threads is not None:
        os.environ["ARSEARCH_THREADS"] = str(args.threads)
    url = f"http://{args.host}:{args.port}/"
    print(f"arsearch: serving {index} at {url}", file=sys.stderr, flush=True)
    from gunicorn.app.wsgiapp import WSGIApplication

    sys.argv = [
        "arsearch serve", "-c", "python:search_app.gunicorn_conf",
        "--bind", f"{args.host}:{args.port}", "--workers", str(args.workers),
        "search_app.wsgi:app",
    ]
    WSGIApplication("%(prog)s [OPTIONS]").run()
    return 0


def _cmd_search(args) -> int:
    import html
    import re

    from indexer import store
    from search_app.engine import QueryError, SearchEngine

    try:
        engine = SearchEngine(index_or_sample(args))
        result = engine.search(args.query, page=args.page, limit=args.limit, source=args.source,
                               tag=args.tag, sort=args.sort)
    except (store.IndexError_, QueryError) as exc:
        err(str(exc))
        return 1
    if args.json:
        print_json(result)
        return 0
    on, off = ("\033[1;33m", "\033[0m") if sys.stdout.isatty() else ("«", "»")

    def text(fragment):
        fragment = re.sub(r"<mark>(.*?)</mark>", lambda m: on + m.group(1) + off, fragment, flags=re.S)
        return html.unescape(fragment).replace("\n", " ")

    shown = f"{result['total']} results ({result['took_ms']} ms)"
    if result.get("searched_for"):
        shown += f", searched for {result['searched_for']}"
    print(shown + (" [partial: time limit]" if result["partial"] else ""))
    if result["suggestion"]:
        print(f"did you mean: {result['suggestion']}")
    for rank, hit in enumerate(result["hits"], (result["page"] - 1) * result["limit"] + 1):
        print(f"\n{rank}. {text(hit['title']) or hit['id']}  [{hit['id']}]  score {hit['score']}")
        print(f"   {text(hit['snippet'])}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="arsearch", description="Full-text search for Arabic collections."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_commands(sub)
    p = sub.add_parser("serve", help="run the search service under gunicorn")
    p.add_argument("--index", metavar="DIR", help="index directory (default: the bundled sample)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=2, metavar="N",
                   help="worker processes (default: 2)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="request threads per worker, sharing its one index view "
                        "(default: $ARSEARCH_THREADS or 8)")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("search", help="search an index from the terminal")
    p.add_argument("query", metavar="QUERY")
    p.add_argument("--index", metavar="DIR", help="index directory (default: the bundled sample)")
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--source")
    p.add_argument("--tag")
    p.add_argument("--sort", default="relevance", choices=("relevance", "date"))
    p.add_argument("--json", action="store_true", help="print what /api/search returns")
    p.set_defaults(func=_cmd_search)

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
