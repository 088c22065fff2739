"""Running the core's jobs elsewhere: one host over SSH (:mod:`.ssh`), a Ray cluster
(:mod:`.ray_cluster`, the only module that imports Ray). Both hand back the core's own
events through :class:`.relay.Relay`, so front ends cannot tell them from a local run."""
