"""``imgsearch plan``: the search tier, partitions, replicas, Vision resources, backfill time and
monthly cost for N images (registered by ``indexer.entrypoints.cli.imgsearch``). An edge: the
arithmetic is ``indexer.planning``; this parses the options and prints the plan, with its sources.
"""

from __future__ import annotations

import json
import re

import typer

from indexer.entrypoints.cli.common import handle_errors, state
from indexer.vector_compression import COMPRESSIONS, DEFAULT_COMPRESSION

_COUNT = re.compile(r"(?P<number>-?\d+(?:\.\d+)?(?:e\d+)?)(?P<suffix>[kmb]?)", re.IGNORECASE)
_SUFFIXES = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9}


def image_count(text: str) -> int:
    """A count as people write one: ``100000000``, ``100_000_000``, ``100,000,000``, ``1e8`` or
    ``100M`` (k, M, B: thousand, million, billion)."""
    match = _COUNT.fullmatch(text.strip().replace(",", "").replace("_", ""))
    if not match:
        raise typer.BadParameter(f"{text!r} is not a number of images (e.g. 100000000, 100M or 1e8)")
    value = float(match["number"]) * _SUFFIXES[match["suffix"].lower()]
    if value != int(value):
        raise typer.BadParameter(f"{text!r} is not a whole number of images")
    return int(value)


def plan_command(
    ctx: typer.Context,
    images: int = typer.Option(
        ...,
        "--images",
        metavar="N",
        parser=image_count,
        help="How many images the index will hold: 100000000, 100M or 1e8.",
    ),
    compression: str | None = typer.Option(
        None,
        "--compression",
        metavar="KIND",
        show_default=False,
        help=f"Vector compression: {', '.join(COMPRESSIONS)} (default: SEARCH_VECTOR_COMPRESSION, else "
        f"{DEFAULT_COMPRESSION}).",
    ),
    vision_resources: int | None = typer.Option(
        None,
        "--vision-resources",
        metavar="K",
        show_default=False,
        help="Vision resources for the backfill (default: 1).",
    ),
    backfill_days: float | None = typer.Option(
        None,
        "--backfill-days",
        metavar="D",
        show_default=False,
        help="Plan the Vision resources that finish the backfill in D days.",
    ),
    replicas: int = typer.Option(
        2, "--replicas", metavar="R", help="Search replicas: 2 for the query SLA, 3 with indexing."
    ),
    new_images_per_month: int = typer.Option(
        0, "--new-images-per-month", metavar="M", help="Images added a month (their Vision cost)."
    ),
    queries_per_month: int = typer.Option(
        0, "--queries-per-month", metavar="Q", help="Text queries a month (their Vision cost)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
) -> None:
    """Plan a deployment for N images: the cheapest Azure AI Search tier and fewest partitions that
    hold them, the replicas, the Vision backfill time (or resources for --backfill-days), and the
    monthly cost, with the page and date of every figure. Estimates: read the sources before buying."""
    from indexer.entrypoints.cli.plan_report import format_plan
    from indexer.planning.plan import plan_capacity, plan_to_dict

    with handle_errors():
        settings = state(ctx).settings
        plan = plan_capacity(
            images,
            compression=compression or settings.search_vector_compression or DEFAULT_COMPRESSION,
            requests_per_second=settings.vision_requests_per_second,
            replicas=replicas,
            vision_resources=vision_resources,
            backfill_days=backfill_days,
            new_images_per_month=new_images_per_month,
            queries_per_month=queries_per_month,
        )
    typer.echo(json.dumps(plan_to_dict(plan), indent=2) if as_json else format_plan(plan))


def register(app: typer.Typer) -> None:
    """Add ``plan`` to the ``imgsearch`` app."""
    app.command("plan")(plan_command)
