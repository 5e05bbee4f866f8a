"""The workflows: train, tune, evaluate, shadow, stress, sweep and the demo, on markets from
the one builder (:mod:`taxharvest.workflows.markets`)."""
