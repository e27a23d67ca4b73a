"""The indexing half of the `arsearch` command line (analyze, index, delete, check, stats).

The program and its other commands live in `search_app.cli`."""

import json
import sys

from indexer.analysis import analyze


def err(message):
    print(f"arsearch: {message}", file=sys.stderr)


def print_json(value):
    json.dump(value, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


def _cmd_analyze(args) -> int:
    text = sys.stdin.read() if args.text == "-" else args.text
    tokens = analyze(text)
    if args.json:
        rows = [
            {"text": t.text, "start": t.start, "end": t.end, "exact": t.exact, "stem": t.stem}
            for t in tokens
        ]
        print_json(rows)
        return 0
    if not tokens:
        print("(no tokens)")
    for t in tokens:
        stem = t.stem if t.stem is not None else "(stopword)"
        print(f"{t.position:>4}  {t.start:>5}-{t.end:<5}  {t.text}\texact={t.exact}\tstem={stem}")
    return 0


def _interruptible():
    """Ctrl-C (SIGINT) and `kill` (SIGTERM) raise KeyboardInterrupt in this process.

    Installed explicitly: a process started in the background by a shell
    (`cmd &`) inherits an IGNORED SIGINT, and would otherwise not stop.
    """
    import signal

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def _cmd_index(args) -> int:
    from indexer import store
    from indexer.build import BuildError, build_index
    from indexer.progress import make_progress
    from indexer.records import InputError, resolve_inputs

    _interruptible()
    if args.max_record_mb <= 0:
        err("--max-record-mb must be more than 0")
        return 2
    # Every input and the index directory are checked before anything is
    # written: a typo is an error, never an empty index.
    problems = []
    try:
        store.check_index_directory(args.index, must_exist=False)
    except store.IndexError_ as exc:
        problems.append(str(exc))
    try:
        inputs = resolve_inputs(args.inputs, args.format)
    except InputError as exc:
        problems.extend(str(exc).splitlines())
    if problems:
        for line in problems:
            err(line)
        err("nothing was read or written")
        return 2
    sizes = [item.size() for item in inputs]
    total = sum(sizes) if all(s is not None for s in sizes) else None
    progress = make_progress(total, quiet=args.quiet)
    try:
        report = build_index(
            args.index, args.inputs, rebuild=args.rebuild, strict=args.strict,
            jobs=args.jobs, wait=args.wait, progress=progress, allow_empty=args.allow_empty,
            max_record_bytes=int(args.max_record_mb * 1024 * 1024), input_format=args.format,
        )
    except InputError as exc:  # an input vanished between the check and the run
        err(str(exc))
        return 2
    except (BuildError, store.IndexError_) as exc:
        if progress is not None:
            progress.close()
            progress = None
        err(str(exc))
        return 1
    except KeyboardInterrupt:
        err("interrupted: nothing from this run was committed; the index is as it was")
        return 130
    finally:
        if progress is not None:
            progress.close()
    if not args.quiet or not report.committed:
        print(report.summary(), file=sys.stderr)
    if args.strict and report.skipped:
        return 1
    return 0


def _cmd_delete(args) -> int:
    from indexer import store
    from indexer.ids import IdError, check_id
    from indexer.maintenance import delete_documents

    _interruptible()
    bad = []
    for doc_id in args.ids:
        try:
            check_id(doc_id)
        except IdError as exc:
            bad.append(f"{doc_id[:60]!r}: {exc}")
    if bad:
        for line in bad:
            err(line)
        err("nothing was deleted (see the id rules in the README)")
        return 2
    try:
        store.check_index_directory(args.index, must_exist=True)
        deleted, missing = delete_documents(args.index, args.ids, wait=args.wait)
    except store.IndexError_ as exc:
        err(str(exc))
        return 1
    except KeyboardInterrupt:
        err("interrupted: nothing was deleted")
        return 130
    for doc_id in missing:
        print(f"{doc_id}: not in the index", file=sys.stderr)
    print(f"deleted {deleted}, not found {len(missing)}", file=sys.stderr)
    return 1 if (missing and args.strict) else 0


def _cmd_stats(args) -> int:
    from indexer import store
    from indexer.maintenance import IndexReadError, index_stats

    try:
        store.check_index_directory(args.index, must_exist=True)
        stats = index_stats(args.index)
    except (store.IndexError_, IndexReadError) as exc:
        err(str(exc))
        return 1
    if args.json:
        print_json(stats)
        return 0
    print(f"index:            {stats['path']}")
    print(f"documents:        {stats['documents']}")
    print(f"analysis version: {stats['analysis_version']}")
    print(f"last commit:      {stats['last_commit']}")
    print(f"size on disk:     {stats['size_bytes'] / 1e6:.2f} MB")
    print(f"segments:         {stats['segments']}")
    print("distinct terms:")
    for name, count in stats["terms"].items():
        print(f"  {name:<12} {count}")
    return 0


def _cmd_check(args) -> int:
    from indexer import store
    from indexer.maintenance import check_index

    try:
        directory = args.index or index_or_sample(args)
        store.check_index_directory(directory, must_exist=True)
        report = check_index(directory, deep=args.deep)
    except store.IndexError_ as exc:
        err(str(exc))
        return 1
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


def index_or_sample(args):
    """The --index given, or the bundled sample's index (built on first use)."""
    if args.index:
        return args.index
    from indexer.sample import ensure_sample_index

    return str(ensure_sample_index(log=lambda line: print(f"arsearch: {line}", file=sys.stderr)))


def add_commands(sub) -> None:
    """The indexing commands (analyze, index, delete, check, stats).

    The `arsearch` program itself (`search_app.cli`) adds serve and search:
    this package never imports the search service.
    """
    p = sub.add_parser("analyze", help="show how a text is tokenized, normalized and stemmed")
    p.add_argument("text", metavar="TEXT", help="text to analyse, or - to read standard input")
    p.add_argument("--json", action="store_true", help="print a JSON array of tokens")
    p.set_defaults(func=_cmd_analyze)

    p = sub.add_parser(
        "index", help="add or replace documents (JSON Lines, CSV, a folder of .txt/.md, or -)"
    )
    p.add_argument("--index", required=True, metavar="DIR", help="index directory")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="FILE.jsonl, FILE.csv, a FOLDER, or - for JSON Lines on stdin")
    p.add_argument("--rebuild", action="store_true",
                   help="build a fresh index beside the old one and swap it in when complete")
    p.add_argument("--strict", action="store_true",
                   help="any bad record fails the run and nothing is committed")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="worker processes (default: all cores; one for small inputs)")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait this long for another indexer to finish (default: fail at once)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--allow-empty", action="store_true",
                   help="let a --rebuild (or a new index) that accepted 0 documents publish an empty index")
    p.add_argument("--max-record-mb", type=float, default=10.0, metavar="MB",
                   help="skip (and report) records larger than this, in MiB (default: 10)")
    p.add_argument("--format", choices=("jsonl", "csv"), default=None,
                   help="read every FILE (and -) as this format, whatever its name")
    p.set_defaults(func=_cmd_index)

    p = sub.add_parser("delete", help="remove documents by id")
    p.add_argument("--index", required=True, metavar="DIR")
    p.add_argument("ids", nargs="+", metavar="ID")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS")
    p.add_argument("--strict", action="store_true", help="exit 1 when an id is not found")
    p.set_defaults(func=_cmd_delete)

    p = sub.add_parser(
        "check", help="verify every file of an index against the checksums of its last commit"
    )
    p.add_argument("--index", metavar="DIR", help="index directory (default: the bundled sample)")
    p.add_argument("--deep", action="store_true",
                   help="also read every stored document and posting list through Whoosh")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("stats", help="document count, terms, size and version of an index")
    p.add_argument("--index", required=True, metavar="DIR")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_stats)
