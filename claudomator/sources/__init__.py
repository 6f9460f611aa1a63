"""Where task files come from: the inbox (`inbox`) and git checkouts (`git` and its `git*`
parts), both watched through the one watchfiles setup in `watch`, the only watchfiles import.
Sources call nothing above them but the callables they are handed (`links.Hooks`)."""
