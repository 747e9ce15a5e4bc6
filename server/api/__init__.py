"""The HTTP edge: one blueprint per resource, and what every request passes through.

`auth` (the bearer token), `limits` (rate limits), `bodies` (reading request bodies), `schemas`
(the response bodies) and `openapi` (the document they make) serve the blueprints `migration`,
`docs` and `health`.
"""
