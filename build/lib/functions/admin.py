"""`custom-classifier-admin`: operator commands that act on the service's storage directly
(settings from CC_* as the API reads them), not through the HTTP API.

    custom-classifier-admin create-key --tenant acme     # prints the key once
    custom-classifier-admin list-keys
    custom-classifier-admin revoke-key <key id>
"""

from __future__ import annotations

import json
import time

import click

from functions.core.auth import create_key, list_keys, revoke_key
from functions.core.config import get_settings
from functions.core.errors import DomainError
from functions.services import Services


@click.group()
def main() -> None:
    """Operator commands (API keys)."""


def _services() -> Services:
    return Services(get_settings())


@main.command("create-key")
@click.option("--tenant", required=True, help="lowercase letters, digits and '-'")
def create(tenant: str) -> None:
    """Create an API key for a tenant; it is shown only now (stored as a SHA-256)."""
    services = _services()
    try:
        key, record = create_key(services.store, services.settings, tenant)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(json.dumps({"api_key": key, "key_id": record.key_id, "tenant": record.tenant}))


@main.command("list-keys")
def list_command() -> None:
    """Key ids and tenants (never the keys)."""
    services = _services()
    for record in list_keys(services.store, services.settings):
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created_at))
        click.echo(f"{record.key_id}\t{record.tenant}\t{created}")


@main.command("revoke-key")
@click.argument("key_id")
def revoke(key_id: str) -> None:
    """Delete a key (in effect within CC_AUTH_CACHE_SECONDS)."""
    services = _services()
    if not revoke_key(services.store, services.settings, key_id):
        raise click.ClickException(f"no key {key_id}")
    click.echo(f"revoked {key_id}")


if __name__ == "__main__":
    main()
