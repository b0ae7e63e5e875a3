"""`grin`: the operator's command line (service side).

Each command prints one line on bad input and exits 2, never a traceback.
"""

from __future__ import annotations

import typer

from app.compliance.cli import compliance_cli
from grin_client.cli import datasets_cli, jobs_cli, models_cli

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
    """Build the demo model (first run), register it and print a deletion request to try (see app/demo.py)."""
    import httpx

    from app.core.config import get_settings
    from app.demo import DemoError, setup_demo

    try:
        ready = httpx.get(f"{url}/readyz", timeout=10)
    except httpx.HTTPError as exc:
        typer.echo(f"error: the API at {url} does not answer: {exc}", err=True)
        raise typer.Exit(2) from exc
    if ready.status_code != 200:
        typer.echo(f"error: the API at {url} is not ready: {ready.text}", err=True)
        raise typer.Exit(2)
    try:
        info = setup_demo(get_settings(), url, echo=typer.echo)
    except (DemoError, httpx.HTTPError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    commands = info["commands"]
    typer.echo(f"\nDemo ready: model {info['model_id']} knows five TOFU authors. Ask it to forget {info['author']}:\n")
    typer.echo(f"  JOB_ID=$({commands['submit']} | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"id\"])')")
    typer.echo("\nWatch it (events stream until the job ends), then read the result:\n")
    typer.echo(f"  {commands['watch'].replace('JOB_ID', '$JOB_ID')}")
    typer.echo(f"  {commands['status'].replace('JOB_ID', '$JOB_ID')}")


admin = typer.Typer(no_args_is_help=True, help="Tenants and API keys (talks to the ledger directly).")
tenants_cli = typer.Typer(no_args_is_help=True, help="Tenants.")
keys_cli = typer.Typer(no_args_is_help=True, help="API keys (shown once at creation, stored hashed).")
admin.add_typer(tenants_cli, name="tenants")
admin.add_typer(keys_cli, name="keys")
cli.add_typer(admin, name="admin")
cli.add_typer(compliance_cli)
# The HTTP-side operator commands: `grin models|datasets|jobs ...` (grin_client/cli.py).
cli.add_typer(models_cli, name="models")
cli.add_typer(datasets_cli, name="datasets")
cli.add_typer(jobs_cli, name="jobs")


def _ledger_session():  # type: ignore[no-untyped-def]
    """A session on the migrated ledger (admin commands may be the first thing run on a fresh install)."""
    from app.core.config import get_settings
    from app.core.db import migrate as run_migrations
    from app.core.db import open_session

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    run_migrations(settings)
    return open_session(settings)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@tenants_cli.command("create")
def create_tenant(name: str = typer.Argument(..., help="Unique tenant name"),
                  require_approval: bool = typer.Option(False, help="Jobs wait for an approver")) -> None:
    """Create a tenant."""
    from app.auth import repository, service

    with _ledger_session() as session:
        if repository.tenant_by_name(session, name) is not None:
            raise _fail(f"tenant {name!r} exists")
        tenant = service.create_tenant(session, name, require_approval=require_approval)
        session.commit()
        typer.echo(f"{tenant.id}\t{tenant.name}")


@tenants_cli.command("list")
def list_tenants() -> None:
    """List tenants (id, name, created)."""
    from app.auth import repository

    with _ledger_session() as session:
        for tenant in repository.tenants(session):
            typer.echo(f"{tenant.id}\t{tenant.name}\t{tenant.created_at.isoformat()}")


@keys_cli.command("create")
def create_key(tenant: str = typer.Option(..., help="Tenant name"),
               name: str = typer.Option("default", help="What the key is for")) -> None:
    """Create an API key and print it once; only its hash is kept."""
    from app.auth import repository, service

    with _ledger_session() as session:
        owner = repository.tenant_by_name(session, tenant)
        if owner is None:
            raise _fail(f"no tenant {tenant!r}")
        issued = service.issue_key(session, owner, name)
        session.commit()
        typer.echo(issued.secret)
        typer.echo(f"key {issued.api_key.prefix} for tenant {owner.name}: store it now, it is not shown again",
                   err=True)


@keys_cli.command("revoke")
def revoke_key(prefix: str = typer.Argument(..., help="The key's prefix (as `keys list` shows it)")) -> None:
    """Revoke a key: requests with it get 401 once the API stops remembering it (GRIN_API_KEY_CACHE_S)."""
    from app.auth import service
    from app.core.config import get_settings

    with _ledger_session() as session:
        api_key = service.revoke_key(session, prefix)
        if api_key is None:
            raise _fail(f"no key with prefix {prefix!r}")
        session.commit()
        cached_s = get_settings().api_key_cache_s
        typer.echo(f"revoked {prefix}" + (f" (API processes that remember it refuse it within {cached_s:g} s)"
                                          if cached_s else ""))


@keys_cli.command("list")
def list_keys(tenant: str | None = typer.Option(None, help="Only this tenant's keys")) -> None:
    """List keys (prefix, tenant, name, created, revoked); secrets are never shown."""
    from app.auth import repository

    with _ledger_session() as session:
        owner = repository.tenant_by_name(session, tenant) if tenant else None
        if tenant and owner is None:
            raise _fail(f"no tenant {tenant!r}")
        names = {t.id: t.name for t in repository.tenants(session)}
        for api_key in repository.keys_of(session, owner.id if owner else None):
            revoked = api_key.revoked_at.isoformat() if api_key.revoked_at else "active"
            typer.echo(f"{api_key.prefix}\t{names[api_key.tenant_id]}\t{api_key.name}\t"
                       f"{api_key.created_at.isoformat()}\t{revoked}")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
