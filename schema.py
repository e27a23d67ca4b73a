"""The index schema: which fields exist and how each is analysed, stored and boosted.

Filled in by the indexer issue; the analysis chain it will use is in
`indexer.whoosh_analysis`.
"""
