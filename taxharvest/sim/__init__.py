"""One run of a policy through the environment: the backtest, its measures and their
registry, the step log, the local/Ray fan-out and the one reader of the environment's state."""
