"""Aegis workflow package."""
