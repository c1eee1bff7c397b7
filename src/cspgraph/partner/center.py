"""The Partner Center customers API: list (continuation paging), read, create.

Partner Center is called with a v1 token for ``https://api.partnercenter.microsoft.com`` issued in
the **partner** tenant (wire-facts §4); :class:`~cspgraph.partner.auth.PartnerCenterTokens` gives
an app-only one. Every request carries ``MS-RequestId`` and ``MS-CorrelationId``; a create keeps
its ``MS-RequestId`` across retries, which is what makes Partner Center replay the first answer
instead of creating a second customer.

Listing follows ``links.next``: its ``uri`` is requested verbatim and each of its ``headers``
(``MS-ContinuationToken``) is sent as given; the last page has no ``next``.

Failures come back in Partner Center's own shape (``{"code", "description", …}``, or
``{"statusCode", "message"}`` for a 429) and are turned into the error taxonomy of
:mod:`cspgraph.http.errors`: a 429 or 5xx is transient and retried (``Retry-After`` honoured),
a rejected token is retried once with a fresh one, and everything else is raised with Partner
Center's code and text. Messages never contain a token.

The customer endpoints are paced to Partner Center's 500 requests a minute per partner tenant
(:mod:`cspgraph.partner.pacing`), so that a sync that reads every customer waits for its turn
instead of collecting 429s.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import orjson
from yarl import URL

from cspgraph import __version__
from cspgraph.http.errors import (
    ERROR_TYPES,
    BadRequestError,
    CspGraphError,
    NeedsPersonError,
    TransientError,
    classify_partner_center_error,
)
from cspgraph.http.redaction import remember_secret
from cspgraph.http.retry import RetryPolicy
from cspgraph.http.sender import (
    Pacer,
    PoolLimits,
    Reply,
    Sender,
    Sent,
    Service,
    Sleep,
    parse_json,
)
from cspgraph.partner.pacing import CUSTOMERS, PartnerCenterPacer, shared_pacer

if TYPE_CHECKING:
    from cspgraph.identity import TokenProvider

# The Partner Center SDKs page customers by 40 (wire-facts §4.2).
DEFAULT_PAGE_SIZE = 40
# One answer must not park the caller for longer than this, whatever Retry-After says.
MAX_RETRY_AFTER = 600.0
DEFAULT_TIMEOUT = 100.0
# Partner Center is slow to answer and small: a handful of connections (CIPP uses 5).
CONNECTIONS = 5
# What a request that Partner Center counts against its 500 a minute costs the pacer (below, the
# app-consent endpoints, which have a limit of their own, cost nothing).
_PACED = (CUSTOMERS,)


class _OwnPacer:
    """``pacer`` left out: a pacer of the client's own."""


_OWN_PACER = _OwnPacer()


class PartnerCenterTokenSource(Protocol):
    async def get_token(self, *, fresh: bool = False) -> str:
        """A Partner Center access token for the partner tenant; ``fresh`` skips the cache."""
        ...


# -- errors ----------------------------------------------------------------------------------------


class DomainInUseError(BadRequestError):
    """The domain already belongs to a tenant that is not this partner's customer."""


class CustomerNotFoundError(BadRequestError):
    """No such customer (tenant unknown to Partner Center)."""


class NotYourCustomerError(NeedsPersonError):
    """The tenant exists but the partner has no commerce relationship with it (20002)."""


# The exception class a caller can catch for the Partner Center answers it may want to handle;
# what each answer means (its taxonomy class) is decided in cspgraph.http.errors, and each of these
# classes is of that taxonomy class (tests/unit/test_errors.py holds them to it).
PARTNER_CENTER_EXCEPTIONS: dict[str, type[CspGraphError]] = {
    "20002": NotYourCustomerError,
    "60003": CustomerNotFoundError,
}


def partner_center_error(
    status: int, body: Any, *, what: str, request_id: str | None = None
) -> CspGraphError:
    """A taxonomy error from a Partner Center failure answer."""
    data = body if isinstance(body, dict) else {}
    code = data.get("code", data.get("statusCode"))
    code_text = str(code) if code is not None else None
    description = str(data.get("description") or data.get("message") or f"HTTP {status}")
    rule = classify_partner_center_error(status, code_text, description)
    if status == 409:
        cls: type[CspGraphError] = DomainInUseError
    elif code_text in PARTNER_CENTER_EXCEPTIONS:
        cls = PARTNER_CENTER_EXCEPTIONS[code_text]
    elif status == 404:
        cls = CustomerNotFoundError
    else:
        cls = ERROR_TYPES[rule.error_class]
    return cls(
        f"{what} failed: {description}",
        code=code_text,
        status=status,
        request_id=request_id,
        reason=rule.reason,
    )


# -- what Partner Center says about customers ------------------------------------------------------


@dataclass(frozen=True)
class Customer:
    """A customer as Partner Center lists it. ``tenant_id`` is the customer's Entra tenant."""

    tenant_id: str
    domain: str
    company_name: str | None
    relationship: str | None  # relationshipToPartner: reseller, advisor, …
    commerce_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Customer:
        profile = data.get("companyProfile") or {}
        billing = data.get("billingProfile") or {}
        tenant_id = str(profile.get("tenantId") or data.get("id") or "").lower()
        return cls(
            tenant_id=tenant_id,
            domain=str(profile.get("domain") or "").lower(),
            company_name=profile.get("companyName") or billing.get("companyName"),
            relationship=data.get("relationshipToPartner"),
            commerce_id=data.get("commerceId"),
            raw=dict(data),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "domain": self.domain,
            "company_name": self.company_name,
            "relationship": self.relationship,
        }


class Secret:
    """A value shown once and never by accident: its repr and str hide it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        remember_secret(value)  # and masked in every log line

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(****)"

    __str__ = __repr__


# Microsoft Graph's app id: the resource of the consents cspgraph makes.
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"


@dataclass(frozen=True)
class ApplicationConsent:
    """An app consented in a customer through Partner Center: its delegated scopes per
    resource (enterprise application id)."""

    application_id: str
    display_name: str | None
    grants: Mapping[str, tuple[str, ...]]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ApplicationConsent:
        grants: dict[str, tuple[str, ...]] = {}
        for grant in data.get("applicationGrants") or []:
            if isinstance(grant, dict) and grant.get("enterpriseApplicationId"):
                names = str(grant.get("scope") or "").replace(" ", ",").split(",")
                grants[str(grant["enterpriseApplicationId"]).lower()] = tuple(
                    n.strip() for n in names if n.strip()
                )
        return cls(str(data.get("applicationId") or "").lower(), data.get("displayName"), grants)

    def scopes(self, resource: str = GRAPH_APP_ID) -> tuple[str, ...]:
        return self.grants.get(resource.lower(), ())


def _tenant_guid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise BadRequestError(
            f"a customer is named by its tenant ID (a GUID) here, got {value!r}"
        ) from None


@dataclass(frozen=True)
class CreatedCustomer:
    """The answer to a create. ``created`` is False when Partner Center answered with a
    customer that already existed (an idempotent replay, or this partner's existing tenant):
    only a new customer comes with its first admin's credentials."""

    customer: Customer
    created: bool
    admin_username: str | None = None
    admin_password: Secret | None = None


@dataclass(frozen=True)
class BillingAddress:
    address_line1: str
    city: str
    country: str  # ISO 3166 alpha-2
    state: str | None = None
    postal_code: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone_number: str | None = None
    address_line2: str | None = None

    def as_json(self) -> dict[str, str]:
        fields = {
            "firstName": self.first_name,
            "lastName": self.last_name,
            "addressLine1": self.address_line1,
            "addressLine2": self.address_line2,
            "city": self.city,
            "state": self.state,
            "postalCode": self.postal_code,
            "country": self.country.upper(),
            "phoneNumber": self.phone_number,
        }
        return {k: v for k, v in fields.items() if v}


@dataclass(frozen=True)
class NewCustomer:
    """What ``POST /v1/customers`` needs (wire-facts §4.1)."""

    domain: str  # e.g. contoso-new.onmicrosoft.com
    company_name: str
    email: str
    address: BillingAddress
    culture: str = "en-US"
    language: str = "en"
    organization_registration_number: str | None = None
    # None leaves Partner Center's default (a default GDAP relationship since 2023-11-01).
    enable_gdap_by_default: bool | None = None

    def as_json(self) -> dict[str, Any]:
        company: dict[str, Any] = {"domain": self.domain.lower()}
        if self.organization_registration_number:
            company["organizationRegistrationNumber"] = self.organization_registration_number
        body: dict[str, Any] = {}
        if self.enable_gdap_by_default is not None:
            body["enableGDAPByDefault"] = self.enable_gdap_by_default
        body["companyProfile"] = company
        body["billingProfile"] = {
            "culture": self.culture,
            "email": self.email,
            "language": self.language,
            "companyName": self.company_name,
            "defaultAddress": self.address.as_json(),
        }
        return body


# -- the client ------------------------------------------------------------------------------------


@dataclass(slots=True)
class PartnerCenterStats:
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    errors: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0


class _PartnerTenant:
    """A Partner Center token source as the sender asks for tokens (by tenant; there is one)."""

    def __init__(self, tokens: PartnerCenterTokenSource) -> None:
        self._tokens = tokens

    async def get_token(self, tenant: str, *, fresh: bool = False) -> str:
        return await self._tokens.get_token(fresh=fresh)


def _classify(reply: Reply, sent: Sent) -> CspGraphError:
    answered_id = reply.headers.get("MS-RequestId") or sent.request_id
    return partner_center_error(
        reply.status, parse_json(reply.body), what=sent.what, request_id=answered_id
    )


PARTNER_CENTER = Service(
    name="Partner Center",
    # New per attempt, except on a create, whose caller fixes it: Partner Center's idempotency key.
    request_id_header="MS-RequestId",
    classify=_classify,
    # A token rejected once may just be stale (a key roll-over): one fresh try.
    token_rejected=lambda error: error.status == 401,
)


class PartnerCenterClient:
    """Partner Center's customers API for one partner tenant; use ``async with``."""

    def __init__(
        self,
        tokens: PartnerCenterTokenSource,
        *,
        base_url: str = "https://api.partnercenter.microsoft.com",
        ca_bundle: str | None = None,
        session: aiohttp.ClientSession | None = None,
        sleep: Sleep = asyncio.sleep,
        max_retries: int = 5,
        page_size: int = DEFAULT_PAGE_SIZE,
        locale: str = "en-US",
        timeout: float = DEFAULT_TIMEOUT,
        backoff_base: float = 1.0,
        backoff_cap: float = 30.0,
        rng: random.Random | None = None,
        pacer: Pacer | _OwnPacer | None = _OWN_PACER,
    ) -> None:
        """``pacer``: what paces the customer endpoints (:mod:`cspgraph.partner.pacing`): by
        default one of this client's own; give clients of one partner tenant the same one
        (:meth:`for_region` does), or None for no pacing."""
        base = URL(base_url.rstrip("/"))
        if not base.absolute or base.scheme not in ("https", "http"):
            raise ValueError(f"base_url must be an absolute http(s) URL, got {base_url!r}")
        if not 1 <= page_size <= 1000:
            raise ValueError("page_size must be between 1 and 1000")
        self._base = str(base)
        self._origin = (base.scheme, base.host, base.port)
        self.page_size = page_size
        self._headers = {
            "Accept": "application/json",
            "X-Locale": locale,
            "User-Agent": f"cspgraph/{__version__}",
        }
        self.stats = PartnerCenterStats()
        self.pacer = PartnerCenterPacer() if isinstance(pacer, _OwnPacer) else pacer
        # No more calls in the sender than connections: a request the pacer lets go is sent at
        # once, not queued for a connection while the window it was booked in moves on.
        self._calls = asyncio.Semaphore(CONNECTIONS)
        self._sender = Sender(
            _PartnerTenant(tokens),
            PARTNER_CENTER,
            self.stats,
            ca_bundle=ca_bundle,
            retry=RetryPolicy(max_retries, backoff_base, backoff_cap, MAX_RETRY_AFTER),
            sleep=sleep,
            rng=rng,
            session=session,
            pool=PoolLimits(connections=2 * CONNECTIONS, per_host=CONNECTIONS, timeout=timeout),
            pacer=self.pacer,
        )

    @classmethod
    def for_region(
        cls, provider: TokenProvider, region: str | None = None, **options: Any
    ) -> PartnerCenterClient:
        """The client of a configured region's partner tenant, with that region's app-only
        Partner Center tokens from ``provider`` (which keeps them across clients). ``region``
        may be left out when one region is configured. ``options``: as for the constructor;
        the pacer, unless given, is the one every client of ``provider`` shares for the region's
        partner tenant (:func:`~cspgraph.partner.pacing.shared_pacer`)."""
        identity = provider.config.region_identity(region)
        cloud = provider.cloud
        if "pacer" not in options:
            options["pacer"] = shared_pacer(provider, identity.partner_tenant)
        return cls(
            provider.partner_center_tokens(identity.region),
            base_url=cloud.partner_center,
            ca_bundle=cloud.ca_bundle,
            **options,
        )

    @property
    def max_retries(self) -> int:
        return self._sender.retry.max_retries

    async def __aenter__(self) -> PartnerCenterClient:
        self._sender.ensure_session()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._sender.close()

    # -- customers ---------------------------------------------------------------------------------

    async def pages(self) -> AsyncIterator[list[Customer]]:
        """Every page of this partner's customers, following ``links.next`` verbatim."""
        url = f"{self._base}/v1/customers?size={self.page_size}"
        extra: dict[str, str] = {}
        seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        while True:
            data = await self._request(
                "GET", url, headers=extra, what="listing customers", costs=_PACED
            )
            items = data.get("items") if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise _unexpected("listing customers", "a page of customers")
            yield [Customer.from_json(item) for item in items if isinstance(item, dict)]
            following = _next_link(data)
            if following is None:
                return
            url, extra = self._follow(following)
            marker = (url, tuple(sorted(extra.items())))
            if marker in seen:  # a continuation that does not move on would loop for ever
                raise _unexpected("listing customers", "a continuation that moves on")
            seen.add(marker)

    async def list_customers(self) -> AsyncIterator[Customer]:
        """Every customer of this partner, across all pages."""
        async for page in self.pages():
            for customer in page:
                yield customer

    async def get_customer(self, tenant_id: str) -> Customer:
        try:
            tenant = str(uuid.UUID(tenant_id))
        except ValueError:
            raise BadRequestError(
                f"a customer is read by its tenant ID (a GUID), got {tenant_id!r}",
            ) from None
        data = await self._request(
            "GET",
            f"{self._base}/v1/customers/{tenant}",
            what=f"reading customer {tenant}",
            costs=_PACED,
        )
        return Customer.from_json(data if isinstance(data, dict) else {})

    async def find_customer(
        self, *, domain: str | None = None, tenant_id: str | None = None
    ) -> Customer | None:
        """This partner's customer with that domain (as Partner Center lists it) or tenant ID."""
        wanted_domain = domain.lower() if domain else None
        wanted_tenant = tenant_id.lower() if tenant_id else None
        async for customer in self.list_customers():
            if wanted_domain is not None and customer.domain == wanted_domain:
                return customer
            if wanted_tenant is not None and customer.tenant_id == wanted_tenant:
                return customer
        return None

    async def create_customer(
        self,
        new: NewCustomer,
        *,
        request_id: str | None = None,
        correlation_id: str | None = None,
    ) -> CreatedCustomer:
        """``POST /v1/customers``. Pass the same ``request_id`` to repeat a create that may have
        gone through (a crash, a timeout): Partner Center replays its first answer."""
        request_id = request_id or str(uuid.uuid4())
        headers = {
            "MS-RequestId": request_id,
            "MS-CorrelationId": correlation_id or str(uuid.uuid4()),
            "Content-Type": "application/json",
        }
        data = await self._request(
            "POST",
            f"{self._base}/v1/customers",
            headers=headers,
            body=orjson.dumps(new.as_json()),
            what=f"creating customer {new.domain}",
            costs=_PACED,
        )
        if not isinstance(data, dict) or not data.get("id"):
            raise _unexpected(f"creating customer {new.domain}", "the created customer")
        credentials = data.get("userCredentials")
        if isinstance(credentials, dict) and credentials.get("password"):
            domain = new.domain.lower()
            user = str(credentials.get("userName") or "admin")
            username = user if "@" in user else f"{user}@{domain}"
            return CreatedCustomer(
                Customer.from_json(data),
                created=True,
                admin_username=username,
                admin_password=Secret(str(credentials["password"])),
            )
        return CreatedCustomer(Customer.from_json(data), created=False)

    async def ensure_customer(self, new: NewCustomer) -> CreatedCustomer:
        """The customer with ``new.domain``: found in this partner's list, else created."""
        existing = await self.find_customer(domain=new.domain)
        if existing is not None:
            return CreatedCustomer(existing, created=False)
        return await self.create_customer(new)

    # -- per-customer app consent (GDAP) -----------------------------------------------------------

    async def application_consents(self, customer: str) -> list[ApplicationConsent]:
        """``GET /v1/customers/{id}/applicationconsents``: the apps consented in a customer
        through Partner Center, with their delegated scopes per resource."""
        tenant = _tenant_guid(customer)
        data = await self._request(
            "GET",
            f"{self._base}/v1/customers/{tenant}/applicationconsents",
            what=f"reading the app consents of customer {tenant}",
        )
        items = data.get("items") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise _unexpected("reading app consents", "a collection of consents")
        return [ApplicationConsent.from_json(i) for i in items if isinstance(i, dict)]

    async def create_application_consent(
        self,
        customer: str,
        application_id: str,
        scopes: Sequence[str],
        *,
        resource: str = GRAPH_APP_ID,
        request_id: str | None = None,
    ) -> ApplicationConsent | None:
        """``POST /v1/customers/{id}/applicationconsents``: the app's service principal in the
        customer and a tenant-wide grant of ``scopes`` (delegated) of ``resource``. None when
        Partner Center answers that a consent already exists (409, "Permission entry already
        exists."): the caller compares what exists with what it needs (wire-facts §4.4)."""
        tenant = _tenant_guid(customer)
        body = {
            "applicationId": application_id,
            "applicationGrants": [{"enterpriseApplicationId": resource, "scope": ",".join(scopes)}],
        }
        headers = {"MS-RequestId": request_id or str(uuid.uuid4()),
                   "Content-Type": "application/json"}  # fmt: skip
        try:
            data = await self._request(
                "POST",
                f"{self._base}/v1/customers/{tenant}/applicationconsents",
                headers=headers,
                body=orjson.dumps(body),
                what=f"consenting app {application_id} in customer {tenant}",
            )
        except BadRequestError as exc:
            if exc.status == 409:
                return None
            raise
        return ApplicationConsent.from_json(data if isinstance(data, dict) else {})

    async def delete_application_consent(self, customer: str, application_id: str) -> None:
        """``DELETE …/applicationconsents/{appId}``: removes the app's service principal (and
        its grants) from the customer; how Partner Center's consent is changed (then POST)."""
        tenant = _tenant_guid(customer)
        await self._request(
            "DELETE",
            f"{self._base}/v1/customers/{tenant}/applicationconsents/{application_id}",
            what=f"removing the consent of app {application_id} in customer {tenant}",
        )

    async def relationship_request_url(self) -> str:
        """``GET /v1/customers/relationshiprequests``: the link an existing tenant's Global
        Administrator opens to accept this partner as its reseller (Partner Center docs:
        "Retrieve a relationship request URL"; App+User credentials only)."""
        data = await self._request(
            "GET",
            f"{self._base}/v1/customers/relationshiprequests",
            what="reading the reseller invitation link",
            costs=_PACED,
        )
        url = data.get("url") if isinstance(data, dict) else None
        if not isinstance(url, str) or not url:
            raise _unexpected("reading the reseller invitation link", "a relationship request")
        return url

    # -- plumbing ----------------------------------------------------------------------------------

    def _follow(self, link: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
        uri = str(link.get("uri") or "")
        if uri.startswith(("https://", "http://")):
            target = URL(uri, encoded=True)
            # The partner token goes wherever the URL points: never off the configured host.
            if (target.scheme, target.host, target.port) != self._origin:
                raise _unexpected("listing customers", f"a next link on {self._base}")
            url = uri
        else:
            url = self._base + ("" if uri.startswith("/") else "/") + uri
        headers: dict[str, str] = {}
        for pair in link.get("headers") or []:
            if isinstance(pair, dict) and pair.get("key"):
                headers[str(pair["key"])] = str(pair.get("value", ""))
        return url, headers

    async def _request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        costs: tuple[str, ...] = (),
    ) -> Any:
        """``costs``: ``_PACED`` for the requests Partner Center counts against its limit."""
        fixed = {**self._headers, **(headers or {})}
        # Every call carries correlation ids; a POST's are fixed by the caller and kept across
        # retries (MS-RequestId is Partner Center's idempotency key, so a create is idempotent).
        fixed.setdefault("MS-CorrelationId", str(uuid.uuid4()))
        async with self._calls:
            reply = await self._sender.send(
                "", method, url, fixed, body, costs=costs, idempotent=True, what=what
            )
        return parse_json(reply.body)


def _next_link(data: Any) -> Mapping[str, Any] | None:
    links = data.get("links") if isinstance(data, dict) else None
    following = links.get("next") if isinstance(links, dict) else None
    if isinstance(following, dict) and following.get("uri"):
        return following
    return None


def _unexpected(what: str, wanted: str) -> TransientError:
    return TransientError(
        f"{what}: Partner Center did not answer with {wanted}",
        reason="Partner Center answered in an unexpected shape",
    )
