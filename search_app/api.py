"""The JSON API: the engine's results as they are, and errors as JSON.

Every error under /api and /healthz is `{"error": {"status", "message"}}`
with a message that says what to fix; clients never get an HTML error page
or a stack trace. The routes are described in `openapi.py`
(GET /api/openapi.json), and a test checks that the two agree.
"""

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import PathConverter

from search_app import openapi
from search_app.app import get_engine
from search_app.engine import MAX_QUERY_CHARS, QueryError

bp = Blueprint("api", __name__)


class DocumentIdConverter(PathConverter):
    """A document id in a URL path: like <path:>, slashes included, and line
    breaks too, so an id that breaks the id rules reaches the engine and gets
    a 400 naming the rule rather than a 404 for an unknown URL."""

    regex = "(?s:[^/].*?)"


def register_id_converter(state):
    """Blueprint set-up (api and pages): the <id:...> URL converter."""
    state.app.url_map.converters.setdefault("id", DocumentIdConverter)


bp.record_once(register_id_converter)

MAX_SUGGESTIONS = 20


def is_api_path(path: str) -> bool:
    return path == "/api" or path.startswith("/api/") or path == "/healthz"


def error_json(status: int, message: str, headers=None):
    response = jsonify({"error": {"status": status, "message": message}})
    response.status_code = status
    for name, value in headers or []:
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def error_response(exc):
    """The JSON error for any exception raised while serving an API path."""
    if isinstance(exc, QueryError):
        return error_json(400, str(exc))
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        if status == 404:
            message = (f"no such endpoint: {request.method} {request.path}; "
                       "the endpoints are listed in /api/openapi.json")
        elif status == 405:
            allowed = ", ".join(m for m in (exc.valid_methods or []) if m not in ("HEAD", "OPTIONS"))
            message = f"{request.method} is not allowed on {request.path}; use {allowed or 'GET'}"
        else:
            message = exc.description or exc.name
        return error_json(status, message, exc.get_headers())
    current_app.logger.exception("unexpected error on %s %s", request.method, request.path)
    return error_json(500, "internal error while serving the request; the server log has the details")


bp.register_error_handler(QueryError, error_response)
bp.register_error_handler(HTTPException, error_response)


def _int_arg(args, name: str, default: int) -> int:
    """A whole-number parameter of `args` (the request's query arguments, read once per request)."""
    raw = args.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError:
        raise QueryError(f"{name} must be a whole number, got {raw!r}") from None


def _bool_arg(args, name: str, default: bool) -> bool:
    raw = args.get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise QueryError(f"{name} must be true or false, got {raw!r}")


def _optional(args, name):
    """A filter parameter; empty means absent (an HTML form sends source=)."""
    return args.get(name) or None


@bp.get("/api/search")
def search():
    args = request.args  # `request` is a context-local proxy: looked up once, not per parameter
    result = get_engine().search(
        args.get("q"),
        page=_int_arg(args, "page", 1),
        limit=_int_arg(args, "limit", 10),
        source=_optional(args, "source"),
        tag=_optional(args, "tag"),
        date_from=_optional(args, "date_from"),
        date_to=_optional(args, "date_to"),
        sort=_optional(args, "sort") or "relevance",
        snippets=_bool_arg(args, "snippets", True),
        facets=_bool_arg(args, "facets", True),
    )
    return jsonify(result)


@bp.get("/api/documents/<id:doc_id>")
def document(doc_id):
    # The engine checks the id against the id rules (indexer.ids): a 400
    # naming the broken rule.
    doc = get_engine().document(doc_id, q=request.args.get("q"), offset=_int_arg(request.args, "offset", 0))
    if doc is None:
        return error_json(404, f"no document with id {doc_id!r}; ids are the hits[].id of /api/search")
    return jsonify(doc)


@bp.get("/api/suggest")
def suggest():
    q = request.args.get("q")
    if q is None:
        raise QueryError("q is required: the words typed so far")
    if len(q) > MAX_QUERY_CHARS:
        raise QueryError(f"q is too long: {len(q)} characters, at most {MAX_QUERY_CHARS}")
    limit = _int_arg(request.args, "limit", 8)
    if not 1 <= limit <= MAX_SUGGESTIONS:
        raise QueryError(f"limit must be between 1 and {MAX_SUGGESTIONS}, got {limit}")
    return jsonify({"query": q, "suggestions": get_engine().suggest(q, limit=limit)})


@bp.get("/healthz")
def healthz():
    try:
        return jsonify(get_engine().health())
    except Exception:
        # A load balancer should take this worker out, not see a crash page.
        current_app.logger.exception("health check failed")
        return error_json(503, "the index cannot be read; the server log has the details")


@bp.get("/api/openapi.json")
def openapi_json():
    return jsonify(openapi.spec())
