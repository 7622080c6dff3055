"""Every price a plan uses, in one place: USD, pay-as-you-go, region East US, each with the page
it belongs to and the date it was read. Prices vary by region and change; the plan says so.
(design: docs/design.md#capacity-planning)
"""

from __future__ import annotations

from indexer.planning.figures import Figure, Source

CURRENCY = "USD"
REGION = "East US"
HOURS_PER_MONTH = 730  # the month Azure's pricing pages and calculator use

SEARCH_PRICING = Source(
    "Azure AI Search pricing",
    "https://azure.microsoft.com/pricing/details/search/",
    "2026-12-07",
    note=(
        "read that day from public copies of this page and of pricing-calculator estimates for East US, "
        "not from the live page (offline); check it before you buy"
    ),
)
VISION_PRICING = Source(
    "Azure AI Vision pricing",
    "https://azure.microsoft.com/pricing/details/cognitive-services/computer-vision/",
    "2026-12-07",
    note=(
        "read that day from a public cost estimate quoting this page (S1 multimodal image embeddings), "
        "not from the live page"
    ),
)

# Per search unit (one partition or one replica) for a 730-hour month.
SEARCH_UNIT_MONTHLY: dict[str, Figure] = {
    "Basic": Figure("Basic, per search unit per month", 73.73, CURRENCY, SEARCH_PRICING),
    "S1": Figure("S1, per search unit per month", 245.28, CURRENCY, SEARCH_PRICING),
    "S2": Figure("S2, per search unit per month", 981.12, CURRENCY, SEARCH_PRICING),
    "S3": Figure("S3, per search unit per month", 1962.24, CURRENCY, SEARCH_PRICING),
    "L1": Figure("L1, per search unit per month", 2802.47, CURRENCY, SEARCH_PRICING),
    "L2": Figure("L2, per search unit per month", 5604.21, CURRENCY, SEARCH_PRICING),
}

# One image is one transaction (README, "What it costs").
VISION_IMAGE_PER_1000 = Figure(
    "Vision S1 multimodal image embeddings, per 1,000 images", 0.10, CURRENCY, VISION_PRICING
)
# A text query is one transaction too; its own price was not found in any copy of the page.
VISION_TEXT_PER_1000 = Figure(
    "Vision S1 multimodal text embeddings, per 1,000 queries (taken as the image price)", 0.10, CURRENCY, None
)
