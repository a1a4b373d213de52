"""The specification: every claim with its statement, preconditions, source, adversarial input
strategy and check (``claims``), the strategies themselves, and the catalogue rendered from them."""
