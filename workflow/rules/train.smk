# (stage rules to come)
