"""Stock going out: claiming codes and serials for an order (`allocation`), and for many orders at once
in one statement, handed to each holder (`handouts`)."""
