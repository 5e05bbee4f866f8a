"""taxharvest: learned tax-loss harvesting for direct-indexed portfolios.

Layers, each importing only those before it:

- ``taxharvest.tax``: lot ledger, wash sales, tax law, Form 8949 (knows nothing of RL);
- ``taxharvest.market``: universe, synthetic and real prices, crash scenarios, risk model;
- ``taxharvest.guardrails``: tracking-error projection, a pure function of weights and risk;
- ``taxharvest.envs``: the Gymnasium environment over ledger and market;
- ``taxharvest.agents``: rule-based harvesters and the PPO policy, behind one interface;
- ``taxharvest.training``: train, backtest, shadow, stress, sweep and report workflows.
"""

import logging

__version__ = "0.1.0"

# A library logs; the application decides what is shown (guardrail projections are logged
# at INFO and WARNING under "taxharvest.guardrails").
logging.getLogger("taxharvest").addHandler(logging.NullHandler())
