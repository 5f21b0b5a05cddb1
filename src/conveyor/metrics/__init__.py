"""Metrics: what workers measure, in forms that add up across workers and time."""
