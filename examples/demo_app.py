"""A small sample app: quick jobs, slow jobs, a failing one, a chain and a report.

The store comes from ``CONVEYOR_STORE`` (default ``sqlite:///conveyor.db``), so the
same module serves the demo, the CLI and your own experiments::

    export CONVEYOR_STORE=sqlite:///demo.db
    conveyor --app demo_app:app enqueue demo_app.add --args '[1, 2]'
    conveyor --app demo_app:app worker -Q high=3,default=1 --burst
"""

from __future__ import annotations

import time

from conveyor import App, Fixed

app = App()


@app.task
def add(a: int, b: int) -> int:
    """A quick job."""
    return a + b


@app.task(tags=["images"])
def resize_image(name: str, width: int) -> dict[str, object]:
    """A slow job (about 0.2 s of pretend work)."""
    time.sleep(0.2)
    return {"name": name, "width": width, "thumbnail": f"{name}@{width}px.png"}


class CardDeclined(Exception):
    """The payment provider said no."""


@app.task(max_attempts=3, retry=Fixed(0.2), tags=["billing"])
def flaky_charge(order_id: str, cents: int) -> None:
    """A job that always fails: retried twice, 0.2 s apart, then left in the DLQ."""
    raise CardDeclined(f"order {order_id}: card declined for {cents} cents")


@app.task
def fetch(url: str) -> str:
    """First step of the chain: 'download' a page."""
    return f"<html><title>{url}</title><body>conveyor moves jobs along</body></html>"


@app.task
def parse(html: str) -> dict[str, object]:
    """Second step: gets fetch's result as its first argument."""
    title = html.split("<title>", 1)[1].split("</title>", 1)[0]
    body = html.split("<body>", 1)[1].split("</body>", 1)[0]
    return {"title": title, "words": len(body.split())}


@app.task
def store_result(parsed: dict[str, object], label: str) -> str:
    """Last step: gets parse's result, plus its own argument."""
    return f"{label}: {parsed['title']} ({parsed['words']} words)"


@app.task(queue="high", priority=10, tags=["reports"])
def report(title: str) -> str:
    """Runs only after the jobs it depends on have completed."""
    return f"report {title!r} ready"
