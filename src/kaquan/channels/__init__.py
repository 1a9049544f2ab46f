"""Channels: where orders come from besides the shop, and what each channel sells at which price.

Tables (`models`): channels, price lists, quotas, agents and their API keys; `callbacks/` owns the
callback tables. What other modules use:

- `pricing`: channels, their price lists and stock quotas;
- agents (代理商): `agents` (accounts, deposits, API keys), `request_signing` (KQ1-HMAC-SHA256,
  also used by marketplace pushes), `auth` (checking a signed request), `agent_crypto` (codes
  encrypted for the agent), `ordering` (orders paid from the deposit), `refunds`;
- marketplace stores: `marketplace` (pushed orders), `marketplace_files` (order files);
- `callbacks/`: signed order callbacks to agents, with their own signing and SSRF guard;
- `booking` (how channel sales land on the ledger), `adapters` (entry-point plug-ins),
  `schemas` (the open API's wire types), `errors`, `tasks`.
"""
