"""Progress on stderr: a bar on a terminal, periodic plain lines otherwise."""

import os
import sys
import time

# Seconds between plain progress lines (tests set 0 to see them at once).
PLAIN_EVERY_SECONDS = float(os.environ.get("ARSEARCH_PROGRESS_SECONDS", "5"))


class _Bar:
    def __init__(self, total, stream):
        from tqdm import tqdm

        self.bar = tqdm(
            total=total, unit="B", unit_scale=True, unit_divisor=1024,
            desc="indexing", file=stream, mininterval=0.2, **_size(stream),
        )
        self.last = 0
        self.records = 0

    def __call__(self, done, report):
        records = report.added + report.replaced + report.deleted + report.skipped
        if done != self.last:
            self.bar.update(done - self.last)
            self.last = done
        if records - self.records >= 500:
            self.records = records
            self.bar.set_postfix(records=records, skipped=report.skipped, refresh=False)

    def close(self):
        self.bar.close()


class _Lines:
    def __init__(self, total, stream):
        self.total = total
        self.stream = stream
        self.started = self.next = time.monotonic()
        self.next += PLAIN_EVERY_SECONDS
        self.done = 0
        self.report = None

    def __call__(self, done, report):
        self.done, self.report = done, report
        now = time.monotonic()
        if now >= self.next:
            self.next = now + PLAIN_EVERY_SECONDS
            self._line(now)

    def _line(self, now):
        report = self.report
        records = report.added + report.replaced + report.deleted + report.skipped
        rate = records / max(now - self.started, 1e-9)
        share = f" of {self.total / 1e6:.1f}" if self.total else ""
        percent = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        print(
            f"indexing: {self.done / 1e6:.1f}{share} MB{percent}, {records} records, "
            f"{rate:.0f} records/s, {report.skipped} skipped",
            file=self.stream, flush=True,
        )

    def close(self):
        pass


def _size(stream) -> dict:
    # A terminal that reports a size of 0x0 (a fresh pty, some CI consoles)
    # would make tqdm hide the bar: fall back to 80x24.
    try:
        size = os.get_terminal_size(stream.fileno())
        return {"ncols": size.columns or 80, "nrows": size.lines or 24}
    except (OSError, ValueError, AttributeError):
        return {"ncols": 80, "nrows": 24}


def make_progress(total_bytes, quiet=False, stream=None):
    """A progress(done_bytes, report) callable with .close(), or None when quiet."""
    stream = stream or sys.stderr
    if quiet:
        return None
    if stream.isatty():
        return _Bar(total_bytes, stream)
    return _Lines(total_bytes, stream)
