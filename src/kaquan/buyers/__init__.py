"""Buyers: proving a contact (e-mail or phone) by a one-time code, and the signed buyer token that names it.

A per-buyer limit only means something when a buyer cannot mint buyers for free:
`service.start` sends a 6-digit code to a contact, `service.confirm` checks it and
issues a token (`tokens.BuyerTokens`) that names the verified contact. Flash sales
that require a verified buyer count their limit per verified contact.
"""
