"""Adapters for the seed's wire contract: the REST API and the raw `/ws/{room_id}` protocol."""
