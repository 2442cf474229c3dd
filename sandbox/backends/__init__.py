"""The three tiers, siblings of one shape: container, gvisor and microvm, each a package with
a backend module (its backend class and probe(config)). sandbox.tiers chooses among them."""
