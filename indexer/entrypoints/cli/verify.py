"""``imgsearch verify``: prove a deployment end to end (registered by
``indexer.entrypoints.cli.imgsearch``). An edge: the stages are ``indexer.verify``; this prints
each as it ends, the outcome, and exits with the code of the failure."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from indexer.entrypoints.cli.common import handle_errors, state


def verify_command(
    ctx: typer.Context,
    image: Path | None = typer.Option(
        None, "--image", metavar="FILE", help="The probe image to upload (default: samples/cat.jpg)."
    ),
    text: str | None = typer.Option(None, "--text", help="The text that must find the probe (default: 'a cat')."),
    timeout: float | None = typer.Option(
        None, "--timeout", min=1.0, help="Seconds each stage may take, an indexer run excepted (default: 60)."
    ),
    indexer_timeout: float | None = typer.Option(
        None, "--indexer-timeout", min=1.0, help="Pull mode: seconds one indexer run may take (default: 600)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the stages and the outcome as JSON."),
) -> None:
    """Prove a deployment: upload a probe image (under imgsearch-verify/), find it through the
    Function's /api/search and through the search service's vectorizer (pull mode: after an
    indexer run), delete it and see it leave the index. The probe is removed whatever happens;
    a failure names the stage and the service (exit 1, or 2 for a setting or a refused key).
    Default probe: samples/cat.jpg."""
    from indexer.verify import VerifyOptions, check_settings, verify

    def show(stage) -> None:  # stage: indexer.verify.StageResult
        if not as_json:
            typer.echo(f"{'ok  ' if stage.ok else 'FAIL'} {stage.name:<11} {stage.seconds:6.1f} s  {stage.detail}")

    with handle_errors():
        settings = state(ctx).settings
        defaults = VerifyOptions()
        options = VerifyOptions(
            sample=image or defaults.sample,
            query=text or defaults.query,
            stage_timeout=timeout or defaults.stage_timeout,
            indexer_timeout=indexer_timeout or defaults.indexer_timeout,
        )
        check_settings(settings, options)  # before the first line says what is verified
        if not as_json:
            typer.echo(
                f"verifying {settings.ingestion_mode} mode: {settings.search_endpoint}, index "
                f"{settings.search_index_name}, container {settings.images_container}"
            )
        report = verify(settings, options, on_stage=show)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for note in report.cleanup:
            typer.echo(f"cleanup: {note}")
    if report.failure is not None:
        typer.echo(f"error: {report.failure}", err=True)
        raise typer.Exit(report.exit_code)
    if not as_json:
        total = sum(stage.seconds for stage in report.stages)
        typer.echo(f"verified: every stage passed in {total:.1f} s; the probe is removed")


def register(app: typer.Typer) -> None:
    """Add ``verify`` to the ``imgsearch`` app."""
    app.command("verify")(verify_command)
