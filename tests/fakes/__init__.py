"""Local stand-ins for the third-party providers, served over real HTTP in tests.

Each follows its provider's documented request and response shapes, checks auth
(401 on a wrong key), answers 404 for unknown ids, and can be told to fail the next N
calls with 429 (+ Retry-After) or 5xx.
"""
