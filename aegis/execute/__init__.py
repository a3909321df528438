"""Aegis execute package."""
