"""Stores: where service happens and orders are fulfilled."""
