"""Aegis devtools package."""
