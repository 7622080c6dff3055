"""``indexer.planning``: the bytes per image, the tier and partitions that hold N images, the
Vision backfill, the cost, and that more images never plan a smaller service."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.errors import InvalidInputError
from indexer.planning import prices
from indexer.planning.plan import (
    NOT_INCLUDED,
    fewest_partitions,
    holds,
    largest_service,
    partition_counts,
    plan_capacity,
    plan_to_dict,
)
from indexer.planning.service_limits import BYTES_PER_GB, BYTES_PER_TB, TIERS, tier_named
from indexer.planning.sizing import DIMENSIONS, HNSW_M, footprint, keeps_stored_copy
from indexer.schema import load_schema
from indexer.vector_compression import COMPRESSIONS

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "2023-04-15.json"
TIER_RANK = {tier.name: rank for rank, tier in enumerate(TIERS)}


def plan(images: int, compression: str = "scalar", **options):
    return plan_capacity(images, compression=compression, requests_per_second=20, **options)


# --- bytes per image ------------------------------------------------------------------------


def test_the_sizing_constants_are_the_schemas():
    schema = json.loads(SCHEMA.read_text())
    vector = next(f for f in schema["fields"] if f["name"] == "image_vector")
    hnsw = schema["vectorSearch"]["algorithms"][0]["hnswParameters"]
    assert (vector["dimensions"], hnsw["m"]) == (DIMENSIONS, HNSW_M)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_the_retrievable_copy_is_kept_exactly_when_the_index_made_with_that_compression_stores_it(compression):
    definition = load_schema("2023-04-15").with_compression(compression).definition
    vector = next(f for f in definition["fields"] if f["name"] == "image_vector")
    assert vector["stored"] is keeps_stored_copy(compression)


@pytest.mark.parametrize(
    ("compression", "vector", "originals", "stored"),
    [("none", 4096, 0, 4096), ("scalar", 1024, 4096, 0), ("binary", 128, 4096, 0)],
)
def test_the_footprint_holds_the_quantized_vector_the_graph_and_what_is_kept_on_disk(
    compression, vector, originals, stored
):
    image = footprint(compression)

    assert (image.quantized_vector, image.graph, image.originals, image.stored_copy) == (vector, 80, originals, stored)
    assert image.vector_index == pytest.approx((vector + 80) * 1.10)
    assert image.storage == pytest.approx((vector + 80 + originals + stored + 2048) * 1.10)


def test_compression_shrinks_the_vector_index_more_than_the_storage():
    none, scalar, binary = (footprint(c) for c in ("none", "scalar", "binary"))
    assert none.vector_index > scalar.vector_index > binary.vector_index
    assert none.storage > scalar.storage > binary.storage
    # the originals kept for rescoring stay on disk: storage falls far less than memory
    assert binary.storage / none.storage > 0.5 > binary.vector_index / none.vector_index


# --- what a tier holds ----------------------------------------------------------------------


def test_one_s1_partition_runs_out_of_vector_quota_uncompressed_and_of_storage_compressed():
    s1 = tier_named("S1")
    uncompressed, scalar = holds(s1, 1, footprint("none")), holds(s1, 1, footprint("scalar"))

    assert uncompressed.binding == "vector index quota"
    assert uncompressed.images == math.floor(35 * BYTES_PER_GB / footprint("none").vector_index)
    assert scalar.binding == "storage"
    assert scalar.images == math.floor(160 * BYTES_PER_GB / footprint("scalar").storage)


def test_s3_with_every_partition_is_held_back_by_its_largest_single_index():
    fit = holds(tier_named("S3"), 12, footprint("binary"))
    assert fit.binding == "largest index"
    assert fit.images == math.floor(2.34 * BYTES_PER_TB / footprint("binary").storage)


def test_partition_counts_follow_the_tier_and_the_36_search_units():
    basic, s1 = tier_named("Basic"), tier_named("S1")
    assert partition_counts(basic, 2) == [1, 2, 3]
    assert partition_counts(basic, 4) == []  # Basic has at most 3 replicas
    assert partition_counts(s1, 3) == [1, 2, 3, 4, 6, 12]
    assert partition_counts(s1, 4) == [1, 2, 3, 4, 6]  # 12 x 4 = 48 > 36
    assert partition_counts(s1, 12) == [1, 2, 3]


def test_the_partitions_are_rounded_up_to_a_count_the_tier_allows():
    s1, image = tier_named("S1"), footprint("scalar")
    five = holds(s1, 5, image).images
    assert fewest_partitions(s1, 2, image, five).partitions == 6  # 5 partitions do not exist


# --- the plan --------------------------------------------------------------------------------


def test_small_libraries_get_one_basic_partition_with_the_sla_replicas():
    chosen = plan(10_000)
    assert (chosen.search.fit.tier.name, chosen.search.fit.partitions, chosen.search.replicas) == ("Basic", 1, 2)
    assert chosen.search.monthly == pytest.approx(2 * prices.SEARCH_UNIT_MONTHLY["Basic"].value)


def test_the_first_tier_that_holds_the_images_is_chosen_at_its_fewest_partitions():
    chosen = plan(100_000_000, "scalar")
    assert (chosen.search.fit.tier.name, chosen.search.fit.partitions) == ("S1", 6)
    assert chosen.per_tier[0] is None  # Basic's three partitions hold too few
    assert chosen.search.fit.images >= 100_000_000


def test_replicas_override_the_default_and_price_every_search_unit():
    chosen = plan(1_000_000, replicas=3)
    assert chosen.search.search_units == 3
    assert chosen.search.monthly == pytest.approx(3 * prices.SEARCH_UNIT_MONTHLY["Basic"].value)
    assert plan(1_000_000, replicas=4).search.fit.tier.name == "S1"  # Basic has at most 3 replicas


def test_past_one_service_the_plan_splits_over_services_of_the_largest_kind():
    largest = largest_service(2, footprint("scalar"))
    beyond = plan(largest.images + 1, "scalar")

    assert (largest.tier.name, largest.partitions) == ("L2", 12)
    assert not beyond.fits_one_service and beyond.search.services == 2
    assert plan(largest.images, "scalar").fits_one_service
    assert plan_to_dict(beyond)["search"]["fits_one_service"] is False


def test_the_backfill_runs_at_resources_times_rate_times_the_measured_efficiency():
    one, three = plan(1_000_000), plan(1_000_000, vision_resources=3)
    assert one.backfill_seconds == pytest.approx(1_000_000 / (20 * 0.93))
    assert three.backfill_seconds == pytest.approx(one.backfill_seconds / 3)


@pytest.mark.parametrize("days", [0.5, 1, 7, 30])
def test_backfill_days_plan_the_fewest_resources_that_finish_in_time(days):
    chosen = plan(100_000_000, backfill_days=days)
    resources = chosen.vision.resources
    assert chosen.backfill_seconds <= days * 86_400
    assert resources == 1 or plan(100_000_000, vision_resources=resources - 1).backfill_seconds > days * 86_400


def test_the_monthly_cost_adds_new_images_and_queries_and_the_backfill_is_once():
    chosen = plan(1_000_000, new_images_per_month=20_000, queries_per_month=50_000)
    assert chosen.backfill_cost == pytest.approx(1_000 * prices.VISION_IMAGE_PER_1000.value)
    assert chosen.monthly == pytest.approx(
        chosen.search.monthly + 20 * prices.VISION_IMAGE_PER_1000.value + 50 * prices.VISION_TEXT_PER_1000.value
    )


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (dict(images=0), "--images"),
        (dict(images=-3), "--images"),
        (dict(compression="zip"), "'zip'"),
        (dict(vision_resources=2, backfill_days=3), "not both"),
        (dict(replicas=0), "--replicas"),
        (dict(replicas=13), "--replicas"),
        (dict(vision_resources=0), "--vision-resources"),
        (dict(backfill_days=0), "--backfill-days"),
    ],
)
def test_bad_arguments_are_refused_with_a_message_naming_them(arguments, named):
    arguments = {"images": 1_000, "compression": "scalar", **arguments}
    with pytest.raises(InvalidInputError, match=re.escape(named)):
        plan_capacity(requests_per_second=20, **arguments)


# --- more images never plan a smaller service ---------------------------------------------


def size(chosen) -> tuple[int, int, int]:
    """The order a plan grows in: services, then tier, then partitions."""
    return (chosen.search.services, TIER_RANK[chosen.search.fit.tier.name], chosen.search.fit.partitions)


def sweep(compression: str, replicas: int) -> list[int]:
    """Image counts from 1 to past one service, with every capacity boundary and its neighbours."""
    image = footprint(compression)
    edges = {holds(tier, partitions, image).images for tier in TIERS for partitions in partition_counts(tier, replicas)}
    edges.add(largest_service(replicas, image).images)
    geometric = {round(10 ** (k / 8)) for k in range(0, 8 * 10 + 1)}
    return sorted({n for e in edges for n in (e - 1, e, e + 1) if n > 0} | geometric)


@pytest.mark.parametrize("replicas", [1, 2, 3, 4, 12])
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_more_images_never_plan_a_smaller_service_nor_a_lower_cost(compression, replicas):
    plans = [plan(n, compression, replicas=replicas) for n in sweep(compression, replicas)]
    for smaller, larger in zip(plans, plans[1:], strict=False):
        assert size(larger) >= size(smaller), (smaller.images, larger.images)
        assert larger.search.monthly >= smaller.search.monthly - 1e-9, (smaller.images, larger.images)
        assert larger.search.fit.images * larger.search.services >= larger.images


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=10**11),
    st.integers(min_value=1, max_value=10**11),
    st.sampled_from(COMPRESSIONS),
)
def test_the_plan_grows_with_the_images_for_any_two_counts(a, b, compression):
    smaller, larger = plan(min(a, b), compression), plan(max(a, b), compression)
    assert size(larger) >= size(smaller)
    assert larger.search.monthly >= smaller.search.monthly - 1e-9


# --- figures and sources --------------------------------------------------------------------


def test_every_figure_has_a_page_and_a_date_or_is_marked_an_assumption():
    figures = plan(1_000).figures
    assumptions = {f.name for f in figures if f.is_assumption}
    assert assumptions == {
        "metadata fields with their filter and search structures, per image",
        "Vision S1 multimodal text embeddings, per 1,000 queries (taken as the image price)",
    }
    for figure in figures:
        if figure.source is not None:
            assert figure.source.url and re.fullmatch(r"\d{4}-\d{2}-\d{2}", figure.source.date), figure.name
    assert all(entry.get("assumption") or entry["url"] for entry in plan_to_dict(plan(1_000))["sources"])


def test_every_tier_has_a_price_and_the_tiers_are_listed_cheapest_first():
    monthly = [prices.SEARCH_UNIT_MONTHLY[tier.name].value for tier in TIERS]
    assert monthly == sorted(monthly)
    assert [tier.name for tier in TIERS] == ["Basic", "S1", "S2", "S3", "L1", "L2"]


# --- the JSON (imgsearch plan --json) -------------------------------------------------------


@pytest.mark.parametrize(
    ("images", "compression", "options"),
    [
        (100_000_000, "scalar", {"backfill_days": 7, "new_images_per_month": 5_000, "queries_per_month": 9_000}),
        (10_000_000_000, "none", {"replicas": 3, "vision_resources": 4}),
    ],
)
def test_the_json_says_what_the_plan_holds_key_by_key(images, compression, options):
    chosen = plan(images, compression, **options)
    data = json.loads(json.dumps(plan_to_dict(chosen)))  # JSON-ready: survives a round trip
    search, vision, image = chosen.search, chosen.vision, chosen.footprint

    assert (data["images"], data["compression"]) == (images, compression)
    assert data["bytes_per_image"] == {
        "quantized_vector": image.quantized_vector,
        "hnsw_graph": image.graph,
        "originals_for_rescoring": image.originals,
        "stored_copy": image.stored_copy,
        "fields": image.fields,
        "deleted_documents_ratio": 0.1,
        "vector_index": round(image.vector_index),
        "storage": round(image.storage),
    }
    assert data["bytes_per_image"]["quantized_vector"] == DIMENSIONS * {"none": 4, "scalar": 1}[compression]
    assert data["search"] == {
        "tier": search.fit.tier.name,
        "sku": search.fit.tier.sku,
        "partitions": search.fit.partitions,
        "replicas": search.replicas,
        "services": search.services,
        "search_units": search.fit.partitions * search.replicas * search.services,
        "holds_images": search.fit.images * search.services,
        "binding_limit": search.fit.binding,
        "fits_one_service": search.services == 1,
        "one_service_holds_at_most": chosen.largest_service.images,
    }
    assert data["search"]["holds_images"] >= images
    assert [row["tier"] for row in data["tiers"]] == [tier.name for tier in TIERS]
    for row, tier, fit in zip(data["tiers"], TIERS, chosen.per_tier, strict=True):
        assert row["vector_quota_gb_per_partition"] == tier.vector_quota_per_partition.value
        assert row["storage_gb_per_partition"] == tier.storage_per_partition.value
        if fit is None:
            assert (row["partitions"], row["holds_images"], row["monthly"]) == (None, None, None)
        else:
            monthly = fit.partitions * prices.SEARCH_UNIT_MONTHLY[tier.name].value * search.replicas
            assert (row["partitions"], row["holds_images"]) == (fit.partitions, fit.images)
            assert row["monthly"] == pytest.approx(monthly, abs=0.005)
    assert data["vision"] == {
        "resources": vision.resources,
        "requests_per_second_per_resource": 20,
        "efficiency": 0.93,
        "images_per_second": pytest.approx(vision.resources * 20 * 0.93, abs=0.0005),
        "backfill_seconds": round(images / (vision.resources * 20 * 0.93)),
        "backfill_days_target": options.get("backfill_days"),
    }
    per_1000 = prices.VISION_IMAGE_PER_1000.value
    new_images = options.get("new_images_per_month", 0) / 1000 * per_1000
    queries = options.get("queries_per_month", 0) / 1000 * prices.VISION_TEXT_PER_1000.value
    assert data["cost"] == {
        "currency": "USD",
        "region": prices.REGION,
        "search_monthly": pytest.approx(search.search_units * prices.SEARCH_UNIT_MONTHLY[search.fit.tier.name].value),
        "new_images_monthly": pytest.approx(new_images, abs=0.005),
        "queries_monthly": pytest.approx(queries, abs=0.005),
        "monthly": pytest.approx(search.monthly + new_images + queries, abs=0.01),
        "backfill_one_time": pytest.approx(images / 1000 * per_1000, abs=0.005),
        "not_included": list(NOT_INCLUDED),
    }
    assert "Function app (Flex Consumption)" in data["cost"]["not_included"]
    assert data["sources"] == [figure.to_dict() for figure in chosen.figures] and data["sources"]


# --- arguments a plan refuses, and its edges --------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"compression": "zip"}, "unknown compression 'zip': use one of none, scalar, binary"),
        ({"vision_resources": 2, "backfill_days": 3}, "give --vision-resources or --backfill-days, not both"),
        ({"vision_resources": 0}, "--vision-resources"),
        ({"new_images_per_month": -1}, "--new-images-per-month and --queries-per-month cannot be negative"),
        ({"queries_per_month": -1}, "--new-images-per-month and --queries-per-month cannot be negative"),
    ],
)
def test_each_argument_a_plan_cannot_use_is_named(options, message):
    arguments = {"compression": "scalar", **options}
    with pytest.raises(InvalidInputError) as caught:
        plan_capacity(1_000, requests_per_second=20, **arguments)
    assert message in str(caught.value)


def test_one_vision_resource_and_no_monthly_traffic_are_the_defaults():
    chosen = plan(1_000, vision_resources=1)
    assert chosen.vision.resources == 1 and chosen.vision.backfill_days_target is None
    assert (chosen.new_images_per_month, chosen.queries_per_month) == (0, 0)
    assert chosen.monthly == chosen.search.monthly


def test_a_backfill_that_one_resource_finishes_early_still_plans_one():
    chosen = plan(10, backfill_days=30)
    assert chosen.vision.resources == 1 and chosen.vision.backfill_days_target == 30


def test_exactly_as_many_images_as_a_partition_count_holds_fit_in_it():
    one = holds(tier_named("Basic"), 1, footprint("none"))
    assert plan(one.images, "none").search.fit.partitions == 1
    assert (
        plan(one.images + 1, "none").search.fit.partitions > 1
        or plan(one.images + 1, "none").search.fit.tier.name != "Basic"
    )
