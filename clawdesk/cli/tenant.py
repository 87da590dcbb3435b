"""`clawdesk tenant key …`: the API keys a tenant's agents sign in to the inbox with."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from clawdesk.settings import connection_settings

app = typer.Typer(help="Tenants and their API keys.", no_args_is_help=True)
key_app = typer.Typer(help="API keys of a tenant's agent inbox.", no_args_is_help=True)
app.add_typer(key_app, name="key")
console = Console(stderr=True)

Tenant = Annotated[str, typer.Option(help="tenant id")]
Name = Annotated[str, typer.Option(help="what the key is for, e.g. the agent's name")]


def _database_url() -> str:
    url = connection_settings().database_url
    if not url:
        console.print("[red]DATABASE_URL is not set[/]")
        raise typer.Exit(2)
    return url


@key_app.command("create")
def create(tenant: Tenant, name: Name = "inbox") -> None:
    """Create an API key and print it (it cannot be shown again: only its hash is kept)."""
    # deferred: the key store imports psycopg
    from clawdesk.storage.apikeys import UnknownTenant, create_key

    try:
        key = create_key(_database_url(), tenant, name)
    except UnknownTenant:
        console.print(f"[red]unknown tenant {tenant!r}[/]")
        raise typer.Exit(2) from None
    console.print(f"API key {name!r} of tenant {tenant!r} (shown once):")
    typer.echo(key)


@key_app.command("revoke")
def revoke(tenant: Tenant, name: Name) -> None:
    """Revoke the tenant's keys of this name."""
    # deferred: the key store imports psycopg
    from clawdesk.storage.apikeys import revoke_keys

    count = revoke_keys(_database_url(), tenant, name)
    console.print(f"revoked {count} key(s)")
    if count == 0:
        raise typer.Exit(1)
