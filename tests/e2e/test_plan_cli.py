"""``imgsearch plan``, run as a user runs it (in-process through typer's runner): the text and the
JSON of a plan, a plan past one search service, and the argument errors (exit 2)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def plan_json(run_cli, *args, env=None) -> dict:
    result = run_cli("plan", *args, "--json", env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_text_plan_names_the_service_the_backfill_the_cost_and_the_sources(run_cli) -> None:
    result = run_cli("plan", "--images", "1000000")

    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "Plan for 1,000,000 images, compression none, 2 replicas" in text  # the default
    assert "Search: Basic, 1 partition x 2 replicas = 2 search units, $147.46 a month" in text
    assert "backfill of 1,000,000 images: 14.9 hours" in text
    assert "$100.00 once" in text and "not included: Function app" in text
    assert "https://learn.microsoft.com/azure/search/search-limits-quotas-capacity" in text
    assert "[assumption]" in text


def test_the_json_plan_holds_partitions_replicas_tier_vision_cost_and_sources(run_cli) -> None:
    plan = plan_json(run_cli, "--images", "100000000", "--compression", "binary", "--replicas", "3")

    assert plan["images"] == 100_000_000 and plan["compression"] == "binary"
    search = plan["search"]
    assert (search["tier"], search["partitions"], search["replicas"], search["search_units"]) == ("S1", 6, 3, 18)
    assert search["holds_images"] >= 100_000_000 and search["fits_one_service"] is True
    assert plan["vision"]["resources"] == 1 and plan["vision"]["backfill_seconds"] > 0
    assert plan["cost"]["monthly"] == pytest.approx(18 * 245.28)
    assert plan["cost"]["backfill_one_time"] == pytest.approx(10_000.0)
    assert all(source.get("assumption") or (source["url"] and source["date"]) for source in plan["sources"])


def test_backfill_days_plan_the_resources_at_the_configured_rate(run_cli) -> None:
    plan = plan_json(run_cli, "--images", "10000000", "--backfill-days", "1", env={"VISION_REQUESTS_PER_SECOND": 10})

    vision = plan["vision"]
    assert vision["requests_per_second_per_resource"] == 10
    assert vision["resources"] == 13  # 10,000,000 / (10 x 0.93 x 86,400) = 12.4
    assert vision["backfill_seconds"] <= 86_400


def test_past_one_service_the_plan_says_where_it_ends_and_what_else_to_do(run_cli) -> None:
    result = run_cli("plan", "--images", "5000000000", "--compression", "scalar")

    assert result.exit_code == 0, result.output
    assert "one service holds at most 3,183,029,122 images: L2 at 12 partitions x 2 replicas" in result.stdout
    assert "No single service holds 5,000,000,000 images" in result.stdout
    assert "2 services of L2 x 12 partitions" in result.stdout
    assert "binary compression (--compression binary)" in result.stdout
    assert "scalar compression (--compression scalar)" not in result.stdout  # already scalar


def test_past_one_service_uncompressed_the_plan_names_both_smaller_kinds(run_cli) -> None:
    result = run_cli("plan", "--images", "1000000000", "--compression", "none")

    assert result.exit_code == 0, result.output
    assert "one service holds at most 841,490,457 images" in result.stdout
    assert "scalar compression (--compression scalar): one service holds up to 3,183,029,122 images" in result.stdout
    assert "binary compression (--compression binary): one service holds up to 7,553,320,090 images" in result.stdout


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--images", "0"], "--images must be a positive number"),
        (["--images", "-5"], "--images must be a positive number"),
        (["--images", "10", "--compression", "zip"], "unknown compression 'zip'"),
        (["--images", "10", "--vision-resources", "2", "--backfill-days", "3"], "not both"),
    ],
)
def test_bad_arguments_exit_2_naming_the_problem(run_cli, args, named) -> None:
    result = run_cli("plan", *args)

    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and named in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("written", "images"),
    [("1e8", 100_000_000), ("100M", 100_000_000), ("100,000,000", 100_000_000), ("2.5k", 2_500), ("3B", 3 * 10**9)],
)
def test_the_image_count_may_be_written_as_people_write_it(run_cli, written, images) -> None:
    result = run_cli("plan", "--images", written, "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["images"] == images


@pytest.mark.parametrize("written", ["abc", "1.5", "10 million"])
def test_an_image_count_that_is_not_one_is_a_usage_error_naming_it(run_cli, written) -> None:
    result = run_cli("plan", "--images", written)

    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{written!r} is not" in result.output


def readme_plans() -> list[tuple[str, list[str]]]:
    """The ``imgsearch plan`` commands of the README's "What it costs", each with the lines of
    output it shows ("..." marks lines left out)."""
    section = README.read_text(encoding="utf-8").split("### What it costs", 1)[1].split("\n### ", 1)[0]
    examples: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", section, flags=re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                examples.append((line[2:], []))
            elif line.strip() not in ("", "..."):
                examples[-1][1].append(line)
    return examples


def test_the_readme_shows_three_plans():
    sizes = [shlex.split(command)[3] for command, _ in readme_plans()]
    assert sizes == ["10000", "1000000", "100000000", "100000000"]


@pytest.mark.parametrize(("command", "shown"), readme_plans(), ids=lambda value: str(value)[:40])
def test_the_readmes_plans_print_what_the_readme_shows(run_cli, command, shown) -> None:
    program, *args = shlex.split(command)
    result = run_cli(*args)

    assert program == ".venv/bin/imgsearch" and result.exit_code == 0, result.output
    printed = result.stdout.splitlines()
    assert [line for line in shown if line not in printed] == []
