"""Where task files come from: the inbox (watched with watchfiles) and, later, git checkouts."""
