"""``plan_capacity``: for N images, the cheapest tier that holds them and the fewest partitions
of it, the replicas, the Vision resources and backfill time, and the monthly cost; past what
one service holds, how many services and what else to do. More images never plan a smaller
service. (design: docs/design.md#capacity-planning)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from indexer.errors import InvalidInputError
from indexer.planning import prices
from indexer.planning.figures import Figure
from indexer.planning.service_limits import (
    BACKFILL_EFFICIENCY,
    BYTES_PER_GB,
    BYTES_PER_TB,
    LARGEST_PARTITION_COUNT,
    MAX_SEARCH_UNITS,
    SLA_REPLICAS_QUERIES,
    SLA_REPLICAS_QUERIES_AND_INDEXING,
    TIERS,
    VISION_F0_RATE,
    VISION_S1_RATE,
    Tier,
)
from indexer.planning.sizing import ImageFootprint, footprint, sizing_figures
from indexer.vector_compression import COMPRESSIONS

DEFAULT_REPLICAS = int(SLA_REPLICAS_QUERIES.value)
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class Fit:
    """What ``partitions`` of a tier hold, and which quota runs out first."""

    tier: Tier
    partitions: int
    images: int
    binding: str  # "vector index quota", "storage", "largest index" or "documents per index"


@dataclass(frozen=True)
class SearchPlan:
    """The search service(s): ``services`` of ``fit.tier`` with ``fit.partitions`` each."""

    fit: Fit
    replicas: int
    services: int  # more than 1 only past what one service holds

    @property
    def search_units(self) -> int:
        return self.fit.partitions * self.replicas * self.services

    @property
    def monthly(self) -> float:
        return self.search_units * prices.SEARCH_UNIT_MONTHLY[self.fit.tier.name].value


@dataclass(frozen=True)
class VisionPlan:
    resources: int
    requests_per_second: float  # per resource (VISION_REQUESTS_PER_SECOND)
    backfill_days_target: float | None  # when the resources were derived from it

    @property
    def images_per_second(self) -> float:
        return self.resources * self.requests_per_second * BACKFILL_EFFICIENCY.value


@dataclass(frozen=True)
class Plan:
    images: int
    compression: str
    footprint: ImageFootprint
    search: SearchPlan
    fits_one_service: bool
    largest_service: Fit  # the most one service holds with these replicas
    per_tier: list[Fit | None]  # the fewest partitions of each tier that hold the images, in TIERS order
    vision: VisionPlan
    new_images_per_month: int
    queries_per_month: int
    figures: list[Figure] = field(default_factory=list)

    @property
    def backfill_seconds(self) -> float:
        return self.images / self.vision.images_per_second

    @property
    def backfill_cost(self) -> float:
        return self.images / 1000 * prices.VISION_IMAGE_PER_1000.value

    @property
    def new_images_monthly(self) -> float:
        return self.new_images_per_month / 1000 * prices.VISION_IMAGE_PER_1000.value

    @property
    def queries_monthly(self) -> float:
        return self.queries_per_month / 1000 * prices.VISION_TEXT_PER_1000.value

    @property
    def monthly(self) -> float:
        return self.search.monthly + self.new_images_monthly + self.queries_monthly


def holds(tier: Tier, partitions: int, image: ImageFootprint) -> Fit:
    """How many images ``partitions`` of ``tier`` hold, and the quota that binds."""
    vector_bytes = partitions * tier.vector_quota_per_partition.value * BYTES_PER_GB
    storage_bytes = partitions * tier.storage_per_partition.value * BYTES_PER_GB
    limits = {
        "vector index quota": math.floor(vector_bytes / image.vector_index),
        "storage": math.floor(storage_bytes / image.storage),
        "documents per index": int(tier.max_documents.value),
    }
    if tier.max_index_size is not None:  # this project keeps every image in one index
        limits["largest index"] = math.floor(tier.max_index_size.value * BYTES_PER_TB / image.storage)
    binding = min(limits, key=lambda name: limits[name])
    return Fit(tier, partitions, limits[binding], binding)


def partition_counts(tier: Tier, replicas: int) -> list[int]:
    """The partition counts ``tier`` allows with ``replicas`` (none if it cannot have them)."""
    if replicas > tier.max_replicas:
        return []
    return [p for p in tier.partition_counts if p * replicas <= MAX_SEARCH_UNITS.value]


def fewest_partitions(tier: Tier, replicas: int, image: ImageFootprint, images: int) -> Fit | None:
    """The fewest partitions of ``tier`` that hold ``images``, or None."""
    for partitions in partition_counts(tier, replicas):
        fit = holds(tier, partitions, image)
        if fit.images >= images:
            return fit
    return None


def largest_service(replicas: int, image: ImageFootprint) -> Fit:
    """The most one service holds: the largest tier at the most partitions ``replicas`` allow."""
    fits = [holds(tier, max(counts), image) for tier in TIERS if (counts := partition_counts(tier, replicas))]
    return max(fits, key=lambda fit: fit.images)


def candidates(replicas: int, image: ImageFootprint) -> list[Fit]:
    """Every tier and partition count ``replicas`` allow, cheapest tier first, fewest partitions
    first, less those a later tier beats: as many images or more for no more money (S3 at the
    partitions its largest index cannot use, say). Dropping them keeps the cost growing."""
    fits = [holds(tier, p, image) for tier in TIERS for p in partition_counts(tier, replicas)]
    return [
        fit
        for i, fit in enumerate(fits)
        if not any(
            later.tier is not fit.tier and later.images >= fit.images and _unit_cost(later) <= _unit_cost(fit)
            for later in fits[i + 1 :]
        )
    ]


def _unit_cost(fit: Fit) -> float:
    """Monthly price of the partitions at one replica (replicas multiply every candidate alike)."""
    return fit.partitions * prices.SEARCH_UNIT_MONTHLY[fit.tier.name].value


def _check(
    images: int, compression: str, replicas: int, vision_resources: int | None, backfill_days: float | None
) -> None:
    if images < 1:
        raise InvalidInputError(f"--images must be a positive number of images, got {images}")
    if compression not in COMPRESSIONS:
        raise InvalidInputError(f"unknown compression {compression!r}: use one of {', '.join(COMPRESSIONS)}")
    if not 1 <= replicas <= max(tier.max_replicas for tier in TIERS):
        raise InvalidInputError(f"--replicas must be 1 to 12, got {replicas}")
    if vision_resources is not None and backfill_days is not None:
        raise InvalidInputError("give --vision-resources or --backfill-days, not both")
    if vision_resources is not None and vision_resources < 1:
        raise InvalidInputError(f"--vision-resources must be at least 1, got {vision_resources}")
    if backfill_days is not None and not backfill_days > 0:
        raise InvalidInputError(f"--backfill-days must be more than 0, got {backfill_days}")


def plan_capacity(
    images: int,
    *,
    compression: str,
    requests_per_second: float,
    replicas: int = DEFAULT_REPLICAS,
    vision_resources: int | None = None,
    backfill_days: float | None = None,
    new_images_per_month: int = 0,
    queries_per_month: int = 0,
) -> Plan:
    """The plan for ``images`` images; InvalidInputError names a bad argument.

    Rule: the cheapest tier (per search unit) that holds the images within its partition and
    search-unit limits, at the fewest partitions that do; a tier's partition count that a later
    tier beats on both images and price is skipped (``candidates``)."""
    _check(images, compression, replicas, vision_resources, backfill_days)
    if new_images_per_month < 0 or queries_per_month < 0:
        raise InvalidInputError("--new-images-per-month and --queries-per-month cannot be negative")
    image = footprint(compression)
    per_tier = [fewest_partitions(tier, replicas, image, images) for tier in TIERS]
    largest = largest_service(replicas, image)
    chosen = next((fit for fit in candidates(replicas, image) if fit.images >= images), None)
    if chosen is not None:
        search = SearchPlan(chosen, replicas, services=1)
    else:  # split over services of the largest kind (docs/design.md#capacity-planning)
        search = SearchPlan(largest, replicas, services=math.ceil(images / largest.images))
    return Plan(
        images=images,
        compression=compression,
        footprint=image,
        search=search,
        fits_one_service=chosen is not None,
        largest_service=largest,
        per_tier=per_tier,
        vision=_vision(images, requests_per_second, vision_resources, backfill_days),
        new_images_per_month=new_images_per_month,
        queries_per_month=queries_per_month,
        figures=_figures(),
    )


def _vision(images: int, requests_per_second: float, resources: int | None, days: float | None) -> VisionPlan:
    if days is None:
        return VisionPlan(resources or 1, requests_per_second, None)
    per_resource = requests_per_second * BACKFILL_EFFICIENCY.value * days * SECONDS_PER_DAY
    return VisionPlan(max(1, math.ceil(images / per_resource)), requests_per_second, days)


def _figures() -> list[Figure]:
    """The figures a plan rests on: every tier's limits and price, then the general ones."""
    tiers = [figure for tier in TIERS for figure in tier.figures()]
    return [
        *tiers,
        *prices.SEARCH_UNIT_MONTHLY.values(),
        MAX_SEARCH_UNITS,
        LARGEST_PARTITION_COUNT,
        SLA_REPLICAS_QUERIES,
        SLA_REPLICAS_QUERIES_AND_INDEXING,
        *sizing_figures(),
        VISION_S1_RATE,
        VISION_F0_RATE,
        BACKFILL_EFFICIENCY,
        prices.VISION_IMAGE_PER_1000,
        prices.VISION_TEXT_PER_1000,
    ]


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The plan as JSON-ready data (``imgsearch plan --json``)."""
    search, vision = plan.search, plan.vision
    return {
        "images": plan.images,
        "compression": plan.compression,
        "bytes_per_image": plan.footprint.to_dict(),
        "search": {
            "tier": search.fit.tier.name,
            "sku": search.fit.tier.sku,
            "partitions": search.fit.partitions,
            "replicas": search.replicas,
            "services": search.services,
            "search_units": search.search_units,
            "holds_images": search.fit.images * search.services,
            "binding_limit": search.fit.binding,
            "fits_one_service": plan.fits_one_service,
            "one_service_holds_at_most": plan.largest_service.images,
        },
        "tiers": [
            {
                "tier": tier.name,
                "vector_quota_gb_per_partition": tier.vector_quota_per_partition.value,
                "storage_gb_per_partition": tier.storage_per_partition.value,
                "partitions": fit.partitions if fit else None,
                "holds_images": fit.images if fit else None,
                "monthly": round(_unit_cost(fit) * search.replicas, 2) if fit else None,
            }
            for tier, fit in zip(TIERS, plan.per_tier, strict=True)
        ],
        "vision": {
            "resources": vision.resources,
            "requests_per_second_per_resource": vision.requests_per_second,
            "efficiency": BACKFILL_EFFICIENCY.value,
            "images_per_second": round(vision.images_per_second, 3),
            "backfill_seconds": round(plan.backfill_seconds),
            "backfill_days_target": vision.backfill_days_target,
        },
        "cost": {
            "currency": prices.CURRENCY,
            "region": prices.REGION,
            "search_monthly": round(search.monthly, 2),
            "new_images_monthly": round(plan.new_images_monthly, 2),
            "queries_monthly": round(plan.queries_monthly, 2),
            "monthly": round(plan.monthly, 2),
            "backfill_one_time": round(plan.backfill_cost, 2),
            "not_included": list(NOT_INCLUDED),
        },
        "sources": [figure.to_dict() for figure in plan.figures],
    }


NOT_INCLUDED = (
    "Function app (Flex Consumption)",
    "storage accounts (images, host)",
    "Log Analytics and Application Insights",
    "Event Grid",
    "private endpoints and DNS zones",
    "data transfer and taxes",
)
