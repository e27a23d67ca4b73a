"""The JSON API through Flask's test client: results, filters, errors, OpenAPI."""

import re

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from search_app.app import create_app
from tests.conftest import index_records

XSS_TITLE = "<script>alert(1)</script>"

DOCS = [
    # A fully vocalized text that an undiacritized query must find and mark.
    {"id": "vocal", "title": "في فضل العلم", "text": "قَالَ: مَنْ قَرَأَ وَالْكِتَابِ فَلَهُ أَجْرٌ",
     "source": "hadith", "tags": ["علم"], "date": "2001-05-01"},
    # The exact form الكتاب ranks above the stem-only form كتابه.
    {"id": "exact", "title": "خبر", "text": "قرأ الطالب الكتاب في البيت", "source": "news",
     "tags": ["تعليم"], "date": "2015-01-24", "url": "https://example.org/exact"},
    {"id": "stem-only", "title": "خبر", "text": "قرأ الطالب كتابه في البيت", "source": "news",
     "tags": ["تعليم", "بيت"], "date": "2016-03-02"},
    # Ids with ':' and '/' must survive the URL.
    {"id": "quran:2:255", "title": "آية الكرسي", "text": "ٱللَّهُ لَآ إِلَٰهَ إِلَّا هُوَ ٱلْحَيُّ ٱلْقَيُّومُ",
     "source": "quran"},
    {"id": "sub/a.md", "title": "ملف في مجلد", "text": "نص الملف عن الحديقة", "source": "files"},
    {"id": "xss", "title": XSS_TITLE, "text": "نص <b>غامق</b> & رموز", "source": "test",
     "url": "javascript:alert(1)"},
] + [
    # 23 undated-and-dated copies of one word, for pagination and sort=date.
    {"id": f"school-{n:02d}", "title": f"مقال {n}", "text": "زيارة إلى المدرسة الكبيرة", "source": "school",
     **({"date": f"2020-01-{n:02d}"} if n <= 20 else {})}
    for n in range(1, 24)
]


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api")
    index_records(folder / "ix", DOCS)
    return folder / "ix"


@pytest.fixture(scope="module")
def app(index):
    return create_app(index)


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


def get_json(client, url, status=200):
    response = client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    return response.get_json()


def ids(result):
    return [h["id"] for h in result["hits"]]


def test_index_from_the_environment(index, monkeypatch):
    # gunicorn loads search_app.wsgi, which calls create_app() with no argument.
    monkeypatch.setenv("ARSEARCH_INDEX", str(index))
    assert create_app().test_client().get("/healthz").get_json()["documents"] == len(DOCS)
    monkeypatch.delenv("ARSEARCH_INDEX")
    with pytest.raises(RuntimeError, match="ARSEARCH_INDEX"):
        create_app()


# -- search


def test_undiacritized_query_finds_and_marks_the_whole_vocalized_word(client):
    result = get_json(client, "/api/search?q=الكتاب")
    hit = next(h for h in result["hits"] if h["id"] == "vocal")
    assert "<mark>وَالْكِتَابِ</mark>" in hit["snippet"]
    assert set(result) >= {"query", "total", "page", "limit", "took_ms", "partial", "hits", "facets", "suggestion"}
    assert result["query"] == "الكتاب" and result["total"] == 3


def test_exact_form_ranks_above_stem_only(client):
    assert ids(get_json(client, "/api/search?q=الكتاب&source=news")) == ["exact", "stem-only"]


def test_facets_count_all_matches_not_just_the_page(client):
    result = get_json(client, "/api/search?q=الكتاب&limit=1")
    assert len(result["hits"]) == 1
    assert result["facets"]["source"] == {"news": 2, "hadith": 1}
    assert result["facets"]["tags"] == {"تعليم": 2, "علم": 1, "بيت": 1}


@pytest.mark.parametrize("params, expected", [
    ("source=hadith", {"vocal"}),
    ("tag=بيت", {"stem-only"}),
    ("date_from=2015-01-01", {"exact", "stem-only"}),
    ("date_to=2015-01-24", {"vocal", "exact"}),  # date_to includes that whole day
    ("date_from=2015-01-01&date_to=2015-12-31", {"exact"}),
    ("source=nowhere", set()),
    ("source=", {"vocal", "exact", "stem-only"}),  # an empty form field is no filter
])
def test_filters(client, params, expected):
    assert set(ids(get_json(client, f"/api/search?q=الكتاب&{params}"))) == expected


def test_sort_by_date_newest_first_undated_last(client):
    hits = get_json(client, "/api/search?q=المدرسة&sort=date&limit=100")["hits"]
    dates = [h["date"] for h in hits]
    assert dates[:20] == sorted(dates[:20], reverse=True) and dates[0] == "2020-01-20"
    assert dates[20:] == [None] * 3


def test_pagination_covers_every_hit_once(client):
    pages = [get_json(client, f"/api/search?q=المدرسة&limit=10&page={n}") for n in (1, 2, 3, 4)]
    assert [p["total"] for p in pages] == [23] * 4
    assert [len(p["hits"]) for p in pages] == [10, 10, 3, 0]
    seen = [i for p in pages for i in ids(p)]
    assert len(seen) == len(set(seen)) == 23
    assert pages[1]["page"] == 2 and pages[1]["limit"] == 10


def test_latin_layout_query_is_searched_as_arabic(client):
    # hgugl is العلم typed with a US layout active.
    result = get_json(client, "/api/search?q=hgugl")
    assert result["searched_for"] == "العلم" and "vocal" in ids(result)


def test_misspelling_gets_a_suggestion(client):
    result = get_json(client, "/api/search?q=الكتلب")  # الكتاب with a typo
    assert result["suggestion"] == "الكتاب"


# -- errors


ERRORS = [
    ("/api/search", 400, "q is required"),
    ("/api/search?q=%20%20", 400, "q is required"),
    ("/api/search?q=" + "ب" * 501, 400, "q is too long"),
    ("/api/search?q=كتاب&limit=abc", 400, "limit must be a whole number"),
    ("/api/search?q=كتاب&limit=0", 400, "limit must be between 1 and 100"),
    ("/api/search?q=كتاب&limit=101", 400, "limit must be between 1 and 100"),
    ("/api/search?q=كتاب&page=x", 400, "page must be a whole number"),
    ("/api/search?q=كتاب&page=0", 400, "page must be 1 or more"),
    ("/api/search?q=كتاب&page=200", 400, "too deep"),
    ("/api/search?q=كتاب&date_from=2015-13-01", 400, "date_from must be a date such as"),
    ("/api/search?q=كتاب&date_to=yesterday", 400, "date_to must be a date such as"),
    ("/api/search?q=كتاب&date_from=2016-01-01&date_to=2015-01-01", 400, "date_from is after date_to"),
    ("/api/search?q=كتاب&sort=random", 400, "sort must be 'relevance' or 'date'"),
    ("/api/suggest", 400, "q is required"),
    ("/api/suggest?q=" + "ب" * 501, 400, "q is too long"),
    ("/api/suggest?q=كت&limit=50", 400, "limit must be between 1 and 20"),
    ("/api/documents/no-such-id", 404, "no document with id 'no-such-id'"),
    ("/api/documents/quran:2:255?q=" + "ب" * 501, 400, "q is too long"),
    ("/api/no-such-endpoint", 404, "no such endpoint"),
    ("/api", 404, "no such endpoint"),
    ("/api/search/extra", 404, "no such endpoint"),
]


@pytest.mark.parametrize("url, status, message", ERRORS, ids=[e[0][:60] for e in ERRORS])
def test_errors_are_json_with_a_helpful_message(client, url, status, message):
    body = get_json(client, url, status)
    assert body["error"]["status"] == status
    assert message in body["error"]["message"]


@pytest.mark.parametrize("method, url", [("post", "/api/search?q=كتاب"), ("delete", "/healthz"),
                                         ("put", "/api/documents/vocal")])
def test_wrong_method_is_405_json(client, method, url):
    response = getattr(client, method)(url)
    assert response.status_code == 405 and response.is_json
    assert "use GET" in response.get_json()["error"]["message"]
    assert "GET" in response.headers["Allow"]


class BrokenEngine:
    """Raises what a bug would raise; the details must stay in the log."""

    def search(self, *args, **kwargs):
        raise RuntimeError("secret internal detail")

    def health(self):
        raise OSError("index folder vanished")


def test_unexpected_error_is_500_json_and_logged(caplog):
    client = create_app(engine=BrokenEngine()).test_client()
    response = client.get("/api/search?q=كتاب")
    assert response.status_code == 500 and response.is_json
    body = response.get_json()
    assert body["error"]["status"] == 500
    assert "secret" not in response.get_data(as_text=True) and "Traceback" not in response.get_data(as_text=True)
    assert "secret internal detail" in caplog.text  # logged with its traceback


def test_broken_index_makes_healthz_503_json():
    response = create_app(engine=BrokenEngine()).test_client().get("/healthz")
    assert response.status_code == 503 and response.get_json()["error"]["status"] == 503


# -- documents, suggest, health


@pytest.mark.parametrize("path, doc_id", [
    ("quran:2:255", "quran:2:255"),
    ("quran%3A2%3A255", "quran:2:255"),
    ("sub/a.md", "sub/a.md"),
    ("sub%2Fa.md", "sub/a.md"),
])
def test_document_ids_with_colons_and_slashes(client, path, doc_id):
    doc = get_json(client, f"/api/documents/{path}")
    assert doc["id"] == doc_id and doc["title"] and doc["text"]


def test_document_marks_the_query_words(client):
    doc = get_json(client, "/api/documents/vocal?q=الكتاب")
    assert doc["text"] == DOCS[0]["text"]  # the original, diacritics kept
    assert "<mark>وَالْكِتَابِ</mark>" in doc["text_html"]
    assert doc["source"] == "hadith" and doc["tags"] == ["علم"] and doc["date"] == "2001-05-01"


def test_suggest_completes_the_last_word(client):
    assert "الكتاب" in get_json(client, "/api/suggest?q=الك")["suggestions"]
    body = get_json(client, "/api/suggest?q=قرأ الك")
    assert body["query"] == "قرأ الك" and "قرأ الكتاب" in body["suggestions"]
    assert get_json(client, "/api/suggest?q=")["suggestions"] == []
    assert len(get_json(client, "/api/suggest?q=ال&limit=1")["suggestions"]) == 1


def test_healthz(client):
    health = get_json(client, "/healthz")
    assert health["status"] == "ok" and health["documents"] == len(DOCS)


# -- escaping


def test_html_fields_escape_markup_from_documents(client):
    hit = get_json(client, "/api/search?q=غامق")["hits"][0]
    assert hit["id"] == "xss"
    assert hit["title"] == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert "&lt;b&gt;<mark>غامق</mark>&lt;/b&gt; &amp;" in hit["snippet"]
    doc = get_json(client, "/api/documents/xss?q=غامق")
    assert doc["title"] == XSS_TITLE  # plain fields stay plain text
    assert "<script>" not in doc["title_html"] and "<b>" not in doc["text_html"]


# -- OpenAPI


@pytest.fixture(scope="module")
def spec(client):
    return get_json(client, "/api/openapi.json")


def validator(spec, name):
    """A 2020-12 validator for one component schema, its $refs resolved in `spec`."""
    registry = Registry().with_resource("urn:arsearch-openapi",
                                        Resource.from_contents(spec, default_specification=DRAFT202012))
    return jsonschema.Draft202012Validator({"$ref": f"urn:arsearch-openapi#/components/schemas/{name}"},
                                           registry=registry, format_checker=jsonschema.FormatChecker())


def test_openapi_is_3_1_with_valid_schemas(spec):
    assert spec["openapi"].startswith("3.1")
    for schema in spec["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("url, status, name", [
    ("/api/search?q=الكتاب", 200, "SearchResult"),
    ("/api/search?q=hgugl", 200, "SearchResult"),
    ("/api/search?q=المدرسة&sort=date&limit=100", 200, "SearchResult"),
    ("/api/search?q=زرافة", 200, "SearchResult"),
    ("/api/search?q=الكتاب&snippets=false", 200, "SearchResult"),
    ("/api/search?q=الكتاب&snippets=false&facets=false", 200, "SearchResult"),
    ("/api/documents/quran:2:255?q=الله", 200, "Document"),
    ("/api/documents/sub/a.md", 200, "Document"),
    ("/api/suggest?q=الك", 200, "Suggestions"),
    ("/healthz", 200, "Health"),
    ("/api/search?limit=x", 400, "Error"),
    ("/api/documents/missing", 404, "Error"),
    ("/api/missing", 404, "Error"),
])
def test_responses_match_the_openapi_schemas(client, spec, url, status, name):
    validator(spec, name).validate(get_json(client, url, status))


def test_snippets_false_gives_the_same_hits_without_snippets(client):
    full = get_json(client, "/api/search?q=الكتاب")
    bare = get_json(client, "/api/search?q=الكتاب&snippets=false")
    assert full["hits"] and [h["id"] for h in bare["hits"]] == [h["id"] for h in full["hits"]]
    assert [h["score"] for h in bare["hits"]] == [h["score"] for h in full["hits"]]
    assert all(h["snippet"] is None and "<mark>" not in h["title"] for h in bare["hits"])
    assert any("<mark>" in h["snippet"] for h in full["hits"])
    error = get_json(client, "/api/search?q=الكتاب&snippets=maybe", 400)
    assert error["error"]["message"] == "snippets must be true or false, got 'maybe'"


def test_facets_false_gives_the_same_hits_without_facet_counts(client):
    full = get_json(client, "/api/search?q=الله")
    fast = get_json(client, "/api/search?q=الله&facets=false&snippets=false")
    assert full["facets"]["source"] and fast["facets"] == {}
    assert [h["id"] for h in fast["hits"]] == [h["id"] for h in full["hits"]]
    # The sample is far below 10,000 matches: the total stays exact.
    assert fast["total"] == full["total"] and fast["total_relation"] == full["total_relation"] == "eq"
    error = get_json(client, "/api/search?q=الله&facets=sometimes", 400)
    assert error["error"]["message"] == "facets must be true or false, got 'sometimes'"


def test_openapi_schemas_reject_wrong_shapes(spec):
    # The check above means something only if the schemas are strict.
    with pytest.raises(jsonschema.ValidationError):
        validator(spec, "Error").validate({"error": {"status": 400}})
    with pytest.raises(jsonschema.ValidationError):
        validator(spec, "SearchResult").validate({"query": "x", "total": 0})


def test_documented_responses_match_the_routes(spec):
    # Every status a test above saw is documented for its path.
    search = spec["paths"]["/api/search"]["get"]
    assert {"200", "400"} <= set(search["responses"])
    assert {p["name"] for p in search["parameters"]} == {
        "q", "limit", "page", "source", "tag", "date_from", "date_to", "sort", "snippets", "facets"}
    assert "404" in spec["paths"]["/api/documents/{doc_id}"]["get"]["responses"]


def test_every_api_route_is_described(app, spec):
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api") or rule.rule == "/healthz":
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)  # <id:doc_id> -> {doc_id}
            served |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    described = {(path, m) for path, item in spec["paths"].items() for m in item}
    assert served == described


@pytest.mark.parametrize("url", [
    "/api/search?q=الكتاب",  # snippets with <mark>, facets, Arabic as UTF-8
    "/api/search?q=المدرسة&limit=5&page=2&snippets=false&facets=false",
    "/api/search?q=zyhvm",  # a Latin-layout query: searched_for and a suggestion
    "/api/search?q=",  # the error shape
    "/api/documents/quran:2:255?q=الله",
    "/api/suggest?q=الم",
    "/healthz",
    "/api/openapi.json",
])
def test_json_bytes_are_flasks_own(app, client, url):
    """orjson writes the responses (app.JSONProvider): byte for byte what Flask's
    json module wrote, so no client sees a change but the time it took."""
    from flask.json.provider import DefaultJSONProvider

    response = client.get(url)
    body = response.get_data()
    flasks = DefaultJSONProvider(app)
    flasks.ensure_ascii, flasks.sort_keys = False, False  # as create_app sets them
    with app.app_context():
        assert body == flasks.response(response.get_json()).get_data()
    assert b"\\u06" not in body  # Arabic as UTF-8, not \u escapes


def test_values_orjson_does_not_take_are_written_by_flask(app):
    """Dates (Flask writes HTTP dates), Decimals and integer keys go to Flask's encoder."""
    import datetime
    import decimal

    with app.app_context():
        body = app.json.response({"date": datetime.date(2020, 1, 2), "n": decimal.Decimal("1.5"),
                                  "by_year": {2020: 3}}).get_data(as_text=True)
    assert body == '{"date":"Thu, 02 Jan 2020 00:00:00 GMT","n":"1.5","by_year":{"2020":3}}\n'
