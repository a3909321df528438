"""Out-of-band package changes: what changed packages without going through aegisd."""
