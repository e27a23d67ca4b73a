"""Superscript (dagger) alef: both modern spellings must find the Qur'anic word."""

from indexer.analysis import analyze


def exact_forms(text):
    return {t.exact for t in analyze(text)}


def test_modern_spelling_with_full_alef_matches():
    # ٱلْعَٰلَمِينَ is written العالمين today: the dagger alef becomes a full alef.
    assert "العالمين" in exact_forms("ٱلْعَٰلَمِينَ")


def test_modern_spelling_without_alef_matches():
    # ذَٰلِكَ and هَٰذَا are written ذلك and هذا today: the dagger alef is dropped.
    assert "ذلك" in exact_forms("ذَٰلِكَ")
    assert "هذا" in exact_forms("هَٰذَا")


def test_both_spellings_share_one_position_and_offsets():
    tokens = analyze("رَبِّ ٱلْعَٰلَمِينَ")
    alem = [t for t in tokens if t.text == "ٱلْعَٰلَمِينَ"]
    assert {t.exact for t in alem} == {"العلمين", "العالمين"}
    assert {t.position for t in alem} == {1}
    assert {(t.start, t.end) for t in alem} == {(6, 19)}


def test_stems_of_the_full_alef_spelling_match_modern_text():
    quranic = {t.stem for t in analyze("ٱلْعَٰلَمِينَ")}
    modern = {t.stem for t in analyze("العالمين")}
    assert modern <= quranic


def test_no_extra_alef_after_alef_maksura():
    # عَلَىٰ: the dagger over ى only marks its long vowel; no "عليا" is indexed.
    assert exact_forms("عَلَىٰ") == {"علي"}


def test_waw_with_dagger_alef_is_modern_alef():
    # ٱلصَّلَوٰةَ, ٱلزَّكَوٰةَ: Qur'anic waw + dagger alef is written ا today.
    assert "الصلاه" in exact_forms("ٱلصَّلَوٰةَ")
    assert "الزكاه" in exact_forms("وَءَاتُوا۟ ٱلزَّكَوٰةَ")
    assert {t.stem for t in analyze("الصلاة")} <= {t.stem for t in analyze("ٱلصَّلَوٰةَ")}
