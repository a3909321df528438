"""``aegis unattended``: automatic upgrades from approved automation sources, through the chain."""
