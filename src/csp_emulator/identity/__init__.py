"""The emulated identity platform (login.microsoftonline.com), split as the other hosts are.

Routes (request paths to handlers)       routes
Handlers (request to response)
    discovery, JWKS, instance discovery    discovery
    /authorize, sign-in form, devicelogin  signin_page
    /token, /devicecode                    grants -> csp_rules (who gets what)
                                           -> token_issuer (claims, response bodies)
Model (state and rules)
    codes, refresh tokens, device codes    state
    applications and client credentials    clients
    what a request asks for                scopes, request
    the CSP rules                          csp_rules
    signing and validating tokens (JWKS)   tokens (the other hosts validate with it too)
AADSTS errors                            errors
"""
