"""The OpenAPI 3.1 description of the JSON API, served at /api/openapi.json.

Written as Python so the limits come from the engine's constants. Schemas
are JSON Schema 2020-12 (what OpenAPI 3.1 uses); tests validate real
responses against them and check every /api route is described here.
"""

from indexer.ids import MAX_ID_CHARS
from search_app.engine import MAX_DOCUMENT_CHARS, MAX_LIMIT, MAX_QUERY_CHARS, MAX_TITLE_CHARS
from search_app.scoring import TRACK_TOTAL_HITS

NULLABLE_STRING = {"type": ["string", "null"]}
TAGS = {"type": "array", "items": {"type": "string"}}
COUNTS = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1}}
# Stored fields a hit and a document share (engine._metadata).
METADATA = {
    "url": NULLABLE_STRING,
    "date": {"type": ["string", "null"], "format": "date"},
    "source": NULLABLE_STRING,
    "tags": TAGS,
}


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties, required=None):
    return {
        "type": "object",
        "properties": properties,
        "required": list(required if required is not None else properties),
        "additionalProperties": False,
    }


SCHEMAS = {
    "Error": _object({
        "error": _object({
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "message": {"type": "string", "minLength": 1, "description": "What to fix."},
        }),
    }),
    "Hit": _object({
        "id": {"type": "string"},
        "score": {"type": "number"},
        "title": {"type": "string", "description": (
            f"HTML: escaped, matches in <mark>; a title longer than {MAX_TITLE_CHARS} characters is cut "
            "at a space and ends with ….")},
        "snippet": {"type": ["string", "null"], "description": (
            "HTML: escaped, matches in <mark>; null with snippets=false.")},
        **METADATA,
    }),
    "SearchResult": _object(
        {
            "query": {"type": "string"},
            "total": {"type": "integer", "minimum": 0, "description": (
                "Matching documents: exact when total_relation is \"eq\". With facets=false, a "
                f"query with a phrase past {TRACK_TOTAL_HITS} matches gets a lower bound (at least "
                f"{TRACK_TOTAL_HITS}), as Elasticsearch's track_total_hits: checking every "
                "candidate's positions would cost more than ranking the top ones.")},
            "total_relation": {"type": "string", "enum": ["eq", "gte"], "description": (
                "\"eq\": total is exact; \"gte\": total is a lower bound.")},
            "page": {"type": "integer", "minimum": 1},
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
            "took_ms": {"type": "number", "minimum": 0},
            "partial": {"type": "boolean", "description": (
                "The time limit cut the search short: the hits are true matches but some may be "
                "missing, the ranking coarser, a suggestion absent or snippets unmarked.")},
            "hits": {"type": "array", "items": _ref("Hit")},
            "facets": {**_object({"source": COUNTS, "tags": COUNTS}, required=[]), "description": (
                "Documents per source and tag among all matches; {} with facets=false.")},
            "suggestion": {**NULLABLE_STRING, "description": "A corrected query (did you mean)."},
            "searched_for": {
                **NULLABLE_STRING,
                "description": ("What was actually searched when q found nothing as typed: the Arabic "
                                "of a query typed on a Latin keyboard layout, or the words of a query "
                                "that was one quoted phrase found in no document."),
            },
        },
        required=["query", "total", "total_relation", "page", "limit", "took_ms", "partial", "hits",
                  "facets", "suggestion"],
    ),
    "Document": _object({
        "id": {"type": "string"},
        "title": {"type": "string",
                  "description": f"Cut at a space and ending with … past {MAX_TITLE_CHARS} characters."},
        "text": {"type": "string", "description": (
            f"The text from `offset`: at most {MAX_DOCUMENT_CHARS} characters, ending at a space when "
            "the text goes on.")},
        "title_html": {"type": "string", "description": "HTML: escaped, the words of q in <mark>."},
        "text_html": {"type": "string", "description": "HTML of `text`: escaped, the words of q in <mark>."},
        "text_length": {"type": "integer", "minimum": 0, "description": "Characters in the whole text."},
        "offset": {"type": "integer", "minimum": 0, "description": "Where `text` starts in the whole text."},
        "next_offset": {"type": ["integer", "null"], "minimum": 1, "description": (
            "The offset of the next part of the text (pass it as `offset`), or null at the end.")},
        **METADATA,
    }),
    "Suggestions": _object({
        "query": {"type": "string"},
        "suggestions": {"type": "array", "items": {"type": "string"}},
    }),
    "Health": _object({
        "status": {"type": "string"},
        "documents": {"type": "integer", "minimum": 0},
        "generation": {"type": "integer"},
        "index": {"type": "string"},
        "analysis_version": {"type": ["integer", "null"]},
        "last_commit": NULLABLE_STRING,
    }),
}


def _query(name, description, schema=None, required=False):
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema or {"type": "string"}}


def _json(schema_name, description):
    return {"description": description, "content": {"application/json": {"schema": _ref(schema_name)}}}


def _error(description):
    return _json("Error", description)


Q = _query("q", "The query: words, \"phrases\", -excluded, a OR b, title:, source:, prefix*, typo~.",
           {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS}, required=True)


def spec() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "arsearch",
            "version": "1",
            "description": "Full-text search for Arabic collections. Errors are JSON: "
                           "{\"error\": {\"status\": 400, \"message\": \"...\"}}.",
        },
        "paths": {
            "/api/search": {"get": {
                "operationId": "search",
                "summary": "Ranked, highlighted results with facet counts",
                "parameters": [
                    Q,
                    _query("limit", "Results per page.",
                           {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 10}),
                    _query("page", "Page number; page * limit may not exceed 1000.",
                           {"type": "integer", "minimum": 1, "default": 1}),
                    _query("source", "Only documents from this source."),
                    _query("tag", "Only documents with this tag."),
                    _query("date_from", "Only documents dated on or after this day.",
                           {"type": "string", "format": "date"}),
                    _query("date_to", "Only documents dated on or before this day.",
                           {"type": "string", "format": "date"}),
                    _query("sort", "Order of the hits.",
                           {"type": "string", "enum": ["relevance", "date"], "default": "relevance"}),
                    _query("snippets", "false: no snippets (each hit's snippet is null and its title "
                                       "unmarked), for programs that want ids and scores only.",
                           {"type": "boolean", "default": True}),
                    _query("facets", "false: no facet counts ({}), and a total that may be a lower "
                                     "bound (see total_relation): the fastest search.",
                           {"type": "boolean", "default": True}),
                ],
                "responses": {
                    "200": _json("SearchResult", "The results"),
                    "400": _error("A missing or bad parameter"),
                },
            }},
            "/api/documents/{doc_id}": {"get": {
                "operationId": "document",
                "summary": "One document in full, the words of q marked",
                "parameters": [
                    {"name": "doc_id", "in": "path", "required": True,
                     "description": (
                         "The document id; may contain ':' and '/'. Ids are not empty, have no leading or "
                         "trailing white space, no control characters, line or paragraph separators, and "
                         f"at most {MAX_ID_CHARS} characters."),
                     "schema": {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS}},
                    _query("q", "Words to mark in title_html and text_html.",
                           {"type": "string", "maxLength": MAX_QUERY_CHARS}),
                    _query("offset", f"Where the text starts: 0, or a next_offset. At most {MAX_DOCUMENT_CHARS} "
                                     "characters of text come per response.",
                           {"type": "integer", "minimum": 0, "default": 0}),
                ],
                "responses": {
                    "200": _json("Document", "The document (a part of its text, from offset)"),
                    "400": _error("An id that breaks the id rules (the message names the rule), "
                                  "q too long, or a bad offset"),
                    "404": _error("No document has this id"),
                },
            }},
            "/api/suggest": {"get": {
                "operationId": "suggest",
                "summary": "Completions of the last word typed, most frequent first",
                "parameters": [
                    {**Q, "schema": {"type": "string", "maxLength": MAX_QUERY_CHARS}},
                    _query("limit", "At most this many.",
                           {"type": "integer", "minimum": 1, "maximum": 20, "default": 8}),
                ],
                "responses": {
                    "200": _json("Suggestions", "The completions (complete queries)"),
                    "400": _error("A missing or bad parameter"),
                },
            }},
            "/healthz": {"get": {
                "operationId": "health",
                "summary": "Whether the index can be read, and what it holds",
                "responses": {
                    "200": _json("Health", "The index is readable"),
                    "503": _error("The index cannot be read"),
                },
            }},
            "/api/openapi.json": {"get": {
                "operationId": "openapi",
                "summary": "This description",
                "responses": {"200": {"description": "An OpenAPI 3.1 document",
                                      "content": {"application/json": {"schema": {"type": "object"}}}}},
            }},
        },
        "components": {
            "schemas": SCHEMAS,
            "responses": {
                "NotFound": _error("No such endpoint"),
                "MethodNotAllowed": _error("The endpoint exists but not for this method"),
                "InternalError": _error("An unexpected error (logged)"),
            },
        },
    }
