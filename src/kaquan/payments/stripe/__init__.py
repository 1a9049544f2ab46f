"""Stripe Checkout for merchants selling abroad: the adapter (`gateway`), the wire protocol (`protocol`), a local
Stripe (`simulator`) and the `kaquan.gateways` plugin (`plugin`). Inside this package `import stripe` is the
official library: imports here are absolute."""
