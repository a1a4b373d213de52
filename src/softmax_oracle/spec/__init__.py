"""The specification: every claim with its statement, preconditions, source, inputs and check
(``claims``); the checks (``checks``), the inputs of each claim (``inputs``) over the adversarial
strategies (``strategies``), and the catalogue rendered from the claims."""
