"""The closed loop: collect demonstrations, evaluate bundles in simulation, report results (issue 7)."""
