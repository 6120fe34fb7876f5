"""Research tools on top of training: many seeds (sweep), honest statistics (compare) and tuning (tune)."""
