"""The WSGI application object for gunicorn: `search_app.wsgi:app`.

The index directory comes from $ARSEARCH_INDEX (set by `arsearch serve`).
"""

from search_app.app import create_app

app = create_app()
