"""A read-only local web dashboard over the fleet store: ``cspgraph serve``.

:mod:`~cspgraph.dashboard.queries` reads the store (search, filter, sort and paging in SQL),
:mod:`~cspgraph.dashboard.pages` renders the pages (server-side, no script),
:mod:`~cspgraph.dashboard.server` serves them over the standard library's HTTP server with the
access rule (loopback by default; an access token anywhere else).
"""
