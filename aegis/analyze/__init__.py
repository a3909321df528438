"""Analysis several ecosystems share: plan stamps, lookalike names, the Debian version order.

apt's own analyzer is :mod:`aegis.ecosystems.apt`; each ecosystem plans in its own folder.
"""
