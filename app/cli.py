"""`grin`: the operator's command line (service side).

Each command prints one line on bad input and exits 2, never a traceback.
"""

from __future__ import annotations

import typer

cli = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="GRIN unlearning service.")


@cli.command()
def migrate() -> None:
    """Bring the ledger schema to the latest revision (`alembic upgrade head`)."""
    from app.core.config import get_settings
    from app.core.db import migrate as run_migrations

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    run_migrations(settings)
    typer.echo(f"ledger migrated ({settings.database_url.split('://', 1)[0]})")


@cli.command()
def demo(url: str = typer.Option("http://127.0.0.1:8000", help="Base URL of the running API")) -> None:
    """Check that the service answers and say where to look next."""
    import httpx

    try:
        ready = httpx.get(f"{url}/readyz", timeout=10)
    except httpx.HTTPError as exc:
        typer.echo(f"error: the API at {url} does not answer: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"readyz: {ready.status_code} {ready.text}")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
