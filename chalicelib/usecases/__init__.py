"""Use cases: the thin layer for what spans domains, between app.py and the domains.

A use case reads through each domain's service functions and composes their
items into one transaction (`transact.write`), so a rule that involves two
domains still holds by one write's conditions. Domains never import this layer.
"""
