"""Aegis: safe package changes on production Debian servers.

An intent is analysed into an operation plan, reviewed by a model, checked by policy,
signed as an execution plan and run by aegisd, which records every step in a
tamper-evident audit log. See docs/design.md for the trust model.
"""
