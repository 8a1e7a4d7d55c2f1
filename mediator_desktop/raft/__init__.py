"""The replicated store: pysyncobj state machine, cluster lifecycle, discovery and pairing."""
