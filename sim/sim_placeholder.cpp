// replaced by the simulator work
