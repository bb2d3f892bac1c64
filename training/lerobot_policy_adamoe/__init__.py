"""AdaMoE policy plugin for LeRobot."""
