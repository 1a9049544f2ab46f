"""Who may do what: admin users, roles and their permissions, sessions and API tokens."""
