"""The planner: which runs a budget should buy to predict the targets most certainly."""
