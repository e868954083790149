"""``[writers.NAME]`` tables: the keys every writer has, and delegation to the writer's plug-in.

Where it sits: :mod:`.loader` hands each ``[writers.NAME]`` table to :func:`parse_writer`,
which finds the plug-in of the table's ``type`` (``crm/registry.py``: built-in or installed
through the ``sscl_daemon.writers`` entry points), reads the keys common to every writer
and the contact policy of CRM writers, and lets the plug-in read its own keys through the
same table, so its problems carry the key path too. The option parsers of the original
writers (HubSpot, Pipedrive, Salesforce, webhook, jsonl) live here; their plug-ins
(``crm/builtins.py``) point at them. Defaults come from the dataclasses in :mod:`.schema`.
"""

from __future__ import annotations

from sscl_daemon.config.plugins import OptionReader, PluginError, plugin
from sscl_daemon.config.schema import (
    ContactSettings,
    HubSpotOptions,
    JsonlOptions,
    OAuthClientSettings,
    PipedriveLog,
    PipedriveOptions,
    SalesforceOptions,
    WebhookOptions,
    WriterSettings,
    WriterType,
)
from sscl_daemon.config.table import Table
from sscl_daemon.signing import secret_problem
from sscl_daemon.templating import problem as template_problem
from sscl_daemon.zones import USER as USER_ZONE
from sscl_daemon.zones import zone_problem

# The original writers' types stay WriterType members (code compares them with ``is``).
_ORIGINAL = frozenset(t.value for t in WriterType)


def _contacts(t: Table, default_timezone: str | None) -> ContactSettings:
    owners_table = t.table("owners")
    owners: dict[str, str] = {}
    for ext, owner in owners_table.items():
        if not isinstance(owner, str | int) or isinstance(owner, bool):
            owners_table.problem(ext, f"expected a CRM owner id or email, got {owner!r}")
            continue
        owners[owners_table.consume(ext)] = str(owner)
    d = ContactSettings
    zone_name, user_zone = _zone_settings(timezone_key(t, default_timezone), default_timezone)
    return ContactSettings(
        no_contact=t.choice("no_contact", d.no_contact),
        several_contacts=t.choice("several_contacts", d.several_contacts),
        cache_ttl=t.number("contact_cache_ttl", d.cache_ttl),
        cache_size=t.integer("contact_cache_size", d.cache_size, minimum=1),
        owner_by_email=t.boolean("owner_by_email", d.owner_by_email),
        owners=owners,
        detect_client_logs=t.boolean("detect_client_logs", d.detect_client_logs),
        timezone=zone_name,
        user_timezone=user_zone,
        recordings=t.choice("recordings", d.recordings),
        media_max_mb=t.integer("media_max_mb", d.media_max_mb, minimum=1),
        media_first_look=t.number("media_first_look", d.media_first_look),
        subject_template=_template(t, "subject_template"),
        note_template=_template(t, "note_template"),
        deals=t.choice("deals", d.deals),
    )


def _template(t: Table, name: str) -> str | None:
    """A subject or note template, checked (sscl_daemon/templating.py); None when not set."""
    text = t.string(name, "") or None
    trouble = template_problem(text) if text else None
    if trouble is not None:
        t.problem(name, trouble)
        return None
    return text


def timezone_key(t: Table, default: str | None) -> str | None:
    """The table's ``timezone`` (an IANA name or ``"user"``), else ``default`` (a writer's:
    the account's ``calls.timezone``)."""
    name = t.string("timezone", "") or None
    problem = zone_problem(name) if name and name != USER_ZONE else None
    if problem is not None:
        t.problem("timezone", problem + f', or "{USER_ZONE}" (the handling user\'s zone)')
        return default
    return name or default


def _zone_settings(name: str | None, account: str | None) -> tuple[str | None, bool]:
    """A writer's ``timezone`` and ``user_timezone`` from its chosen ``timezone`` key (its
    own, else the account's): ``"user"`` shows each call in its handling user's RingCentral
    zone, and the other calls in the account's ``calls.timezone`` when that names a zone
    (else UTC); an IANA name is a fixed zone."""
    if name != USER_ZONE:
        return name, False
    return (account if account != USER_ZONE else None), True


def oauth_settings(
    t: OptionReader, what: str, *, required: bool = True
) -> OAuthClientSettings | None:
    """``client_id``, ``client_secret`` and ``refresh_token`` of an OAuth app (any writer's).

    Without ``required`` the three may all be absent (None, no problem recorded)."""
    if not required and not any(t.has(k) for k in ("client_id", "client_secret", "refresh_token")):
        return None
    client_id = t.string("client_id", "")
    if not client_id:
        t.problem("client_id", f"is required for {what}")
    secret = t.secret("client_secret", required=True)
    refresh = t.secret("refresh_token", required=True)
    if secret is None or refresh is None or not client_id:
        return None
    return OAuthClientSettings(client_id, secret, refresh)


def hubspot(t: OptionReader) -> HubSpotOptions:
    token = t.secret("access_token")
    oauth = oauth_settings(t, "HubSpot OAuth", required=False)
    if token is None and oauth is None:
        t.problem(
            "access_token",
            "give an access_token (a service key or private-app token) or"
            " client_id/client_secret/refresh_token",
        )
    key = t.string("key_property", HubSpotOptions.key_property)
    name_ok = key.isascii() and key[:1].isalpha() and key.replace("_", "").isalnum()
    if not name_ok or key != key.lower():
        t.problem(
            "key_property",
            f"{key!r} is not a HubSpot internal property name: use lowercase letters,"
            f" digits and _, starting with a letter (the default is {HubSpotOptions.key_property!r})",
        )
    return HubSpotOptions(t.url("base_url", HubSpotOptions.base_url), token, oauth, key)


def pipedrive(t: OptionReader) -> PipedriveOptions:
    api_token = t.secret("api_token")
    oauth = oauth_settings(t, "Pipedrive OAuth", required=False)
    if api_token is None and oauth is None:
        t.problem("api_token", "give an api_token or client_id/client_secret/refresh_token")
    d = PipedriveOptions
    log_as = d.log_as
    if t.has("log_as"):
        raw = t.string("log_as", d.log_as.value)
        try:
            log_as = PipedriveLog(raw)
        except ValueError:
            t.problem("log_as", f"{raw!r} is not allowed; use 'call-log' or 'activity'")
    return PipedriveOptions(
        t.url("base_url", d.base_url),
        api_token,
        oauth,
        t.url("token_url", d.token_url),
        log_as,
        t.string("activity_type", d.activity_type) or d.activity_type,
    )


def salesforce(t: OptionReader) -> SalesforceOptions | None:
    instance = t.url("instance_url", "")
    if not instance:
        t.problem("instance_url", "is required (https://yourorg.my.salesforce.com)")
    oauth = oauth_settings(t, "Salesforce")
    d = SalesforceOptions
    login = t.url("login_url", d.login_url)
    version = t.string("api_version", d.api_version)
    field_name = t.string("external_id_field", d.external_id_field)
    if oauth is None or not instance:
        return None
    return SalesforceOptions(instance, oauth, login, version, field_name)


def webhook(t: OptionReader) -> WebhookOptions | None:
    url = t.url("url", "")
    if not url:
        t.problem("url", "is required (the https:// address that receives the call logs)")
    secret = t.secret("secret", required=True)
    # Empty: missing (reported above) or not resolved for this command.
    problem = secret_problem(secret.reveal()) if secret is not None and secret.reveal() else None
    if problem is not None:
        t.problem("secret", problem)
    if not url or secret is None or problem is not None:
        return None
    return WebhookOptions(url, secret)


def jsonl(t: OptionReader) -> JsonlOptions | None:
    path = t.path("path")
    if path is None:
        t.problem("path", "is required (the file the call logs are appended to)")
        return None
    return JsonlOptions(path)


def parse_writer(name: str, t: Table, default_timezone: str | None = None) -> WriterSettings | None:
    """One ``[writers.NAME]`` table; None (with the problems recorded) when unusable.

    ``default_timezone`` is the account's ``calls.timezone``, the zone of CRM writers that
    name none."""
    kind = t.string("type", "")
    try:
        found = plugin(kind)
    except PluginError as exc:
        t.problem("type", str(exc))
        return None
    d = WriterSettings
    enabled = t.boolean("enabled", d.enabled)
    concurrency = t.integer("concurrency", d.concurrency, minimum=1)
    rate_limit = t.number("rate_limit", d.rate_limit, minimum=0.01)
    batch_size = t.integer("batch_size", d.batch_size, minimum=1, maximum=100)
    max_attempts = t.integer("max_attempts", d.max_attempts, minimum=1)
    retry_initial = t.number("retry_initial", d.retry_initial)
    retry_max = t.number("retry_max", d.retry_max)
    timeout = t.number("timeout", d.timeout, minimum=0.1)
    contacts = _contacts(t, default_timezone) if found.contacts else ContactSettings()
    options = found.parse_options(t)
    t.finish()
    if options is None:
        return None
    return WriterSettings(
        name=name,
        type=WriterType(kind) if kind in _ORIGINAL else kind,
        options=options,
        enabled=enabled,
        concurrency=concurrency,
        rate_limit=rate_limit,
        batch_size=batch_size,
        max_attempts=max_attempts,
        retry_initial=retry_initial,
        retry_max=retry_max,
        timeout=timeout,
        contacts=contacts,
    )
