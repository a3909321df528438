"""Aegis review package."""
