"""gunicorn settings for `arsearch serve` (the one place they live).

`arsearch serve` passes --bind and --workers on top of these.
"""

import os

bind = os.environ.get("ARSEARCH_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("ARSEARCH_WORKERS", "2"))
# Threads (gthread) rather than sync workers: a slow client holds one thread,
# not a whole process, and idle keep-alive connections hold none. The threads
# of a worker share its one SearchEngine. The custom class adds a deadline on
# reading a request and JSON for gunicorn's own errors (see the module).
worker_class = "search_app.gunicorn_worker.ThreadWorker"
threads = int(os.environ.get("ARSEARCH_THREADS", "8"))
timeout = 30
graceful_timeout = 10
# Each worker opens the index itself: Whoosh reads files with seek()+read(),
# and forked workers sharing one open file would move each other's offsets.
preload_app = False
accesslog = os.environ.get("ARSEARCH_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("ARSEARCH_LOG_LEVEL", "info")
# gunicorn 25+ opens a control socket at ~/.gunicorn/gunicorn.ctl by default,
# and a second instance deletes the first one's: arsearch needs none.
control_socket_disable = True


# The table that spreads connections evenly over the workers (gunicorn_worker.py):
# the master hands each new worker a slot and frees it when the worker exits.
def pre_fork(server, worker):
    from search_app.gunicorn_worker import assign_slot

    assign_slot(worker, server.WORKERS.values())


def child_exit(server, worker):
    from search_app.gunicorn_worker import release_slot

    release_slot(worker)
