"""Whole-system tests against real servers."""
