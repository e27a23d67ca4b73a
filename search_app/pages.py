"""The Arabic HTML pages: a search page and a document page, no JavaScript needed.

Only the fields the engine has already escaped (hit title and snippet,
title_html and text_html) go into templates with |safe; everything else is
autoescaped by Jinja. A bad parameter gets an Arabic 400 page, not a crash.
"""

import math
from urllib.parse import urlsplit

from flask import Blueprint, current_app, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from search_app.api import register_id_converter
from search_app.app import get_engine
from search_app.engine import MAX_QUERY_CHARS, MAX_RESULTS_DEPTH, QueryError

bp = Blueprint("pages", __name__)
bp.record_once(register_id_converter)

PAGE_SIZE = 10
PAGE_LINKS = 4  # page numbers shown on each side of the current one
FILTERS = ("source", "tag", "date_from", "date_to", "sort")  # kept across links
FACETS = (("source", "source", "المصدر"), ("tags", "tag", "الوسوم"))  # (engine key, parameter, label)
FACET_VALUES_SHOWN = 12
SORTS = (("relevance", "الأكثر صلة"), ("date", "الأحدث"))
# Pages allow scripts and styles from this server only: defence in depth
# should an escaping mistake ever let markup through.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

ARABIC_DIGITS = str.maketrans("0123456789.", "٠١٢٣٤٥٦٧٨٩٫")

# Arabic messages for the engine's QueryError, by how its message starts
# (date_from, date_to: "date").
MESSAGES = (
    ("q is required", "اكتب كلمة أو أكثر للبحث عنها."),
    ("q is too long", f"نص البحث طويل جدًا: الحد الأقصى {MAX_QUERY_CHARS} حرف."),
    ("page", "رقم الصفحة غير صالح."),
    ("limit", "عدد النتائج في الصفحة غير صالح."),
    ("date", "التاريخ غير صالح: اكتبه بالشكل 2015-01-24، وليكن تاريخ البداية قبل تاريخ النهاية."),
    ("sort", "طريقة الترتيب غير معروفة: استعمل relevance أو date."),
    ("id ", "معرّف المستند غير صالح: لا يكون فارغًا ولا يبدأ أو ينتهي بمسافة ولا يحوي محارف تحكم، "
            "وطوله محدود."),
    ("offset", "موضع بداية النص غير صالح."),
)


@bp.app_template_filter("ar")
def arabic_digits(value) -> str:
    """Numbers in Arabic-Indic digits (١٢٣)."""
    return str(value).translate(ARABIC_DIGITS)


@bp.app_template_filter("http_url")
def http_url(url):
    """The url if it is http(s), else None: a javascript: url must not become a link."""
    if url and urlsplit(str(url)).scheme.lower() in ("http", "https"):
        return url
    return None


@bp.app_context_processor
def _helpers():
    return {"search_url": search_url}


@bp.after_app_request
def _security_headers(response):
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", CSP)
    return response


def search_url(**changes) -> str:
    """The current search's URL with some parameters changed (None removes one).

    Any change other than the page itself goes back to page 1.
    """
    args = {k: v for k, v in request.args.items() if k in ("q", "page") + FILTERS and v}
    if "page" not in changes:
        args.pop("page", None)
    for name, value in changes.items():
        if value is None or (name == "page" and value == 1):
            args.pop(name, None)
        else:
            args[name] = value
    return url_for("pages.search", **args)


def _int_arg(name, default) -> int:
    raw = request.args.get(name) or str(default)
    try:
        return int(raw)
    except ValueError:
        raise QueryError(f"{name} must be a whole number, got {raw!r}") from None


@bp.get("/")
def search():
    q = (request.args.get("q") or "").strip()
    if not q:
        return render_template("search.html", q="", result=None)
    filters = {name: request.args.get(name) or None for name in FILTERS}
    filters["sort"] = filters["sort"] or "relevance"
    result = get_engine().search(q, page=_int_arg("page", 1), limit=PAGE_SIZE, **filters)
    last_page = min(math.ceil(result["total"] / PAGE_SIZE), MAX_RESULTS_DEPTH // PAGE_SIZE)
    page = result["page"]
    numbers = range(max(1, page - PAGE_LINKS), min(last_page, page + PAGE_LINKS) + 1)
    return render_template(
        "search.html", q=q, result=result, filters=filters, facets=_facets(result, filters),
        numbers=numbers, last_page=last_page, sorts=SORTS,
        first_rank=(page - 1) * PAGE_SIZE + 1,
    )


def _facets(result, filters):
    """Facet groups to show: the most frequent values, and the active one."""
    groups = []
    for key, param, label in FACETS:
        counts = result["facets"].get(key) or {}
        values = list(counts.items())[:FACET_VALUES_SHOWN]
        active = filters.get(param)
        if active and active in counts and all(v != active for v, _ in values):
            values.append((active, counts[active]))
        if values:
            groups.append({"param": param, "label": label, "active": active,
                           "values": values, "hidden": len(counts) - len(values)})
    return groups


@bp.get("/doc/<id:doc_id>")
def document(doc_id):
    q = (request.args.get("q") or "").strip()
    # The engine checks the id against the id rules (indexer.ids): an
    # Arabic 400 page for a broken one.
    doc = get_engine().document(doc_id, q=q or None, offset=_int_arg("offset", 0))
    if doc is None:
        return _render_error(404, "لا يوجد مستند بهذا المعرّف.", f"no document with id {doc_id!r}", q)
    back = url_for("pages.search", q=q) if q else url_for("pages.search")
    # A long text comes in parts: links to the next part and back to the start.
    keep = {"q": q} if q else {}
    next_part = (url_for("pages.document", doc_id=doc_id, offset=doc["next_offset"], **keep)
                 if doc["next_offset"] is not None else None)
    first_part = url_for("pages.document", doc_id=doc_id, **keep) if doc["offset"] else None
    return render_template("document.html", doc=doc, q=q, back=back, next_part=next_part,
                           first_part=first_part)


def _render_error(status, message, detail=None, q=None):
    if q is None:
        q = (request.args.get("q") or "").strip()
    html = render_template("error.html", status=status, message=message, detail=detail, q=q[:MAX_QUERY_CHARS])
    return html, status


def error_page(exc):
    """The Arabic page for any exception raised while serving a page."""
    if isinstance(exc, QueryError):
        detail = str(exc)
        message = next((ar for key, ar in MESSAGES if detail.startswith(key)), "أحد مدخلات البحث غير صالح.")
        return _render_error(400, message, detail)
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        message = {
            404: "الصفحة غير موجودة.",
            405: "طريقة الطلب غير مسموح بها هنا.",
        }.get(status, "تعذّر تنفيذ الطلب.")
        body, status = _render_error(status, message, exc.description)
        return body, status, [h for h in exc.get_headers() if h[0].lower() != "content-type"]
    current_app.logger.exception("unexpected error on %s %s", request.method, request.path)
    return _render_error(500, "حدث خطأ غير متوقع. حاول مرة أخرى لاحقًا.")


bp.register_error_handler(QueryError, error_page)
