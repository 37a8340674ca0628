"""shoal.faas: the function platform's trace-driven evaluator. Readers and
generators of Azure Functions traces, keep-alive policies behind one
interface (none, fixed TTL, hybrid histogram, Greedy-Dual, shoal's own), a
discrete-event simulator of nodes and containers, and the oracle's lower
bounds (docs/faas.md)."""

from shoal.core.lazy import exports

__getattr__, __all__ = exports(
    __name__,
    """
    model: Function Trace TraceError
    azure: load_trace read_2019 read_2021
    generate: generate_azure generate_burst
    policy: FixedTTL NoKeepAlive Policy Window
    hybrid: Hybrid
    greedydual: GreedyDual
    adaptive: Adaptive
    registry: POLICIES make_policy
    simulate: Config Simulator simulate_trace
    metrics: Result score
    oracle: Bound lower_bounds
    """,
)
