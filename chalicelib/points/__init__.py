"""Points: an immutable double-entry ledger with expiring lots, earning rules and tiers.

`service` is the API the rest of siyu calls; `ledger` holds the transfers and
their conditions; `audit` proves the invariants; `jobs` are the scheduled entry points.
"""
