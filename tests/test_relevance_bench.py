"""bench/devsets.py and bench/relevance.py on tiny fixtures: no corpus, no network."""

import json
import random
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench")]

import devsets  # noqa: E402
import relevance  # noqa: E402


# --- light10 -------------------------------------------------------------------

@pytest.mark.parametrize("word, stem", [
    ("والكتاب", "كتاب"),      # و then ال
    ("المكتبات", "مكتب"),     # ال, then the suffix ات
    ("بالصبر", "صبر"),        # بال
    ("للمطلقات", "مطلق"),     # لل, then ات
    ("مدرسة", "مدرس"),        # final ة normalized to ه, then removed as a suffix
    ("أحمد", "احمد"),         # hamza seat normalized
    ("بِالصَّبْرِ", "صبر"),   # harakat dropped first
    ("ولد", "ولد"),           # و kept: only two letters would remain
    ("به", "به"),             # a suffix is kept when fewer than two letters would remain
])
def test_light10_follows_larkeys_rules(word, stem):
    assert relevance.light10(word) == stem


def test_arabic_baselines_keep_a_diacritized_word_whole():
    # StandardAnalyzer splits بِالصَّبْرِ at every harakah; the Arabic baselines must not.
    tokens = [t.text for t in relevance.make_analyzer("light10")("وَاسْتَعِينُوا بِالصَّبْرِ")]
    assert tokens == ["استعينوا", "صبر"]  # light10 has no وا suffix
    plain = [t.text for t in relevance.make_analyzer("plain")("بِالصَّبْرِ")]
    assert plain != ["بالصبر"]


def test_baseline_query_text_has_no_whoosh_syntax():
    assert relevance.baseline_query_text('"الصبر" AND (الصلاة):') .split() == ["الصبر", "and", "الصلاة"]


# --- metrics wiring ---------------------------------------------------------------

def test_whoosh_baseline_and_metrics_on_a_toy(tmp_path):
    pytest.importorskip("ir_measures")
    docs = [
        {"id": "d1", "title": "", "text": "الصبر مفتاح الفرج"},
        {"id": "d2", "title": "", "text": "الصلاة عماد الدين"},
        {"id": "d3", "title": "الصيام", "text": "كتب عليكم الصيام"},
    ]
    ix = relevance.build_whoosh(tmp_path / "light10", "light10", docs)
    run = relevance.run_whoosh(ix, {"q1": "بالصبر", "q2": "الصيام", "q3": "الزكاة"})
    assert run == {"q1": ["d1"], "q2": ["d3"], "q3": []}
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}}
    figures = relevance.evaluate(qrels, run)
    # q1 right at rank 1; q2 wrong; q3 found nothing but still counts, as 0.
    assert figures["queries"] == 3
    for metric in relevance.METRICS:
        assert figures[metric] == pytest.approx(1 / 3)


def test_evaluate_keeps_the_systems_order():
    pytest.importorskip("ir_measures")
    # The relevant document second: reciprocal rank 1/2 whatever the ids sort like.
    figures = relevance.evaluate({"q": {"a": 1}}, {"q": ["z", "a"]})
    assert figures["MRR@10"] == pytest.approx(0.5)
    assert figures["R@100"] == pytest.approx(1.0)


def test_compare_names_the_best_baseline():
    f = {"arsearch": dict.fromkeys(relevance.METRICS, 0.5),
         "whoosh-plain": dict.fromkeys(relevance.METRICS, 0.2),
         "whoosh-isri": dict.fromkeys(relevance.METRICS, 0.6)}
    c = relevance.compare(f)
    assert c["MAP@10"]["best"] == "whoosh-isri"
    assert c["MAP@10"]["arsearch_minus_best"] == pytest.approx(-0.1)


# --- news known-item ---------------------------------------------------------------

def _article(i, title):
    return {"id": f"n{i}", "title": title, "text": f"نص الخبر رقم {i} عن {title}", "source": "s", "tags": []}


def test_news_splits_index_without_titles_and_skip_ambiguous_titles():
    articles = [
        _article(1, "تونس تفوز على المغرب في كرة القدم"),
        _article(2, "ارتفاع أسعار النفط في الأسواق العالمية"),
        _article(3, "أمطار غزيرة"),                       # two words: too short to drop one
        _article(4, "انطلاق موسم جني الزيتون بصفاقس"),
        _article(5, "انطلاق موسم جني الزيتون بصفاقس"),    # same title twice: no single answer
    ]
    splits = devsets.news_splits(articles, n_queries=10, seed=1)
    title = splits["news-title"]
    assert all(d["title"] == "" for d in title.documents)
    assert len(title.documents) == 5
    assert set(title.queries) == {"n1", "n2"}
    assert title.qrels == {"n1": {"n1": 1}, "n2": {"n2": 1}}
    assert title.queries["n1"] == articles[0]["title"]
    for name in devsets.NEWS_SPLITS:
        assert set(splits[name].queries) <= {"n1", "n2"}
        splits[name].check()
    # Built twice with the same seed: the same queries.
    again = devsets.news_splits(articles, n_queries=10, seed=1)
    assert {n: s.queries for n, s in again.items()} == {n: s.queries for n, s in splits.items()}


def test_drop_word_leaves_one_word_out_never_punctuation():
    words = "المغرب : مهرجان موازين يحتفي بإيقاعات العالم".split()
    for seed in range(30):
        dropped = devsets.drop_word(words, random.Random(seed))
        assert len(dropped) == len(words) - 1
        assert ":" in dropped


def _one_edit(a, b):
    if len(a) == len(b) + 1:
        return any(a[:i] + a[i + 1:] == b for i in range(len(a)))
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    return False


def test_misspell_changes_one_long_word_by_one_edit_keeping_its_first_letter():
    words = "ارتفاع أسعار النفط في الأسواق".split()
    for seed in range(50):
        typo = devsets.misspell(words, random.Random(seed))
        changed = [(a, b) for a, b in zip(words, typo) if a != b]
        assert len(changed) == 1
        before, after = changed[0]
        assert len(before) >= devsets.MIN_TYPO_LETTERS and after[0] == before[0]
        assert _one_edit(before, after)
    assert devsets.misspell(["في", "من"], random.Random(0)) is None


# --- hadith chapters ---------------------------------------------------------------

@pytest.mark.parametrize("heading, query", [
    ("كتاب الطهارة", "الطهارة"),
    ("كتاب الطهارة عن رسول الله صلى الله عليه وسلم", "الطهارة"),   # al-Tirmidhi's suffix
    ("كتاب صفة القيامة والرقائق والورع عن رسول الله صلى الله", "صفة القيامة والرقائق والورع"),
    ("أبواب الوتر", "الوتر"),
    ("بَابُ الْوُضُوءِ", "الوضوء"),
    ("المقدمة", None),            # a part of the book, not a topic
    ("كتاب المقدمة", None),
    ("كتاب", None),
])
def test_heading_query(heading, query):
    assert devsets.heading_query(heading) == query


def test_hadith_split_merges_headings_and_hides_them_from_the_documents():
    def collection(heading, ids):
        return {"chapters": [{"id": 1, "arabic": heading}, {"id": 2, "arabic": "المقدمة"}],
                "hadiths": [{"id": str(i), "chapterId": "1", "arabic": f"حديث في الأضحية {i}"} for i in ids]
                + [{"id": "99", "chapterId": "2", "arabic": "حديث المقدمة"}]}

    split = devsets.hadith_split([("muslim", "sahih-muslim", collection("كتاب الأضاحى", [1, 2])),
                                  ("ibnmajah", "sunan-ibn-majah", collection("كتاب الأضاحي", [3]))]).check()
    assert list(split.queries.values()) == ["الأضاحى"]  # ى / ي: one heading
    assert list(split.qrels.values()) == [{"muslim:1": 1, "muslim:2": 1, "ibnmajah:3": 1}]
    assert len(split.documents) == 5  # the introduction's hadiths are indexed, just not queried
    assert all(d["title"] == "" and d["tags"] == [] for d in split.documents)


# --- questions -------------------------------------------------------------------

def test_questions_file_is_well_formed_and_a_third_is_held_out():
    questions = devsets.read_questions()
    assert len(questions) >= 80
    assert len({q["id"] for q in questions}) == len(questions)
    test = [q for q in questions if q["split"] == "test"]
    assert {q["split"] for q in questions} == {"dev", "test"}
    assert abs(len(test) - len(questions) / 3) <= 1
    sample_ids = {json.loads(line)["id"] for line in open(devsets.SAMPLE, encoding="utf-8") if line.strip()}
    for q in questions:
        assert q["question"].strip() and q["relevant"], q["id"]
        for doc in q["relevant"]:
            assert re.fullmatch(r"quran:\d+:\d+", doc) or doc in sample_ids, (q["id"], doc)
    # Written the way people type: some vocalized, some with a glued proclitic.
    assert sum(bool(re.search("[\u064b-\u0652]", q["question"])) for q in questions) >= 3
    assert sum(bool(re.search(r"(^|\s)(وال|بال)", q["question"])) for q in questions) >= 3


def test_questions_split_adds_the_sample_passages_holding_a_relevant_ayah():
    ayat = [{"id": f"quran:2:{a}", "title": "", "text": "آية"} for a in range(1, 8)]
    ayat += [{"id": "quran:112:1", "title": "", "text": "قل هو الله أحد"}]
    sample = [{"id": "quran:2:3-5", "title": "", "text": "مقطع"},
              {"id": "quran:112", "title": "", "text": "سورة"},
              {"id": "iqd:15", "title": "المشورة", "text": "المشورة"}]
    questions = [{"id": "q1", "split": "dev", "question": "سؤال", "relevant": ["quran:2:4"]},
                 {"id": "q2", "split": "dev", "question": "سؤال", "relevant": ["quran:112:1", "iqd:15"]},
                 {"id": "q3", "split": "test", "question": "سؤال", "relevant": ["quran:2:1"]}]
    dev = devsets.questions_split("questions-dev", questions, ayat, sample)
    assert dev.qrels == {"q1": {"quran:2:4": 1, "quran:2:3-5": 1},
                         "q2": {"quran:112:1": 1, "iqd:15": 1, "quran:112": 1}}
    test = devsets.questions_split("questions-test", questions, ayat, sample)
    assert test.qrels == {"q3": {"quran:2:1": 1}}
