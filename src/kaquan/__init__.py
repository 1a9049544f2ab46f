"""kaquan: one central inventory of digital codes, sold through every channel."""
