"""The service limits a plan is held to, each figure with its page and that page's date: Azure AI
Search per tier (for services created today), the SLA's replica counts, Azure AI Vision's rate
limits, and this project's measured backfill efficiency. Read the pages again before relying on
a plan: limits change, and some regions have lower ones (the limits page lists them).
(design: docs/design.md#capacity-planning)
"""

from __future__ import annotations

from dataclasses import dataclass

from indexer.planning.figures import Figure, Source

LIMITS_PAGE = Source(
    "Service limits in Azure AI Search",
    "https://learn.microsoft.com/azure/search/search-limits-quotas-capacity",
    "2026-06-02",
)
CAPACITY_PAGE = Source(
    "Estimate and manage capacity of a search service",
    "https://learn.microsoft.com/azure/search/search-capacity-planning",
    "2026-06-02",
)
VECTOR_SIZE_PAGE = Source(
    "Vector index size and limits",
    "https://learn.microsoft.com/azure/search/vector-search-index-size",
    "2025-11-21",
)
STORAGE_OPTIONS_PAGE = Source(
    "Eliminate optional vector instances from storage",
    "https://learn.microsoft.com/azure/search/vector-search-how-to-storage-options",
    "2025-03-31",
)
VISION_FAQ_PAGE = Source(
    "Azure AI Vision API Frequently Asked Questions",
    "https://learn.microsoft.com/azure/ai-services/computer-vision/faq",
    "2024-02-27",
)
BENCH_RESULTS = Source(
    "bench/RESULTS.md, 8. The CLI's own backfill across one and two Vision resources",
    "bench/RESULTS.md",
    "2026-12-02",
    note="0.930 to 0.938 of resources x R where the stand-in counts as Azure does",
)

# The pages give sizes in GB; the service reports the same quotas in bytes as multiples of 2**30
# (the REST example on the vector index size page: a "2 GB" storage quota is 2147483648 bytes).
BYTES_PER_GB = 2**30
BYTES_PER_TB = 2**40

# The rows for services created after May 17, 2024 (unchanged after February 10, 2025).
_DATED = " (services created after May 17, 2024)"


@dataclass(frozen=True)
class Tier:
    """One pricing tier's limits for a service created today."""

    name: str  # as the limits page names it
    sku: str  # the ARM/Bicep name (searchSku)
    storage_per_partition: Figure  # GB
    vector_quota_per_partition: Figure  # GB
    partition_counts: tuple[int, ...]  # the counts a service of this tier may have
    max_replicas: int
    max_index_size: Figure | None  # TB; None: the index may use the service's whole storage
    max_documents: Figure  # per index

    def figures(self) -> list[Figure]:
        optional = [self.max_index_size] if self.max_index_size else []
        return [self.storage_per_partition, self.vector_quota_per_partition, *optional, self.max_documents]


def _tier(
    name: str,
    sku: str,
    storage_gb: float,
    vector_gb: float,
    *,
    max_documents: float,
    max_index_tb: float | None = None,
    basic: bool = False,
) -> Tier:
    return Tier(
        name=name,
        sku=sku,
        storage_per_partition=Figure(f"{name} storage per partition{_DATED}", storage_gb, "GB", LIMITS_PAGE),
        vector_quota_per_partition=Figure(
            f"{name} vector index quota per partition{_DATED}", vector_gb, "GB", LIMITS_PAGE
        ),
        # Basic: three partitions on services created after April 3, 2024 (limits page); the others
        # divide the index into 12 shards, so 1, 2, 3, 4, 6 or 12 (capacity page's table).
        partition_counts=(1, 2, 3) if basic else (1, 2, 3, 4, 6, 12),
        max_replicas=3 if basic else 12,
        max_index_size=(
            Figure(f"{name} largest single index (several partitions)", max_index_tb, "TB", LIMITS_PAGE)
            if max_index_tb
            else None
        ),
        max_documents=Figure(f"{name} documents per index", max_documents, "documents", LIMITS_PAGE),
    )


# In order of price per search unit (indexer.planning.prices), cheapest first. S3 HD is left out:
# it has no indexers (pull mode) and at most 3 partitions, so S3 holds more for the same price.
TIERS: tuple[Tier, ...] = (
    _tier("Basic", "basic", 15, 5, max_documents=24e9, basic=True),
    _tier("S1", "standard", 160, 35, max_documents=24e9),
    _tier("S2", "standard2", 512, 150, max_documents=24e9, max_index_tb=1.88),
    _tier("S3", "standard3", 1024, 300, max_documents=24e9, max_index_tb=2.34),
    _tier("L1", "storage_optimized_l1", 2048, 150, max_documents=288e9),
    _tier("L2", "storage_optimized_l2", 4096, 300, max_documents=576e9),
)

MAX_SEARCH_UNITS = Figure("search units (partitions x replicas) per service", 36, "SU", LIMITS_PAGE)
SLA_REPLICAS_QUERIES = Figure("replicas for the query SLA", 2, "replicas", LIMITS_PAGE)
SLA_REPLICAS_QUERIES_AND_INDEXING = Figure("replicas for the query and indexing SLA", 3, "replicas", LIMITS_PAGE)
LARGEST_PARTITION_COUNT = Figure(
    "largest partition count of a Standard or Storage Optimized service (1, 2, 3, 4, 6 or 12)",
    12,
    "partitions",
    CAPACITY_PAGE,
)

VISION_S1_RATE = Figure("Vision S1 transactions per second (more on request)", 20, "per second", VISION_FAQ_PAGE)
VISION_F0_RATE = Figure("Vision free tier transactions per minute", 20, "per minute", VISION_FAQ_PAGE)
BACKFILL_EFFICIENCY = Figure("backfill rate achieved / Vision rate limit (measured)", 0.93, "ratio", BENCH_RESULTS)


def tier_named(name: str) -> Tier:
    """The tier called ``name`` (case-insensitive), or KeyError."""
    for tier in TIERS:
        if tier.name.lower() == name.lower():
            return tier
    raise KeyError(name)
