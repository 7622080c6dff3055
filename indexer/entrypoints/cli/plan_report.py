"""The text ``imgsearch plan`` prints: the bytes per image, the search service with every tier's
fewest partitions, the Vision backfill, the cost, what one service can hold and, past it, the
options; then every figure with its page and date (assumptions marked)."""

from __future__ import annotations

from indexer.planning import prices
from indexer.planning.figures import Source
from indexer.planning.plan import NOT_INCLUDED, Plan, SearchPlan, largest_service
from indexer.planning.service_limits import (
    BACKFILL_EFFICIENCY,
    BYTES_PER_GB,
    MAX_SEARCH_UNITS,
    SLA_REPLICAS_QUERIES,
    SLA_REPLICAS_QUERIES_AND_INDEXING,
    TIERS,
    VISION_F0_RATE,
    VISION_S1_RATE,
)
from indexer.planning.sizing import DELETED_DOCUMENTS_RATIO, HNSW_M, footprint
from indexer.vector_compression import COMPRESSIONS


def format_plan(plan: Plan) -> str:
    """The whole plan as lines of text."""
    return "\n".join(
        [
            f"Plan for {plan.images:,} images, compression {plan.compression}, {plan.search.replicas} replicas "
            "(estimates: the figures and their sources are listed at the end)",
            "",
            *_per_image(plan),
            "",
            *_search(plan),
            "",
            *_vision(plan),
            "",
            *_cost(plan),
            "",
            *_sources(plan),
        ]
    )


def _per_image(plan: Plan) -> list[str]:
    image = plan.footprint
    kinds = {"none": "float32", "scalar": "int8", "binary": "1-bit"}
    stored = f" + {image.stored_copy:,} B retrievable copy (stored: true)" if image.stored_copy else ""
    originals = f" + {image.originals:,} B originals for rescoring" if image.originals else ""
    return [
        f"Per image: {image.vector_index:,.0f} B of vector index (memory), {image.storage:,.0f} B of storage (disk)",
        f"  vector index: {image.quantized_vector:,} B {kinds[plan.compression]} vector"
        f" + {image.graph} B HNSW graph (m={HNSW_M})",
        f"  storage: the vector index{originals}{stored} + {image.fields:,} B metadata fields (assumption)",
        f"  both x {1 + DELETED_DOCUMENTS_RATIO.value:.2f} for deleted documents not yet reclaimed",
        f"  {plan.images:,} images: {_gb(plan.images * image.vector_index)} of vector index, "
        f"{_gb(plan.images * image.storage)} of storage",
    ]


def _search(plan: Plan) -> list[str]:
    search = plan.search
    largest = plan.largest_service
    refs = _references(plan)
    limits = refs[TIERS[0].storage_per_partition.source]
    priced = refs[prices.SEARCH_UNIT_MONTHLY[TIERS[0].name].source]
    lines = [
        f"Search: {_service(search)}, ${search.monthly:,.2f} a month",
        f"  holds {search.fit.images * search.services:,} images ({search.fit.binding} runs out first)",
        "  rule: the cheapest tier per search unit that holds them, at the fewest partitions that do",
        f"  {'tier':<6} {'vector/partition':>17} {'storage/partition':>18} {'partitions':>10} {'holds images':>15} "
        f"{'a month':>12}",
        f"  {'':<6} {f'[{limits}]':>17} {f'[{limits}]':>18} {'':>10} {'':>15} {f'[{priced}]':>12}",
    ]
    for tier, fit in zip(TIERS, plan.per_tier, strict=True):
        sizes = f"{_size(tier.vector_quota_per_partition.value):>17} {_size(tier.storage_per_partition.value):>18}"
        if fit is None:
            lines.append(f"  {tier.name:<6} {sizes} {'-':>10} {'not all':>15}")
            continue
        monthly = fit.partitions * search.replicas * prices.SEARCH_UNIT_MONTHLY[tier.name].value
        chosen = ""
        if plan.fits_one_service and tier is search.fit.tier:
            same = fit.partitions == search.fit.partitions
            chosen = "  <- plan" if same else f"  <- plan: {search.fit.partitions} partitions"
        lines.append(
            f"  {tier.name:<6} {sizes} {fit.partitions:>10} {fit.images:>15,} {f'${monthly:,.2f}':>12}{chosen}"
        )
    lines.extend(_cheaper_now(plan))
    lines.append(
        f"  replicas: {search.replicas} (--replicas); the SLA needs {SLA_REPLICAS_QUERIES.value:.0f} for queries, "
        f"{SLA_REPLICAS_QUERIES_AND_INDEXING.value:.0f} for queries and indexing [{limits}]"
    )
    lines.append(
        f"  one service holds at most {largest.images:,} images: {largest.tier.name} at {largest.partitions} "
        f"partitions x {search.replicas} replicas "
        f"(partitions x replicas <= {MAX_SEARCH_UNITS.value:.0f} search units [{limits}])"
    )
    if not plan.fits_one_service:
        lines.extend(_beyond_one_service(plan))
    return lines


def _cheaper_now(plan: Plan) -> list[str]:
    """A larger tier that costs less for exactly these images (it leaves less room to grow)."""
    if not plan.fits_one_service:
        return []
    costs = [(fit.partitions * prices.SEARCH_UNIT_MONTHLY[fit.tier.name].value, fit) for fit in plan.per_tier if fit]
    cheapest_cost, cheapest = min(costs, key=lambda pair: pair[0])
    if cheapest_cost * plan.search.replicas >= plan.search.monthly - 0.005:
        return []
    return [
        f"  cheaper for exactly this many: {cheapest.tier.name} x {cheapest.partitions} "
        f"(${cheapest_cost * plan.search.replicas:,.2f} a month), with less room to grow "
        "(docs/design.md#capacity-planning)"
    ]


def _beyond_one_service(plan: Plan) -> list[str]:
    search = plan.search
    lines = [
        f"  No single service holds {plan.images:,} images. Options:",
        f"  - split the images by container over {search.services} services of {search.fit.tier.name} x "
        f"{search.fit.partitions} partitions (the cost above); this project queries one index, so each "
        "service is its own deployment and an app queries each and merges the results",
    ]
    # Each smaller kind, with what it costs in recall (bench/RESULTS.md, benchmark 10).
    recall = {"scalar": "near-ties swapped in the top 10", "binary": "much of the exact top 10 lost"}
    for kind in COMPRESSIONS[COMPRESSIONS.index(plan.compression) + 1 :]:
        most = largest_service(search.replicas, footprint(kind)).images
        lines.append(
            f"  - {kind} compression (--compression {kind}): one service holds up to {most:,} images, at a cost "
            f"in recall ({recall[kind]}; bench/RESULTS.md, benchmark 10)"
        )
    lines.append(
        "  - rescoreStorageMethod discardOriginals (binary only, a preview API) would drop the originals kept "
        "for rescoring; this project keeps them"
    )
    return lines


def _service(search: SearchPlan) -> str:
    services = f"{search.services} services of " if search.services > 1 else ""
    partitions = f"{search.fit.partitions} partition{'s' if search.fit.partitions > 1 else ''}"
    units = f"{search.search_units} search units"
    return f"{services}{search.fit.tier.name}, {partitions} x {search.replicas} replicas = {units}"


def _vision(plan: Plan) -> list[str]:
    vision = plan.vision
    resources = f"{vision.resources} resource{'s' if vision.resources > 1 else ''}"
    target = f" (the fewest that finish in {vision.backfill_days_target:g} days)" if vision.backfill_days_target else ""
    return [
        f"Vision: {resources}{target} x {vision.requests_per_second:g} requests/s (VISION_REQUESTS_PER_SECOND) "
        f"x {BACKFILL_EFFICIENCY.value} measured = {vision.images_per_second:,.1f} images/s",
        f"  backfill of {plan.images:,} images: {_duration(plan.backfill_seconds)}",
        f"  S1 allows {VISION_S1_RATE.value:.0f} transactions a second per resource (more on request), "
        f"the free tier {VISION_F0_RATE.value:.0f} a minute",
    ]


def _cost(plan: Plan) -> list[str]:
    lines = [f"Cost ({prices.CURRENCY}, {prices.REGION}; prices vary by region and change):"]
    lines.append(f"  search        {_usd(plan.search.monthly)} a month")
    if plan.new_images_per_month:
        lines.append(f"  new images    {_usd(plan.new_images_monthly)} a month ({plan.new_images_per_month:,} images)")
    if plan.queries_per_month:
        lines.append(f"  text queries  {_usd(plan.queries_monthly)} a month ({plan.queries_per_month:,} queries)")
    lines.append(f"  total         {_usd(plan.monthly)} a month")
    lines.append(
        f"  backfill      {_usd(plan.backfill_cost)} once ({plan.images:,} images x "
        f"${prices.VISION_IMAGE_PER_1000.value:.2f} per 1,000)"
    )
    lines.append(f"  not included: {', '.join(NOT_INCLUDED)}")
    return lines


def _references(plan: Plan) -> dict[Source | None, str]:
    """A number for each page the plan's figures come from, in order of first use."""
    numbers: dict[Source | None, str] = {None: "assumption"}
    for figure in plan.figures:
        if figure.source not in numbers:
            numbers[figure.source] = str(len(numbers))
    return numbers


def _sources(plan: Plan) -> list[str]:
    refs = _references(plan)
    shown = [f for tier in TIERS for f in (tier.storage_per_partition, tier.vector_quota_per_partition)]
    in_table = {id(f) for f in [*shown, *prices.SEARCH_UNIT_MONTHLY.values()]}
    lines = ["Figures (besides the table's):"]
    for figure in plan.figures:
        if id(figure) not in in_table:
            lines.append(f"  {figure.name}: {_number(figure.value)} {figure.unit} [{refs[figure.source]}]")
    lines.append("Sources (the page, the date it carries):")
    for source, number in refs.items():
        if source is not None:
            note = f"; {source.note}" if source.note else ""
            lines.append(f"  [{number}] {source.title} ({source.date}{note}): {source.url}")
    return lines


def _number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:g}"


def _size(gb: float) -> str:
    return f"{gb / 1024:g} TB" if gb >= 1024 else f"{gb:g} GB"


def _usd(amount: float) -> str:
    return f"${amount:,.2f}".rjust(14)


def _gb(size: float) -> str:
    return f"{size / BYTES_PER_GB:,.2f} GB"


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} minutes"
    if seconds < 2 * 86_400:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 86_400:,.1f} days"
