"""visitlens' development tooling: the embedded stack, the local function host, the deployment
renderer, the demos, the end-to-end driver and the benchmarks. Never in a product image."""
