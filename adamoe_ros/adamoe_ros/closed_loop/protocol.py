"""The evaluation protocol, written once: which seeds each use draws from, and how long an episode may take.

A seed places the scene (and picks the multi-task scene's task), so disjoint seed blocks keep what a model was
trained on, what chose it and what reports it apart.
"""

TRAIN_FIRST_SEED = 0  # demonstrations (collect, the study's recorded chunks): every seed below SELECTION_FIRST_SEED
SELECTION_FIRST_SEED = 1000  # held-out seeds the study compares variants and checkpoints on (direct_eval)
TEST_FIRST_SEED = 2000  # held-out seeds never used to choose a model: the demo and the evaluations over ROS
SOAK_FIRST_SEED = 3000  # the soak's endless episodes
EPISODE_TIME_S = 25.0  # sim seconds a policy gets per episode before it counts as failed
