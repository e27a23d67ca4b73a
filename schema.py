"""The one definition of the index: fields, their analysis, storage and boosts.

The indexer builds documents from `FIELDS`, the search side parses queries
against `SEARCH_FIELDS` with `FIELD_BOOSTS`; nothing else names fields.

Each of title and text is indexed twice: through the stemmed analyzer (recall:
كتاب finds الكتاب, والكتاب, كتابه) and through the exact analyzer (precision:
exact forms rank higher, and quoted phrases keep their stopwords). The
text is indexed a third time through the root analyzer (Snowball stems,
indexer.roots), a low-boost recall stream: مدرسة finds مدارس, and a
question finds a passage that shares only such a stem with it. The
original text is stored once, on the stemmed field, for snippets.
"""

from whoosh.fields import DATETIME, ID, KEYWORD, STORED, Schema

from indexer.whoosh_analysis import ANALYSIS_VERSION, ArabicTextField

# Field boosts, applied at query time so they can change without a rebuild:
# title above text, exact above stemmed.
FIELD_BOOSTS = {
    "title_exact": 4.0,
    "title": 3.0,
    "text_exact": 1.5,
    "text": 1.0,
    "text_root": 0.5,  # the recall stream (indexer.roots): finds more than it ranks
}

# Analysed fields that a plain query searches.
SEARCH_FIELDS = tuple(FIELD_BOOSTS)
# Which analysed field holds the stored original for snippets and highlights.
STORED_TEXT_OF = {"title_exact": "title", "text_exact": "text", "title": "title", "text": "text",
                  "text_root": "text"}
# Fields with one value (source) or several (tags) that results are counted by.
FACET_FIELDS = ("source", "tags")
# Fields copied into each segment's query file (indexer.query_file), the
# arrays the search side reads: every searched and counted field.
QUERY_FIELDS = SEARCH_FIELDS + FACET_FIELDS
# Fields whose positions the query files keep: the ones the query path reads,
# for phrases (the exact fields, search_app.engine._phrase_plan) and the
# proximity bonus (the stemmed text, engine._proximity). Whoosh keeps
# every field's positions; the stemmed title's are never read.
POSITION_FIELDS = ("title_exact", "text_exact", "text")


def build_schema() -> Schema:
    return Schema(
        id=ID(unique=True, stored=True, sortable=True),
        title=ArabicTextField(stemmed=True, stored=True),
        title_exact=ArabicTextField(stemmed=False),
        text=ArabicTextField(stemmed=True, stored=True),
        text_exact=ArabicTextField(stemmed=False),
        text_root=ArabicTextField(root=True),
        url=STORED(),
        date=DATETIME(stored=True, sortable=True),
        source=ID(stored=True, sortable=True),
        tags=KEYWORD(stored=True, commas=True, scorable=False, lowercase=False),
    )


def document_fields(doc) -> dict:
    """Whoosh field values for one `indexer.records.Document`."""
    fields = {
        "id": doc.id,
        "title": doc.title,
        "title_exact": doc.title,
        "text": doc.text,
        "text_exact": doc.text,
        "text_root": doc.text,
    }
    if doc.url:
        fields["url"] = doc.url
    if doc.date is not None:
        fields["date"] = doc.date
    if doc.source:
        fields["source"] = doc.source
    if doc.tags:
        # KEYWORD with commas=True splits on commas; a comma inside a tag
        # would split it, so it becomes a space.
        fields["tags"] = ",".join(t.replace(",", " ") for t in doc.tags)
    return fields


__all__ = [
    "ANALYSIS_VERSION",
    "FACET_FIELDS",
    "FIELD_BOOSTS",
    "POSITION_FIELDS",
    "QUERY_FIELDS",
    "SEARCH_FIELDS",
    "STORED_TEXT_OF",
    "build_schema",
    "document_fields",
]
