"""The emulator's own control API, under ``/_emulator`` on the control origin.

It lets tests and users inspect the world, move the clock, change settings, inject faults, change
directory objects behind Graph's back (so delta queries have something to report), create and end
partner relationships, list issued tokens (never the tokens themselves), and reset. It listens on
loopback only and asks for no credentials: it is a test fixture, not a cloud.

The service is split as the others are: ``model`` (views of the world and the settings rules),
``handlers`` (request to response, one function per method), ``routes`` (the route table).
"""
