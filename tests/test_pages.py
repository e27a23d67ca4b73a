"""The Arabic HTML pages through Flask's test client."""

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest

from search_app.app import create_app
from tests.conftest import index_records

DOCS = [
    # Vocalized text found by an undiacritized query.
    {"id": "vocal", "title": "في فضل العلم", "text": "قَالَ: مَنْ قَرَأَ وَالْكِتَابِ فَلَهُ أَجْرٌ\nسطر ثان",
     "source": "hadith", "tags": ["علم"], "date": "2001-05-01", "url": "https://example.org/vocal?a=1&b=2"},
    {"id": "news", "title": "خبر", "text": "قرأ الطالب الكتاب في البيت", "source": "news", "tags": ["تعليم"]},
    {"id": "quran:2:255", "title": "آية الكرسي", "text": "ٱللَّهُ لَآ إِلَٰهَ إِلَّا هُوَ ٱلْحَيُّ ٱلْقَيُّومُ",
     "source": "quran"},
    {"id": "sub/a.md", "title": "", "text": "نص الملف عن الحديقة", "source": "files"},
    # Markup in every plain field must come out as text.
    {"id": "x<i>ss", "title": "<script>alert(1)</script>", "text": "نص <b>غامق</b> & رموز",
     "source": "<em>src</em>", "tags": ["<u>وسم</u>"], "url": "javascript:alert(1)"},
] + [
    {"id": f"school-{n:02d}", "title": f"مقال {n}", "text": "زيارة إلى المدرسة الكبيرة", "source": "school"}
    for n in range(1, 26)  # 25 hits: three pages of 10
]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pages")
    index_records(folder / "ix", DOCS)
    return create_app(folder / "ix").test_client()


def page(client, url, status=200):
    response = client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def links(html):
    """(href, text) of every link, unescaped."""
    return [(unescape(h), unescape(re.sub(r"<[^>]+>", "", t)).strip())
            for h, t in re.findall(r'<a [^>]*?href="([^"]*)"[^>]*>(.*?)</a>', html, re.S)]


def query_of(href):
    return {k: v[0] for k, v in parse_qs(urlsplit(href).query).items()}


def test_home_page_is_arabic_rtl_with_a_search_form(client):
    html = page(client, "/")
    assert '<html lang="ar" dir="rtl">' in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    form = re.search(r'<form [^>]*>', html).group()
    assert 'method="get"' in form and 'action="/"' in form
    box = re.search(r'<input type="search"[^>]*>', html, re.S).group()
    assert 'name="q"' in box and "autofocus" in box
    assert "static/suggest.js" in html and "static/style.css" in html


def test_static_files(client):
    css = client.get("/static/style.css").get_data(as_text=True)
    assert '"Noto Naskh Arabic", "Amiri", "Segoe UI", Tahoma, sans-serif' in css
    assert "white-space: pre-wrap" in css and "mark {" in css
    assert "/api/suggest" not in css and client.get("/static/suggest.js").status_code == 200


def test_results_show_count_marks_and_links(client):
    html = page(client, "/?q=الكتاب")
    assert "٢ نتيجة" in html and " ms)" in html
    assert "<mark>وَالْكِتَابِ</mark>" in html
    hrefs = [h for h, _ in links(html)]
    assert "/doc/vocal?q=%D8%A7%D9%84%D9%83%D8%AA%D8%A7%D8%A8" in hrefs
    assert "https://example.org/vocal?a=1&b=2" in hrefs  # the document's own url
    assert 'value="الكتاب"' in html  # the box keeps the query


def test_pagination_links(client):
    first = links(page(client, "/?q=المدرسة"))
    nexts = [h for h, t in first if t.startswith("التالية")]
    assert [query_of(h) for h in nexts] == [{"q": "المدرسة", "page": "2"}]
    assert not [h for h, t in first if t.endswith("السابقة")]
    assert {t for _, t in first} >= {"٢", "٣"}  # page numbers
    middle = links(page(client, "/?q=المدرسة&page=2"))
    assert [query_of(h) for h, t in middle if t.endswith("السابقة")] == [{"q": "المدرسة"}]
    last = page(client, "/?q=المدرسة&page=3")
    assert "التالية" not in last and last.count('class="hit"') == 5
    assert '<ol class="hits" start="21">' in last  # ranks go on from the previous page


def test_facet_links_add_a_filter_that_can_be_removed(client):
    facet = [h for h, t in links(page(client, "/?q=الكتاب")) if t == "news"]
    assert facet and query_of(facet[0]) == {"q": "الكتاب", "source": "news"}
    filtered = page(client, facet[0])
    assert "١ نتيجة" in filtered and "/doc/news" in filtered
    removes = [h for h, t in links(filtered) if t == "×"]
    assert removes and all(query_of(h) == {"q": "الكتاب"} for h in removes)
    tag = [h for h, t in links(page(client, "/?q=الكتاب")) if t == "علم"]
    assert query_of(tag[0]) == {"q": "الكتاب", "tag": "علم"}


def test_sort_link(client):
    sort = [h for h, t in links(page(client, "/?q=الكتاب&source=news")) if t == "الأحدث"]
    assert query_of(sort[0]) == {"q": "الكتاب", "source": "news", "sort": "date"}
    assert "١ نتيجة" in page(client, sort[0])


def test_did_you_mean_link(client):
    html = page(client, "/?q=الكتلب")  # الكتاب with a typo
    assert "هل تقصد" in html
    assert [query_of(h) for h, t in links(html) if t == "الكتاب"] == [{"q": "الكتاب"}]


def test_latin_layout_note(client):
    html = page(client, "/?q=hgugl")  # العلم typed on a US layout
    assert "فبحثنا عن «العلم»" in html and "/doc/vocal" in html


def test_quoted_question_note(client):
    # No document has these words as one phrase: the page says their words were searched.
    html = page(client, '/?q="العلم في الكتاب"')
    assert "لم نجد العبارة" in html and "فبحثنا عن كلماتها" in html and 'class="hit"' in html
    assert "بلوحة المفاتيح" not in html


def test_empty_state(client):
    html = page(client, "/?q=زرافة")
    assert "لا توجد نتائج" in html and 'class="hit"' not in html


def test_markup_in_documents_and_queries_renders_as_text(client):
    html = page(client, "/?q=غامق")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;<mark>غامق</mark>&lt;/b&gt;" in html
    assert "&lt;em&gt;src&lt;/em&gt;" in html and "&lt;u&gt;وسم&lt;/u&gt;" in html
    for tag in ("<script>alert", "<b>", "<em>", "<u>", "<i>"):
        assert tag not in html
    assert "javascript:" not in html  # such a url is never a link
    echoed = page(client, "/?q=%3Cscript%3Ealert(2)%3C/script%3E")
    assert "<script>alert(2)" not in echoed and "&lt;script&gt;alert(2)" in echoed
    doc = page(client, "/doc/x%3Ci%3Ess?q=غامق")
    assert "&lt;script&gt;" in doc and "<b>" not in doc and 'href="javascript' not in doc


def test_pages_forbid_inline_scripts(client):
    policy = client.get("/?q=الكتاب").headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy


@pytest.mark.parametrize("query, words", [
    ("q=الكتاب&page=x", "رقم الصفحة"),
    ("q=الكتاب&page=0", "رقم الصفحة"),
    ("q=الكتاب&page=999", "رقم الصفحة"),
    ("q=الكتاب&date_from=2015-99-01", "التاريخ"),
    ("q=الكتاب&date_to=2014-01-01&date_from=2015-01-01", "التاريخ"),
    ("q=الكتاب&sort=best", "الترتيب"),
    ("q=" + "ب" * 501, "طويل"),
])
def test_bad_parameters_get_an_arabic_400_page(client, query, words):
    html = page(client, "/?" + query, 400)
    assert '<html lang="ar" dir="rtl">' in html and words in html
    assert 'role="alert"' in html and "Traceback" not in html


def test_document_page(client):
    html = page(client, "/doc/vocal?q=الكتاب")
    assert "<mark>وَالْكِتَابِ</mark>" in html
    assert 'class="text"' in html and "سطر ثان" in html  # whole text; pre-wrap keeps the line break
    assert 'href="https://example.org/vocal?a=1&amp;b=2"' in html
    assert "hadith" in html and "علم" in html and "2001-05-01" in html
    back = [h for h, t in links(html) if "العودة" in t]
    assert [query_of(h) for h in back] == [{"q": "الكتاب"}]


@pytest.mark.parametrize("path, expected", [("/doc/quran:2:255", "آية الكرسي"), ("/doc/sub/a.md", "sub/a.md")])
def test_document_ids_with_colons_and_slashes(client, path, expected):
    assert expected in page(client, path)


def test_hit_links_reach_documents_with_odd_ids(client):
    for query, doc_id in (("الحي", "quran:2:255"), ("الحديقة", "sub/a.md")):
        hrefs = [h for h, _ in links(page(client, f"/?q={query}")) if h.startswith("/doc/")]
        assert hrefs and doc_id in page(client, hrefs[0])


@pytest.mark.parametrize("url", ["/doc/no-such-id", "/no-such-page", "/doc/"])
def test_not_found_pages(client, url):
    html = page(client, url, 404)
    assert '<html lang="ar" dir="rtl">' in html and "Not Found" not in html.split("</h1>")[0]


def test_wrong_method_page(client):
    response = client.post("/")
    assert response.status_code == 405 and response.mimetype == "text/html"
    assert "غير مسموح" in response.get_data(as_text=True)
