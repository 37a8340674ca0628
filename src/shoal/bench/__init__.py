"""shoal.bench: benchmark campaigns in cpuset slots. A campaign file
(docs/bench.md), the slot planner on a host's topology, the preflight checks
through ``shoal.fanout``, phase extraction from logs, and the report
(statistics, throughput per layout, Welch's t-test, tables and plots)."""

from shoal.core.lazy import exports

__getattr__, __all__ = exports(
    __name__,
    """
    campaign: Campaign Layout Phase Metric
    extract: Parsed Run parse_logs
    load: load_campaign parse_campaign
    preflight: Preflight preflight
    output: write_files
    plots: write_plots
    report: Report build_report load_results
    run: run_campaign
    slots: LayoutPlan PlanError Slot plan_layout
    """,
)
