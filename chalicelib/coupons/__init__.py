"""Coupons: campaigns, sharded claims, checkout locks, in-store redemption, expiry."""
