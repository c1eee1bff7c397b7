"""The emulated Partner Center customers API (wire-facts §4): create, list and read a partner's
customers.

Callers present a v1 token for ``https://api.partnercenter.microsoft.com`` issued in a **partner**
tenant; app+user tokens also need ``mfa`` in ``amr``. Creating a customer creates its tenant in the
world (seeded like a world-file tenant, with ``admin@{domain}`` as Global Administrator) and a
reseller relationship that only takes effect after ``settings.propagation_delay``: Partner Center
lists the customer at once, Graph pre-consent arrives later (the seed's "up to 3 minutes").

Choices where the public record is silent (each says so where it is made):

* The new tenant lives in the partner's region and cloud (a CSP partner tenant sells in one
  region), with the billing country as its country, and without an Intune licence (nothing has
  been bought yet).
* Creation is idempotent twice over: the same ``MS-RequestId`` from the same partner replays the
  first answer verbatim, and the same domain from the same partner (any request id) answers with
  that existing customer. The same domain held by any other tenant is a 409.
* ``totalCount`` in a page of customers counts that page's items.
* The relationship carries delegated admin privileges (DAP), so the seed's AdminAgents pre-consent
  reaches the new customer. Real reseller relationships stopped granting DAP on 2023-10-09 (GDAP
  FAQ); GDAP is not modelled here.

The service is split as the others are: ``model`` (what Partner Center keeps, creating a customer,
the request limit), ``customers`` (a customer's wire shape, in and out), ``auth`` (who calls),
``handlers`` (request to response), ``routes`` (the route table); ``errors`` renders refusals.
"""
