"""The RL driving policy: an SB3 PPO policy on the BEV and measurements, warm-started by behaviour cloning
from the privileged expert (with DAgger), fine-tuned by PPO; the stack's ``rl`` planning stage.

Modules: :mod:`.observation` (what the policy sees), :mod:`.features` (its CNN), :mod:`.policy` (building,
saving, loading), :mod:`.config` (the training config), :mod:`.towns` (one env over several towns),
:mod:`.demos` (expert demonstrations), :mod:`.bc` (behaviour cloning), :mod:`.callbacks` and :mod:`.train`
(``avsim train policy``), :mod:`.stage` (the planning stage). Only :mod:`.observation` and :mod:`.stage`
are needed at inference, with torch and stable-baselines3.
"""
