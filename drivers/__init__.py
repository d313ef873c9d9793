"""Real hardware behind small interfaces; hw-sim/ provides simulated devices underneath them."""
