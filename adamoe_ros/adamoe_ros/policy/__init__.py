"""The policy node: observations in, safe joint action chunks out, at control rate."""
