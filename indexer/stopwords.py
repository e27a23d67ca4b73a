"""The Arabic stopword list, normalized when loaded, alef maksura kept.

Normalizing the list means vocalized (مِنْ) and hamza-less (ان) spellings are
caught after text normalization, and the list file can be written naturally.
Words are compared in `indexer.normalize.spelling`, before ى folds into ي:
على (on) is a stopword, علي (the name Ali) is not. A stopword that writers
spell both ways (في and فى) is listed both ways.
"""

from functools import lru_cache
from importlib import resources

from indexer.normalize import spelling, words

STOPWORDS_RESOURCE = "stopwords_ar.txt"


def parse_stopwords(lines) -> frozenset:
    result = set()
    for line in lines:
        line = line.split("#", 1)[0]
        result.update(words(spelling(line)))
    return frozenset(result)


@lru_cache(maxsize=1)
def stopwords() -> frozenset:
    text = resources.files("indexer.data").joinpath(STOPWORDS_RESOURCE).read_text("utf-8")
    return parse_stopwords(text.splitlines())
