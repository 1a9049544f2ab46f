"""Channel tables: channels, price lists, quotas, agents and their API keys."""
