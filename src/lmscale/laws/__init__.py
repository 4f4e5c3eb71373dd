"""The scaling laws: their forms and fitters, the law object, uncertainty, targets."""
