"""The Flask application factory: one `SearchEngine`, two views over it.

The JSON API (`api.py`) and the Arabic HTML pages (`pages.py`) are blueprints
that call the same engine, stored on the app rather than at module level so
that gunicorn workers and tests each get their own (a worker opens the index
itself: see gunicorn_conf.py).
"""

import os

import orjson
from flask import Flask, current_app, jsonify, request
from flask.json.provider import DefaultJSONProvider

from search_app.engine import SearchEngine

EXTENSION = "arsearch"

# On every response, including gunicorn's own errors (gunicorn_worker.py).
# same-origin: a click from a results page to a document's external URL does
# not send the page's address, which carries the query, in the Referer header.
RESPONSE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON responses, written by orjson: the same bytes (compact,
    Arabic as UTF-8, keys in the engine's order, a final newline) for ~1/6 of
    the CPU: 78 -> 4 us for an ids-only /api/search answer, 203 -> 34 us for
    a default one (x10 corpus), out of a few ms per request.

    What orjson would write otherwise goes to Flask's own encoder: types it
    does not take or that Flask writes its way (dates, dataclasses, Decimal,
    non-string keys, integers past 64 bits, a lone surrogate). Floats are the
    same number, and the same text in the range the API writes (scores and
    took_ms are rounded); below 1e-4 orjson writes 0.00001 for 1e-05, and NaN
    as null (json writes NaN, which is not JSON).
    """

    OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS

    def response(self, *args, **kwargs):
        obj = self._prepare_response_obj(args, kwargs)
        if (self.compact is False or (self.compact is None and self._app.debug)
                or self.ensure_ascii or self.sort_keys):
            return super().response(obj)  # indented for a person, or settings orjson has not
        try:
            body = orjson.dumps(obj, option=self.OPTIONS)
        except TypeError:  # orjson.JSONEncodeError: see above
            return super().response(obj)
        return self._app.response_class(body, mimetype=self.mimetype)


class _Flask(Flask):
    json_provider_class = JSONProvider

    def make_default_options_response(self):
        """OPTIONS on a route: under /api (and /healthz) JSON naming the methods.

        Flask's automatic answer is an empty text/html 200; API clients get
        JSON for everything. The Allow header is Flask's.
        """
        from search_app import api  # it imports this module

        response = super().make_default_options_response()
        if not api.is_api_path(request.path):
            return response
        answer = jsonify({"allow": sorted(response.allow)})
        answer.headers["Allow"] = response.headers["Allow"]
        return answer


def create_app(index_dir=None, engine=None) -> Flask:
    """A ready app over `engine`, or over a new engine for `index_dir`.

    With neither, the index directory comes from $ARSEARCH_INDEX (set by
    `arsearch serve`). The engine opens the index now, so a missing or
    outdated index fails at start-up rather than at the first request.
    """
    if engine is None:
        index_dir = index_dir or os.environ.get("ARSEARCH_INDEX")
        if not index_dir:
            raise RuntimeError("no index: pass create_app(index_dir=...) or set ARSEARCH_INDEX")
        engine = SearchEngine(index_dir)
    app = _Flask(__name__)
    app.json.ensure_ascii = False  # Arabic as UTF-8, not \u escapes
    app.json.sort_keys = False  # keep the engine's key order (query, total, ...)
    app.extensions[EXTENSION] = engine

    from search_app import api, pages

    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    # Routing errors (unknown URL, wrong method) happen before any blueprint is
    # chosen, so they and unexpected exceptions are handled app-wide: JSON under
    # /api and /healthz, an Arabic page elsewhere.
    app.register_error_handler(Exception, _handle_any)

    @app.after_request
    def _response_headers(response):
        for name, value in RESPONSE_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    return app


def get_engine() -> SearchEngine:
    return current_app.extensions[EXTENSION]


def _handle_any(exc):
    from search_app import api, pages  # they import this module

    if api.is_api_path(request.path):
        return api.error_response(exc)
    return pages.error_page(exc)
